package router

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// show prints a parsed expression fully parenthesised, as atc-router's
// AST tests do.
func show(e *expr) string {
	switch e.kind {
	case nodeAnd:
		return "(" + show(e.l) + " && " + show(e.r) + ")"
	case nodeOr:
		return "(" + show(e.l) + " || " + show(e.r) + ")"
	case nodeNot:
		return "!" + show(e.l)
	}
	p := &e.p
	lhs := p.name
	if p.lower {
		lhs = "lower(" + lhs + ")"
	}
	op := binOps[slices.IndexFunc(binOps, func(o struct {
		text string
		op   binOp
	}) bool {
		return o.op == p.op
	})].text
	if p.op == opNotIn {
		op = "not in"
	}
	var rhs string
	switch p.rhs.t {
	case typeString:
		rhs = strconv.Quote(p.rhs.str)
	case typeRegex:
		rhs = "/" + p.rhs.re.String() + "/"
	case typeInt:
		rhs = strconv.FormatInt(p.rhs.num, 10)
	case typeIPAddr:
		rhs = p.rhs.addr.String()
	case typeIPCIDR:
		rhs = p.rhs.prefix.String()
	}
	return "(" + lhs + " " + op + " " + rhs + ")"
}

func TestParseExpression(t *testing.T) {
	tests := []struct{ in, want string }{
		// Precedence: || binds tighter than && (atc-router's Pratt
		// parser), both left-associative.
		{`net.protocol ^= "1" && tls.sni =^ "2" || net.dst.port >= 3`,
			`((net.protocol ^= "1") && ((tls.sni =^ "2") || (net.dst.port >= 3)))`},
		{`net.src.port > 1 || net.dst.port < 2 && net.src.port <= 3 || net.dst.port != 4`,
			`(((net.src.port > 1) || (net.dst.port < 2)) && ((net.src.port <= 3) || (net.dst.port != 4)))`},
		{`net.src.port > 1 || ((net.dst.port < 2) && (net.src.port <= 3)) || net.dst.port != 4`,
			`(((net.src.port > 1) || ((net.dst.port < 2) && (net.src.port <= 3))) || (net.dst.port != 4))`},
		{`net.src.port == 1 && net.src.port == 2 && net.src.port == 3`,
			`(((net.src.port == 1) && (net.src.port == 2)) && (net.src.port == 3))`},
		{`!(tls.sni == "a") && ! ( net.dst.port == 1 )`, `(!(tls.sni == "a") && !(net.dst.port == 1))`},
		{"tls.sni == \"a\"\n\t&&\r\nnet.dst.port == 1", `((tls.sni == "a") && (net.dst.port == 1))`},
		{`tls.sni==r#"a"#&&net.dst.port==1`, `((tls.sni == "a") && (net.dst.port == 1))`},
		// Transformations.
		{`lower(tls.sni) == "a"`, `(lower(tls.sni) == "a")`},
		{`lower ( tls.sni ) == "a"`, `(lower(tls.sni) == "a")`},
		{`any(tls.sni) == "a"`, `(tls.sni == "a")`},
		// Strings and raw strings.
		{`tls.sni == "q\"b\\s\n\r\t"`, `(tls.sni == "q\"b\\s\n\r\t")`},
		{`tls.sni == r#"a"b\n"#`, `(tls.sni == "a\"b\\n")`},
		{`tls.sni == ""`, `(tls.sni == "")`},
		{`tls.sni contains "ex"`, `(tls.sni contains "ex")`},
		{`tls.sni ~ r#"^a\.b$"#`, `(tls.sni ~ /^a\.b$/)`},
		// Integers: decimal, hexadecimal, octal, negative.
		{`net.dst.port == 443`, `(net.dst.port == 443)`},
		{`net.dst.port == 0x1bb`, `(net.dst.port == 443)`},
		{`net.dst.port == 0673`, `(net.dst.port == 443)`},
		{`net.dst.port == 08`, `(net.dst.port == 8)`},
		{`net.dst.port > -1`, `(net.dst.port > -1)`},
		// Addresses and networks.
		{`net.src.ip == 10.0.0.1`, `(net.src.ip == 10.0.0.1)`},
		{`net.src.ip == 2001:DB8::1`, `(net.src.ip == 2001:db8::1)`},
		{`net.src.ip == ::1`, `(net.src.ip == ::1)`},
		{`net.src.ip in 10.0.0.0/8`, `(net.src.ip in 10.0.0.0/8)`},
		{`net.src.ip not in 2001:db8::/32`, `(net.src.ip not in 2001:db8::/32)`},
		{`net.src.ip notin 10.0.0.0/8`, `(net.src.ip not in 10.0.0.0/8)`},
		// Kong's deprecated net.port.
		{`net.port == 80`, `(net.dst.port == 80)`},
		{strings.Repeat("(", 100) + `tls.sni == "a"` + strings.Repeat(")", 100), `(tls.sni == "a")`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			e, err := parseExpression(tt.in)
			if err != nil {
				t.Fatalf("parseExpression(%q) = %v", tt.in, err)
			}
			if got := show(e); got != tt.want {
				t.Fatalf("parseExpression(%q) = %s; want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestExpressionErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		// Syntax.
		{`! tls.sni == "a"`, " --> 1:1\n  |\n1 | ! tls.sni == \"a\"\n  | ^---\n  |\n  = expected term"},
		{`tls.sni === "a"`, " --> 1:11\n  |\n1 | tls.sni === \"a\"\n  |           ^---\n  |\n  = expected rhs"},
		{"tls.sni == \"a\" ||\n  ! net.dst.port == 2", " --> 2:3\n  |\n2 |   ! net.dst.port == 2\n  |   ^---\n  |\n  = expected term"},
		{`tls.sni == "a`, "= expected rhs"},
		{`tls.sni == "\a"`, "= expected rhs"},
		{`tls.sni == r#"a"`, "= expected rhs"},
		{`tls.sni`, "= expected binary_operator"},
		{`tls.sni is "a"`, "= expected binary_operator"},
		{`(tls.sni == "a"`, "= expected and_op or or_op"},
		{`tls.sni == "a" tls.sni == "b"`, "= expected EOI, and_op, or or_op"},
		{`tls.sni == "a" &&`, "= expected term"},
		{``, "= expected term"},
		{`tls.sni == abc`, "= expected rhs"},
		{`upper(tls.sni) == "a"`, " --> 1:1\n  |\n1 | upper(tls.sni) == \"a\"\n  | ^------------^\n  |\n  = unknown transformation function: upper"},
		{`tls.sni ~ 1`, "= regex operator can only be used with String operands"},
		{`tls.sni ~ "("`, "= error parsing regexp: missing closing ): `(`"},
		{`net.src.ip in 10.0.0.1/8`, "= host part of address was not zero"},
		{`net.src.ip in 2001:db8::1/32`, "= host part of address was not zero"},
		{`net.src.ip in 10.0.0.0/33`, "= couldn't parse address in network: 10.0.0.0/33"},
		{`net.src.ip == 999.1.1.1`, "= invalid IPv4 address syntax"},
		{`net.src.ip == 1:2:3:4:5:6:7:8:9`, "= invalid IPv6 address syntax"},
		{`net.src.ip == ::ffff:10.0.0.1`, "= expected EOI, and_op, or or_op"},
		{`net.dst.port == 99999999999999999999`, "= number too large to fit in target type"},
		// Types (atc-router's semantic checks).
		{`http.path == "/"`, "Unknown LHS field"},
		{`net.port.x == 1`, "Unknown LHS field"},
		{`net.src.port == "x"`, msgTypeMismatch},
		{`net.src.ip == "abc"`, msgTypeMismatch},
		{`net.src.ip == 123`, msgTypeMismatch},
		{`net.src.ip == 10.0.0.0/8`, msgTypeMismatch},
		{`tls.sni == 10.0.0.1`, msgTypeMismatch},
		{`tls.sni == 123`, msgTypeMismatch},
		{`net.src.ip in 10.0.0.1`, msgInCIDR},
		{`tls.sni in 10.0.0.0/8`, msgInCIDR},
		{`net.dst.port not in 10.0.0.0/8`, msgInCIDR},
		{`tls.sni in "abc"`, msgInCIDR},
		{`lower(net.src.port) == 1`, msgLowerString},
		{`lower(net.src.ip) == ::1`, msgLowerString},
		{`net.dst.port ~ "1"`, msgRegexString},
		{`net.dst.port ^= 1`, msgPrefixString},
		{`net.dst.port =^ 1`, msgPrefixString},
		{`tls.sni > "a"`, msgOrderInt},
		{`net.dst.port contains 1`, msgContainsString},
		{`net.src.port > 1 && net.src.port == "x"`, msgTypeMismatch},
		{`!(net.src.port == "x")`, msgTypeMismatch},
		// gong's bound on nesting.
		{strings.Repeat("(", 101) + `tls.sni == "a"` + strings.Repeat(")", 101), "= parentheses nest deeper than 100 levels"},
		{strings.Repeat("lower(", 101) + `tls.sni` + strings.Repeat(")", 101) + ` == "a"`, "= parentheses nest deeper than 100 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			err := ValidateExpression(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ValidateExpression(%q) = %v; want an error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestExpressionEval(t *testing.T) {
	plain := conn("tcp", "10.1.2.3:5000", "192.168.0.1:443", "")
	sni := conn("tls", "10.1.2.3:5000", "192.168.0.1:443", "A.Example.test")
	v6 := conn("tcp", "[2001:db8::7]:5000", "[2001:db8::1]:80", "")
	session := conn("udp", "10.1.2.3:53000", "192.168.0.1:53", "")
	tests := []struct {
		expr string
		ci   ConnInfo
		want bool
	}{
		{`net.protocol == "tcp"`, plain, true},
		{`net.protocol == "tcp"`, sni, false},
		{`net.protocol == "tls"`, sni, true},
		{`net.protocol == "udp"`, session, true},
		{`tls.sni == "A.Example.test"`, sni, true},
		{`tls.sni == "a.example.test"`, sni, false},
		{`lower(tls.sni) == "a.example.test"`, sni, true},
		{`tls.sni != "x"`, sni, true},
		{`tls.sni ^= "A."`, sni, true},
		{`tls.sni =^ ".test"`, sni, true},
		{`tls.sni contains "Example"`, sni, true},
		{`tls.sni ~ r#"^a\.(example|other)\.test$"#`, sni, false},
		{`lower(tls.sni) ~ r#"^a\.(example|other)\.test$"#`, sni, true},
		{`tls.sni ~ "xample"`, sni, true}, // a search, not anchored
		// A connection without SNI lacks tls.sni: every test of it fails,
		// negative ones too; ! of such a test holds.
		{`tls.sni == ""`, plain, false},
		{`tls.sni != "x"`, plain, false},
		{`tls.sni =^ ""`, plain, false},
		{`!(tls.sni == "x")`, plain, true},
		{`tls.sni != "x"`, conn("tls", "10.1.2.3:5000", "192.168.0.1:443", ""), false},
		{`net.src.port == 5000`, plain, true},
		{`net.src.port > 4999 && net.src.port >= 5000 && net.src.port < 5001 && net.src.port <= 5000`, plain, true},
		{`net.src.port > 5000`, plain, false},
		{`net.dst.port == 0x1bb`, plain, true},
		{`net.dst.port != 443`, plain, false},
		{`net.src.ip == 10.1.2.3`, plain, true},
		{`net.src.ip != 10.1.2.3`, plain, false},
		{`net.src.ip in 10.0.0.0/8`, plain, true},
		{`net.src.ip not in 10.0.0.0/8`, plain, false},
		{`net.dst.ip in 192.168.0.0/24 && net.dst.ip == 192.168.0.1`, plain, true},
		{`net.src.ip in 2001:db8::/32`, v6, true},
		{`net.dst.ip == 2001:db8::1`, v6, true},
		{`net.src.ip in 2001:db8::/32`, plain, false}, // family differs
		{`net.src.ip not in 2001:db8::/32`, plain, true},
		{`net.src.ip == ::ffff:0a01:0203`, plain, false}, // a mapped address is IPv6
		{`net.dst.port == 53 && net.protocol == "udp"`, session, true},
		// || binds tighter: this is udp && (port 1 || port 443).
		{`net.protocol == "udp" && net.dst.port == 1 || net.dst.port == 443`, plain, false},
		{`(net.protocol == "udp" && net.dst.port == 1) || net.dst.port == 443`, plain, true},
		{`!(net.dst.port == 443)`, plain, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/%s", tt.expr, tt.ci.Protocol, tt.ci.Src), func(t *testing.T) {
			e, err := parseExpression(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			ci := tt.ci
			if got := e.eval(&ci); got != tt.want {
				t.Fatalf("%s on %+v = %v; want %v", tt.expr, tt.ci, got, tt.want)
			}
		})
	}
}

// exprRoute builds an expression route of the given priority, named
// after its position.
func exprRoute(expression string, priority uint64, protocols ...string) *Route {
	return &Route{Expression: expression, Priority: priority, Protocols: protocols}
}

func TestExpressionsPriority(t *testing.T) {
	tests := []struct {
		name   string
		routes []*Route
		ci     ConnInfo
		want   string
	}{
		{"highest priority wins", []*Route{
			exprRoute(`net.dst.port == 443`, 10),
			exprRoute(`net.dst.port == 443`, 20),
			exprRoute(`net.dst.port == 443`, 5),
		}, toDst("192.168.0.1:443"), "r2"},
		{"equal priorities: the greater uuid", []*Route{
			exprRoute(`net.dst.port == 443`, 10),
			exprRoute(`net.dst.port == 443`, 10),
		}, toDst("192.168.0.1:443"), "r2"},
		{"a higher priority must match", []*Route{
			exprRoute(`net.dst.port == 443`, 10),
			exprRoute(`net.dst.port == 443 && net.src.port == 1`, 20),
		}, toDst("192.168.0.1:443"), "r1"},
		{"indexed and unindexed routes interleave by priority", []*Route{
			exprRoute(`net.dst.port == 443`, 10),
			exprRoute(`net.src.ip in 192.0.2.0/24`, 20),
			exprRoute(`tls.sni == "a.test" && net.dst.port == 443`, 30),
		}, conn("tls", "192.0.2.1:1", "192.168.0.1:443", "a.test"), "r3"},
		{"unindexed over indexed", []*Route{
			exprRoute(`net.dst.port == 443`, 10),
			exprRoute(`net.src.ip in 192.0.2.0/24`, 20),
		}, toDst("192.168.0.1:443"), "r2"},
		{"expression routes go before translated ones", []*Route{
			{SNIs: []string{"a.test"}, Sources: eps(ip("192.0.2.1")), Destinations: eps(ipPort("192.168.0.1", 443))},
			exprRoute(`net.dst.port == 443`, 0),
		}, conn("tls", "192.0.2.1:1", "192.168.0.1:443", "a.test"), "r2"},
		{"an expression route ignores snis, sources and destinations", []*Route{
			{Expression: `net.dst.port == 443`, SNIs: []string{"b.test"}, Sources: eps(port(9))},
		}, conn("tls", "192.0.2.1:1", "192.168.0.1:443", "a.test"), "r1"},
		// Kong's "works when route.priority is near 2^46".
		{"priority near 2^46", []*Route{
			exprRoute(`net.dst.port == 443`, MaxPriority-2),
			exprRoute(`net.dst.port == 443`, MaxPriority-1),
		}, toDst("192.168.0.1:443"), "r2"},
		{"no match", []*Route{
			exprRoute(`net.dst.port == 80`, 10),
		}, toDst("192.168.0.1:443"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, newRouter(t, Expressions, 0, tt.routes...), []matchCase{{"", tt.ci, tt.want}})
		})
	}
}

// TestExpressionsProtocols: kong/router/expressions.lua requires one of
// the route's protocols, except for a route of only tls or
// tls_passthrough.
func TestExpressionsProtocols(t *testing.T) {
	r := newRouter(t, Expressions, -1,
		&Route{Name: "tcp", Expression: `net.dst.port == 1`, Protocols: []string{"tcp"}},
		&Route{Name: "udp", Expression: `net.dst.port == 2`, Protocols: []string{"udp"}},
		&Route{Name: "tls", Expression: `net.dst.port == 3`, Protocols: []string{"tls"}},
		&Route{Name: "passthrough", Expression: `net.dst.port == 4`, Protocols: []string{"tls_passthrough"}},
		&Route{Name: "tcp-tls", Expression: `net.dst.port == 5`, Protocols: []string{"tcp", "tls"}},
		&Route{Name: "tls-udp", Expression: `net.dst.port == 6`, Protocols: []string{"tls", "udp"}},
		&Route{Name: "translated-tcp", Destinations: eps(port(7)), Protocols: []string{"tcp"}},
	)
	check(t, r, []matchCase{
		{"tcp on tcp", toDst("192.168.0.1:1"), "tcp"},
		{"udp on tcp route", udp(anySrc, "192.168.0.1:1"), ""},
		{"tls on tcp route", conn("tls", anySrc, "192.168.0.1:1", "a.test"), ""},
		{"udp", udp(anySrc, "192.168.0.1:2"), "udp"},
		{"tcp on udp route", toDst("192.168.0.1:2"), ""},
		{"tls route takes tcp", toDst("192.168.0.1:3"), "tls"},
		{"tls route takes udp", udp(anySrc, "192.168.0.1:3"), "tls"},
		{"tls_passthrough route takes tcp", toDst("192.168.0.1:4"), "passthrough"},
		{"tcp-tls takes tls", conn("tls", anySrc, "192.168.0.1:5", "a.test"), "tcp-tls"},
		{"tcp-tls takes tcp", toDst("192.168.0.1:5"), "tcp-tls"},
		{"tcp-tls refuses udp", udp(anySrc, "192.168.0.1:5"), ""},
		{"tls-udp refuses tcp", toDst("192.168.0.1:6"), ""},
		{"translated route filtered too", udp(anySrc, "192.168.0.1:7"), ""},
		{"translated route", toDst("192.168.0.1:7"), "translated-tcp"},
	})
}

// TestKongSpecExpressionsStream is the "Router (flavor = expressions)
// [stream]" case of Kong's spec/01-unit/08-router_spec.lua.
func TestKongSpecExpressionsStream(t *testing.T) {
	r := newRouter(t, Expressions, 0,
		&Route{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8101", Name: "1", Protocols: []string{"tls"},
			Expression: `tls.sni == "www.example.com"`, Priority: 100},
		&Route{ID: "e8fb37f1-102d-461e-9c51-6608a6bb8102", Name: "2", Protocols: []string{"tls_passthrough"},
			Expression: `tls.sni == "www.example.org"`, Priority: 100},
	)
	check(t, r, []matchCase{
		{"exec() should match tls with tls.sni", conn("tls", "127.0.0.1:1000", "127.0.0.1:1000", "www.example.com"), "1"},
		{"exec() should match tls_passthrough with tls.sni", conn("tls", "127.0.0.1:1000", "127.0.0.1:1000", "www.example.org"), "2"},
		{"no sni", conn("tcp", "127.0.0.1:1000", "127.0.0.1:1000", ""), ""},
	})
}

// TestTranslate pins the text Translate writes: Kong's
// (kong/router/transform.lua, as Kong's spec "check empty route fields"
// shows it) without the net.protocol guard on SNIs.
func TestTranslate(t *testing.T) {
	tests := []struct {
		route Route
		want  string
	}{
		{Route{Sources: eps(ip("127.0.0.1"))}, `(net.src.ip == 127.0.0.1)`},
		{Route{Sources: eps(ip("127.168.0.1/8"))}, `(net.src.ip in 127.0.0.0/8)`},
		{Route{Sources: eps(ip("127.0.0.1")), Destinations: eps(ip("192.168.0.1/16"))},
			`(net.src.ip == 127.0.0.1) && (net.dst.ip in 192.168.0.0/16)`},
		{Route{SNIs: []string{"www.example.org"}, Destinations: eps(ip("192.168.0.1/16"))},
			`(tls.sni == r#"www.example.org"#) && (net.dst.ip in 192.168.0.0/16)`},
		{Route{SNIs: []string{"*.a.test.", "b.*", "c.test."}},
			`(tls.sni =^ r#".a.test"# || tls.sni ^= r#"b."# || tls.sni == r#"c.test"#)`},
		{Route{Destinations: eps(ipPort("10.0.0.1", 80), port(81), ipPort("2001:db8::/32", 82))},
			`((net.dst.ip == 10.0.0.1 && net.dst.port == 80) || net.dst.port == 81 || (net.dst.ip in 2001:db8::/32 && net.dst.port == 82))`},
		{Route{SNIs: []string{`q"#x`}}, `(tls.sni == "q\"#x")`},
	}
	for _, tt := range tests {
		if got := Translate(&tt.route); got != tt.want {
			t.Errorf("Translate(%+v) = %s; want %s", tt.route, got, tt.want)
		}
		if err := ValidateExpression(tt.want); err != nil {
			t.Errorf("ValidateExpression(%s) = %v", tt.want, err)
		}
	}
}

// TestExpressionsCacheKeyHasProtocol: a route reading net.protocol makes
// the protocol part of the cache key, so a TCP connection and a UDP
// session with the same addresses do not share a result.
func TestExpressionsCacheKeyHasProtocol(t *testing.T) {
	r := newRouter(t, Expressions, 0, exprRoute(`net.protocol == "udp" && net.dst.port == 53`, 0))
	for range 2 {
		if got := name(r, udp(anySrc, "192.168.0.1:53")); got != "r1" {
			t.Fatalf("udp Match = %q; want r1", got)
		}
		if got := name(r, tcp(anySrc, "192.168.0.1:53")); got != "" {
			t.Fatalf("tcp Match after udp = %q; want no match", got)
		}
	}
}

// TestExpressionsAgainstReference compares the indexed expressions router
// with evaluating every route in priority order, on random expressions
// over a small universe.
func TestExpressionsAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	preds := []string{
		`net.dst.port == 1`, `net.dst.port == 2`, `net.dst.port != 1`, `net.dst.port >= 2`,
		`tls.sni == "a.test"`, `tls.sni == "b.test"`, `tls.sni =^ ".test"`, `lower(tls.sni) == "a.test"`,
		`tls.sni == ""`, `net.src.ip == 10.0.0.1`, `net.src.ip in 10.0.0.0/24`, `net.dst.ip not in 10.0.0.0/8`,
		`net.protocol == "udp"`, `net.src.port == 3`, `net.dst.port == 70000`,
	}
	randomExpr := func() string {
		var b strings.Builder
		for i := range 1 + rng.IntN(4) {
			if i > 0 {
				b.WriteString(pick(rng, []string{" && ", " || "}))
			}
			p := pick(rng, preds)
			if rng.IntN(6) == 0 {
				p = "!(" + p + ")"
			}
			b.WriteString(p)
		}
		return b.String()
	}
	for set := range 300 {
		routes := make([]*Route, 1+rng.IntN(12))
		for i := range routes {
			routes[i] = &Route{Name: fmt.Sprintf("r%d", i),
				ID:         fmt.Sprintf("%08x-0000-4000-8000-%012x", rng.Uint32(), i),
				Expression: randomExpr(), Priority: uint64(rng.IntN(3))}
		}
		r, err := New(routes, Options{Flavor: Expressions, CacheSize: -1})
		if err != nil {
			t.Fatalf("set %d: New = %v", set, err)
		}
		sorted := slices.Clone(routes)
		slices.SortStableFunc(sorted, func(a, b *Route) int {
			if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
				return c
			}
			return strings.Compare(b.ID, a.ID)
		})
		for range 60 {
			ci := randomConn(rng)
			var want *Route
			for _, rt := range sorted {
				e, _ := parseExpression(rt.Expression)
				if e.eval(&ci) {
					want = rt
					break
				}
			}
			if got, _ := r.Match(ci); got != want {
				var b strings.Builder
				for _, rt := range routes {
					fmt.Fprintf(&b, "  %s id=%s priority=%d %s\n", rt.Name, rt.ID, rt.Priority, rt.Expression)
				}
				t.Fatalf("set %d: Match(%+v) = %s; want %s\nroutes:\n%s", set, ci, describe(got), describe(want), b.String())
			}
		}
	}
}

// TestSNIRouteNeedsSNI: in every flavor, a route of snis never captures a
// connection that carries no SNI, so a plain TCP connection reaches the
// route of its destination (Kong's traditional_compatible would give it
// to the SNI route, which has the higher priority).
func TestSNIRouteNeedsSNI(t *testing.T) {
	for _, f := range allFlavors {
		t.Run(string(f), func(t *testing.T) {
			r := newRouter(t, f, 0,
				&Route{Name: "sni", Protocols: []string{"tls"}, SNIs: []string{"a.test"}},
				&Route{Name: "wildcard", Protocols: []string{"tls"}, SNIs: []string{"b.test"}, Sources: eps(ip("10.0.0.0/8"))},
				&Route{Name: "dst", Protocols: []string{"tcp"}, Destinations: eps(port(9000))},
			)
			check(t, r, []matchCase{
				{"plain tcp to the destination", tcp("10.0.0.1:1", "192.168.0.1:9000"), "dst"},
				{"tls with the sni", conn("tls", "10.0.0.1:1", "192.168.0.1:9000", "a.test"), "sni"},
				{"tls without sni", conn("tls", "10.0.0.1:1", "192.168.0.1:9001", ""), ""},
			})
		})
	}
}

// benchExpressionRoutes returns n expression routes, all indexable, of
// four shapes, plus four routes that the index cannot place (so every
// lookup evaluates them), whatever n.
func benchExpressionRoutes(n int) []*Route {
	routes := make([]*Route, 0, n+4)
	for k := range n {
		rt := &Route{ID: id(k + 1), Name: fmt.Sprintf("r%d", k), Priority: uint64(k % 100), Protocols: []string{"tcp", "tls"}}
		switch k % 4 {
		case 0:
			rt.Expression = fmt.Sprintf(`net.dst.port == %d`, 10000+k)
		case 1:
			rt.Expression = fmt.Sprintf(`tls.sni == "svc%d.example.com"`, k)
		case 2:
			rt.Expression = fmt.Sprintf(`tls.sni == "a.w%d.example.com" && net.src.ip in 13.0.0.0/8`, k)
		case 3:
			rt.Expression = fmt.Sprintf(`(net.dst.port == %d || net.dst.port == %d) && net.protocol == "tcp"`, 20000+k, 40000+k)
		}
		routes = append(routes, rt)
	}
	for i, e := range []string{`net.src.ip in 192.168.0.0/16`, `tls.sni =^ ".internal"`,
		`lower(tls.sni) == "legacy.example.com"`, `net.dst.port >= 60000`} {
		routes = append(routes, &Route{ID: id(n + i + 1), Name: fmt.Sprintf("rest%d", i), Expression: e})
	}
	return routes
}

// benchExpressionConns returns m connections aimed at routes of a set
// built by benchExpressionRoutes(n); every eighth one matches nothing.
func benchExpressionConns(n, m int) []ConnInfo {
	conns := make([]ConnInfo, m)
	for i := range conns {
		k := i * n / m
		ci := ConnInfo{Protocol: "tcp",
			Src: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(30000+i)),
			Dst: netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), 1)}
		switch k % 4 {
		case 0:
			ci.Dst = netip.AddrPortFrom(ci.Dst.Addr(), uint16(10000+k))
		case 1:
			ci.Protocol, ci.SNI = "tls", fmt.Sprintf("svc%d.example.com", k)
		case 2:
			ci.Protocol, ci.SNI = "tls", fmt.Sprintf("a.w%d.example.com", k)
			ci.Src = netip.AddrPortFrom(netip.MustParseAddr("13.1.2.3"), ci.Src.Port())
		case 3:
			ci.Dst = netip.AddrPortFrom(ci.Dst.Addr(), uint16(40000+k))
		}
		if i%8 == 7 {
			ci = ConnInfo{Protocol: "tls", SNI: "nowhere.example.net",
				Src: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(30000+i)),
				Dst: netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), 1)}
		}
		conns[i] = ci
	}
	return conns
}

