package router

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// expressionOnly is set in the priority of every route written as an
// expression, so it goes before every route of snis, sources and
// destinations (kong/router/transform.lua get_priority: 0xFF << 56).
const expressionOnly uint64 = 0xFF << 56

// MaxPriority is the largest route priority Kong's schema accepts
// (2^46 - 1).
const MaxPriority = 1<<46 - 1

// ValidateExpression parses and type-checks a route expression against
// the stream fields, without building a router. Its error is ATC's text;
// Kong's schema prefixes it with "Router Expression failed validation: ".
func ValidateExpression(expression string) error {
	_, err := parseExpression(expression)
	return err
}

// compileExpressions compiles a route for the expressions flavor: its
// expression, or the one Translate writes for its snis, sources and
// destinations, and in both cases the condition on its protocols that
// kong/router/expressions.lua adds.
func compileExpressions(rt *Route) (route, error) {
	c := route{r: rt}
	var err error
	if c.uuid, err = parseUUID(rt.ID); err != nil {
		return c, err
	}
	text := rt.Expression
	if text != "" {
		if rt.Priority > MaxPriority {
			return c, fmt.Errorf("priority %d is greater than %d", rt.Priority, uint64(MaxPriority))
		}
		c.priority = expressionOnly | rt.Priority
	} else {
		for i, s := range rt.SNIs {
			if err := c.addSNI(s, TraditionalCompatible); err != nil {
				return c, fmt.Errorf("snis[%d]: %w", i, err)
			}
		}
		if text = Translate(rt); text == "" {
			return c, errors.New("could not categorize route")
		}
		c.priority = streamPriority(rt)
	}
	e, err := parseExpression(text)
	if err != nil {
		return c, fmt.Errorf("Router Expression failed validation: %w", err)
	}
	if cond := protocolCondition(rt.Protocols); cond != "" {
		pe, err := parseExpression(cond)
		if err != nil {
			return c, fmt.Errorf("protocols: %w", err)
		}
		e = &expr{kind: nodeAnd, l: e, r: pe}
	}
	c.expr = e
	return c, nil
}

// protocolCondition is the net.protocol test kong/router/expressions.lua
// adds to a route's expression: none for a route of only tls, https or
// tls_passthrough (so a plain connection can still be answered), else one
// of its protocols, tls_passthrough counting as tcp.
func protocolCondition(protocols []string) string {
	if len(protocols) == 0 || len(protocols) == 1 && slices.Contains([]string{"https", "tls", "tls_passthrough"}, protocols[0]) {
		return ""
	}
	var terms []string
	for _, p := range protocols {
		switch p {
		case "tls_passthrough":
			p = "tcp"
		case "grpc":
			p = "http"
		case "grpcs":
			p = "https"
		}
		terms = append(terms, "net.protocol == "+quote(p))
	}
	return "(" + strings.Join(terms, " || ") + ")"
}

// Translate writes a route's snis, sources and destinations as an
// expression, as kong/router/transform.lua get_expression does for a
// stream route, with one difference: Kong guards the SNI test with
// net.protocol != "tls", so an SNI route matches every connection that is
// not TLS; gong leaves the guard out, so it matches only connections that
// carry one of its SNIs. It returns "" for a route with none of the three.
func Translate(rt *Route) string {
	var parts []string
	if len(rt.SNIs) > 0 {
		var terms []string
		for _, s := range rt.SNIs {
			op, v := "==", trimDot(s)
			switch {
			case strings.HasPrefix(s, "*"):
				op, v = "=^", v[1:]
			case strings.HasSuffix(s, "*"):
				op, v = "^=", s[:len(s)-1]
			}
			terms = append(terms, "tls.sni "+op+" "+quote(v))
		}
		parts = append(parts, "("+strings.Join(terms, " || ")+")")
	}
	if s := translateNets("net.src", rt.Sources); s != "" {
		parts = append(parts, s)
	}
	if s := translateNets("net.dst", rt.Destinations); s != "" {
		parts = append(parts, s)
	}
	return strings.Join(parts, " && ")
}

// translateNets is transform.lua gen_for_nets. An IPv4 network is written
// with its host bits cleared; an IPv6 one as given (ATC refuses it if
// its host bits are set).
func translateNets(prefix string, eps []Endpoint) string {
	if len(eps) == 0 {
		return ""
	}
	var terms []string
	for _, ep := range eps {
		var ipTerm, portTerm string
		if ep.IP != "" {
			ipTerm = prefix + ".ip == " + ep.IP
			if addr, bits, ok := strings.Cut(ep.IP, "/"); ok {
				if p, err := netip.ParsePrefix(ep.IP); err == nil && p.Addr().Is4() {
					addr = p.Masked().Addr().String()
				}
				ipTerm = prefix + ".ip in " + addr + "/" + bits
			}
		}
		if ep.HasPort {
			portTerm = prefix + ".port == " + strconv.Itoa(int(ep.Port))
		}
		switch {
		case ipTerm == "":
			terms = append(terms, portTerm)
		case portTerm == "":
			terms = append(terms, ipTerm)
		default:
			terms = append(terms, "("+ipTerm+" && "+portTerm+")")
		}
	}
	return "(" + strings.Join(terms, " || ") + ")"
}