func TestBenchExpressionConnsMatch(t *testing.T) {
	r, err := New(benchExpressionRoutes(1000), Options{Flavor: Expressions})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(r.exprs.rest); n != 4 {
		t.Errorf("%d routes left out of the index; want 4", n)
	}
	for i, ci := range benchExpressionConns(1000, 256) {
		_, ok := r.Match(ci)
		if want := i%8 != 7; ok != want {
			t.Errorf("Match(%+v) matched = %v; want %v", ci, ok, want)
		}
	}
}

// BenchmarkMatchExpressions measures Match on 10, 1,000 and 10,000
// expression routes, without and with the cache.
func BenchmarkMatchExpressions(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		routes, conns := benchExpressionRoutes(n), benchExpressionConns(n, 1024)
		for _, size := range []int{-1, 0} {
			mode := "uncached"
			if size == 0 {
				mode = "cached"
			}
			b.Run(fmt.Sprintf("routes=%d/%s", n, mode), func(b *testing.B) {
				benchMatch(b, routes, conns, Options{Flavor: Expressions, CacheSize: size})
			})
		}
	}
}

func BenchmarkNewExpressions(b *testing.B) {
	routes := benchExpressionRoutes(10000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(routes, Options{Flavor: Expressions}); err != nil {
			b.Fatal(err)
		}
	}
}