// quote writes s as transform.lua escape_str does: a raw string unless s
// holds `"#`.
func quote(s string) string {
	if !strings.Contains(s, `"#`) {
		return `r#"` + s + `"#`
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// exprIndex finds the expression routes that may match a connection: a
// route whose expression requires net.dst.port (or tls.sni) to equal one
// of a few values is listed under those values only; the others are
// listed in rest. Lists hold route positions in ascending order.
type exprIndex struct {
	port map[uint16][]int32
	sni  map[string][]int32
	rest []int32
}

// requirement is what a route's top-level && chain demands of one field:
// one of ports (or snis), an empty set meaning it can never hold.
type requirement struct {
	ports    []uint16
	snis     []string
	hasPorts bool
	hasSNIs  bool
}

func (e *expr) requirement() requirement {
	var req requirement
	for _, c := range e.conjuncts() {
		if ports, ok := valueSet(c, dstPortTest); ok && !req.hasPorts {
			req.ports, req.hasPorts = ports, true
		}
		if snis, ok := valueSet(c, sniTest); ok && !req.hasSNIs {
			req.snis, req.hasSNIs = snis, true
		}
	}
	return req
}

func (e *expr) conjuncts() []*expr {
	if e.kind == nodeAnd {
		return append(e.l.conjuncts(), e.r.conjuncts()...)
	}
	return []*expr{e}
}

// valueSet reports the values e requires of one field when e is a test
// that leaf accepts, or an || of such tests.
func valueSet[T any](e *expr, leaf func(p *predicate) ([]T, bool)) ([]T, bool) {
	switch e.kind {
	case nodeOr:
		l, ok1 := valueSet(e.l, leaf)
		r, ok2 := valueSet(e.r, leaf)
		return append(l, r...), ok1 && ok2
	case nodePredicate:
		return leaf(&e.p)
	}
	return nil, false
}

// dstPortTest accepts net.dst.port == N.
func dstPortTest(p *predicate) ([]uint16, bool) {
	if p.field != fieldDstPort || p.op != opEq {
		return nil, false
	}
	if p.rhs.num < 0 || p.rhs.num > math.MaxUint16 {
		return nil, true
	}
	return []uint16{uint16(p.rhs.num)}, true
}

// sniTest accepts tls.sni == "name" (without lower()).
func sniTest(p *predicate) ([]string, bool) {
	if p.field != fieldSNI || p.op != opEq || p.lower {
		return nil, false
	}
	if p.rhs.str == "" {
		return nil, true // a connection without SNI lacks the field
	}
	return []string{p.rhs.str}, true
}

// indexExpressions fills r.exprs, listing each route under the field
// whose lists, counted over all routes, are the shortest for it; and
// sets the cache key mask to the fields the expressions read.
func (r *Router) indexExpressions() {
	reqs := make([]requirement, len(r.routes))
	ports, snis := map[uint16]int{}, map[string]int{}
	for i := range r.routes {
		reqs[i] = r.routes[i].expr.requirement()
		for _, p := range reqs[i].ports {
			ports[p]++
		}
		for _, s := range reqs[i].snis {
			snis[s]++
		}
		r.routes[i].expr.readFields(&r.key)
	}
	x := exprIndex{port: map[uint16][]int32{}, sni: map[string][]int32{}}
	for i, req := range reqs {
		pos := int32(i)
		portCost, sniCost := 0, 0
		for _, p := range req.ports {
			portCost = max(portCost, ports[p])
		}
		for _, s := range req.snis {
			sniCost = max(sniCost, snis[s])
		}
		switch {
		case req.hasSNIs && (!req.hasPorts || sniCost <= portCost):
			for _, s := range req.snis {
				x.sni[s] = appendOnce(x.sni[s], pos)
			}
		case req.hasPorts:
			for _, p := range req.ports {
				x.port[p] = appendOnce(x.port[p], pos)
			}
		default:
			x.rest = append(x.rest, pos)
		}
	}
	r.exprs = x
}

// readFields marks in m the connection facts e reads.
func (e *expr) readFields(m *keyMask) {
	if e.kind != nodePredicate {
		e.l.readFields(m)
		if e.r != nil {
			e.r.readFields(m)
		}
		return
	}
	switch e.p.field {
	case fieldProtocol:
		m.protocol = true
	case fieldSrcIP:
		m.srcIP = true
	case fieldSrcPort:
		m.srcPort = true
	case fieldDstIP:
		m.dstIP = true
	case fieldDstPort:
		m.dstPort = true
	case fieldSNI:
		m.sni = true
	}
}

// matchExpressions returns the position of the first route in evaluation
// order whose expression holds for ci, or -1.
func (r *Router) matchExpressions(ci *ConnInfo) int32 {
	s := search{r: r, ci: ci, best: math.MaxInt32}
	if ci.Dst.Addr().IsValid() {
		s.scan(r.exprs.port[ci.Dst.Port()])
	}
	if ci.SNI != "" {
		s.scan(r.exprs.sni[ci.SNI])
	}
	s.scan(r.exprs.rest)
	if s.best == math.MaxInt32 {
		return -1
	}
	return s.best
}
