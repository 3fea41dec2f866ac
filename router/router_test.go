package router

import (
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name   string
		flavor Flavor
		route  Route
		want   string // substring of the error
	}{
		{"expression syntax", Expressions, Route{ID: id(1), Expression: `net.dst.port == `},
			"route " + id(1) + ": Router Expression failed validation:  --> 1:17"},
		{"expression type", Expressions, Route{ID: id(1), Expression: `net.src.port == "x"`},
			"route " + id(1) + ": Router Expression failed validation: Type mismatch between the LHS and RHS values of predicate"},
		{"expressions id not a uuid", Expressions, Route{ID: "r", Expression: `net.dst.port == 1`},
			`invalid route id "r": expected a UUID`},
		{"expressions priority too large", Expressions, Route{ID: id(1), Expression: `net.dst.port == 1`, Priority: 1 << 46},
			"priority 70368744177664 is greater than 70368744177663"},
		{"expressions route without anything", Expressions, Route{ID: id(1), Protocols: []string{"tcp"}},
			"could not categorize route"},
		{"unknown flavor", "fancy", Route{ID: id(1), Sources: eps(port(1))},
			`invalid router_flavor "fancy"`},
		{"no attribute", Traditional, Route{ID: id(1)}, "could not categorize route"},
		{"no attribute compat", TraditionalCompatible, Route{ID: id(1)}, "could not categorize route"},
		{"empty endpoint", Traditional, Route{ID: id(1), Sources: eps(Endpoint{})},
			"sources[0]: at least one of these fields must be non-empty: 'ip', 'port'"},
		{"invalid ip", TraditionalCompatible, Route{ID: id(1), Destinations: eps(port(1), ip("10.0.0.300"))},
			"destinations[1]: invalid ip or cidr range: '10.0.0.300'"},
		{"invalid cidr", Traditional, Route{ID: id(1), Sources: eps(ip("10.0.0.0/33"))},
			"invalid ip or cidr range: '10.0.0.0/33'"},
		{"ip with zone", Traditional, Route{ID: id(1), Sources: eps(ip("fe80::1%eth0"))},
			"invalid ip or cidr range"},
		{"ipv6 cidr host bits compat", TraditionalCompatible, Route{ID: id(1), Sources: eps(ip("2001:db8::1/32"))},
			"host part of address was not zero"},
		{"wildcard sni traditional", Traditional, Route{ID: id(1), SNIs: []string{"*.example.com"}},
			"snis[0]: wildcard sni \"*.example.com\" needs router_flavor = traditional_compatible"},
		{"wildcard sni in the middle", TraditionalCompatible, Route{ID: id(1), SNIs: []string{"a.*.com"}},
			"wildcard must be leftmost or rightmost character"},
		{"two wildcards", TraditionalCompatible, Route{ID: id(1), SNIs: []string{"*.example.*"}},
			"only one wildcard must be specified"},
		{"empty sni", Traditional, Route{ID: id(1), SNIs: []string{""}}, "empty sni"},
		{"compat id not a uuid", TraditionalCompatible, Route{ID: "route-1", Sources: eps(port(1))},
			`invalid route id "route-1": expected a UUID`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := tt.route
			_, err := New([]*Route{&rt}, Options{Flavor: tt.flavor})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New(%s) = %v; want error containing %q", tt.flavor, err, tt.want)
			}
		})
	}

	t.Run("duplicate id", func(t *testing.T) {
		routes := []*Route{{ID: id(1), Sources: eps(port(1))}, {ID: id(1), Sources: eps(port(2))}}
		_, err := New(routes, Options{Flavor: Traditional})
		if err == nil || !strings.Contains(err.Error(), "duplicate id") {
			t.Fatalf("New = %v; want duplicate id error", err)
		}
	})
	t.Run("traditional id is free-form", func(t *testing.T) {
		if _, err := New([]*Route{{ID: "route-1", Sources: eps(port(1))}}, Options{Flavor: Traditional}); err != nil {
			t.Fatalf("New = %v; want nil", err)
		}
	})
	t.Run("default flavor", func(t *testing.T) {
		r, err := New(nil, Options{})
		if err != nil || r.Flavor() != TraditionalCompatible {
			t.Fatalf("New(nil, {}) = %v, %v; want traditional_compatible", r, err)
		}
		if rt, ok := r.Match(tcp(anySrc, anyDst)); ok {
			t.Fatalf("Match on an empty router = %v; want no match", rt)
		}
	})
}

// TestMatchBothFlavors covers the rules all flavors share (§3.2): OR
// within an attribute, AND across attributes, ports, addresses, CIDRs.
func TestMatchBothFlavors(t *testing.T) {
	routes := func() []*Route {
		return []*Route{
			{Name: "dst-port", Destinations: eps(port(9000), port(9001))},
			{Name: "dst-ip", Destinations: eps(ip("10.1.0.1"))},
			{Name: "dst-cidr", Destinations: eps(ip("10.2.0.0/16"))},
			{Name: "dst-ip-port", Destinations: eps(ipPort("10.3.0.1", 7000))},
			{Name: "dst-cidr-port", Destinations: eps(ipPort("10.4.0.0/16", 7000))},
			{Name: "dst-v6", Destinations: eps(ip("2001:db8::1"))},
			{Name: "dst-v6-cidr", Destinations: eps(ip("2001:db9::/32"))},
			{Name: "src-port", Sources: eps(port(5555))},
			{Name: "src-ip", Sources: eps(ip("172.16.0.1"), ip("172.16.0.2"))},
			{Name: "src-cidr", Sources: eps(ip("172.17.0.0/16"))},
			{Name: "src-and-dst", Sources: eps(ip("172.18.0.1")), Destinations: eps(port(8000))},
		}
	}
	cases := []matchCase{
		{"dst port", toDst("198.51.100.7:9000"), "dst-port"},
		{"dst port second entry", toDst("198.51.100.7:9001"), "dst-port"},
		{"dst port miss", toDst("198.51.100.7:9002"), ""},
		{"dst ip any port", toDst("10.1.0.1:1"), "dst-ip"},
		{"dst ip miss", toDst("10.1.0.2:1"), ""},
		{"dst cidr", toDst("10.2.255.3:1"), "dst-cidr"},
		{"dst cidr miss", toDst("10.5.0.1:1"), ""},
		{"dst ip+port", toDst("10.3.0.1:7000"), "dst-ip-port"},
		{"dst ip+port wrong port", toDst("10.3.0.1:7001"), ""},
		{"dst ip+port wrong ip", toDst("10.3.0.2:7000"), ""},
		{"dst cidr+port", toDst("10.4.1.1:7000"), "dst-cidr-port"},
		{"dst cidr+port wrong port", toDst("10.4.1.1:7001"), ""},
		{"dst ipv6", toDst("[2001:db8::1]:1"), "dst-v6"},
		{"dst ipv6 miss", toDst("[2001:db8::2]:1"), ""},
		{"dst ipv6 cidr", toDst("[2001:db9:ffff::1]:1"), "dst-v6-cidr"},
		{"dst ipv6 cidr miss", toDst("[2001:dba::1]:1"), ""},
		{"dst ipv4-mapped client address", toDst("[::ffff:10.1.0.1]:1"), "dst-ip"},
		{"src port", fromSrc("192.0.2.9:5555"), "src-port"},
		{"src ip second entry", fromSrc("172.16.0.2:1"), "src-ip"},
		{"src cidr", fromSrc("172.17.3.4:1"), "src-cidr"},
		{"src miss", fromSrc("172.19.0.1:1"), ""},
		{"src and dst", tcp("172.18.0.1:1", "198.51.100.7:8000"), "src-and-dst"},
		{"src and dst, src only", tcp("172.18.0.1:1", "198.51.100.7:8001"), ""},
		{"src and dst, dst only", tcp("172.18.0.2:1", "198.51.100.7:8000"), ""},
		{"udp session", udp("192.0.2.9:5555", anyDst), "src-port"},
	}
	for _, f := range allFlavors {
		t.Run(string(f), func(t *testing.T) {
			check(t, newRouter(t, f, 0, routes()...), cases)
		})
	}
}

// TestMatchSNI covers exact SNIs on TLS connections, where both flavors
// agree (for other protocols see TestSNIAndProtocol).
func TestMatchSNI(t *testing.T) {
	routes := func() []*Route {
		return []*Route{
			{Name: "sni", SNIs: []string{"a.example.com", "b.example.com"}},
			{Name: "sni-dot", SNIs: []string{"dot.example.com."}},
			{Name: "sni-and-dst", SNIs: []string{"c.example.com"}, Destinations: eps(port(8443))},
		}
	}
	cases := []matchCase{
		{"sni", tls("b.example.com"), "sni"},
		{"sni is case-sensitive", tls("B.example.com"), ""},
		{"sni miss", tls("x.example.com"), ""},
		{"route sni trailing dot ignored", tls("dot.example.com"), "sni-dot"},
		{"client sni used as received", tls("dot.example.com."), ""},
		{"tls without sni", tls(""), ""},
		{"sni and dst", conn("tls", anySrc, "198.51.100.7:8443", "c.example.com"), "sni-and-dst"},
		{"sni and dst, wrong sni", conn("tls", anySrc, "198.51.100.7:8443", "a.example.org"), ""},
		{"sni and dst, wrong port", conn("tls", anySrc, "198.51.100.7:8444", "c.example.com"), ""},
	}
	for _, f := range allFlavors {
		t.Run(string(f), func(t *testing.T) {
			check(t, newRouter(t, f, 0, routes()...), cases)
		})
	}
}

// TestProtocolsDoNotFilter: route protocols play no part in matching in
// either flavor (§7.1 quirk 1).
func TestProtocolsDoNotFilter(t *testing.T) {
	for _, f := range flavors {
		t.Run(string(f), func(t *testing.T) {
			r := newRouter(t, f, 0,
				&Route{Name: "udp-only", Protocols: []string{"udp"}, Destinations: eps(port(53))},
				&Route{Name: "tcp-only", Protocols: []string{"tcp"}, Destinations: eps(port(80))},
				&Route{Name: "tls-only", Protocols: []string{"tls"}, Destinations: eps(port(443))},
			)
			check(t, r, []matchCase{
				{"tcp to udp route", toDst("198.51.100.7:53"), "udp-only"},
				{"udp to tcp route", udp(anySrc, "198.51.100.7:80"), "tcp-only"},
				{"plain tcp to tls route", toDst("198.51.100.7:443"), "tls-only"},
			})
		})
	}
}

// TestSNIAndProtocol: traditional always requires the SNI; compat skips
// SNI conditions unless the connection is TLS (§7.1 quirk 2), but, unlike
// Kong, never lets a connection without SNI match an SNI route.
func TestSNIAndProtocol(t *testing.T) {
	routes := func() []*Route {
		return []*Route{
			{Name: "sni-only", Protocols: []string{"tls"}, SNIs: []string{"a.test"}},
			{Name: "sni-and-src", Protocols: []string{"tls"}, SNIs: []string{"b.test"}, Sources: eps(ip("10.0.0.1"))},
		}
	}
	tests := []struct {
		flavor Flavor
		cases  []matchCase
	}{
		{Traditional, []matchCase{
			{"tls sni", tls("a.test"), "sni-only"},
			{"tcp without sni", fromSrc("10.0.0.9:1"), ""},
			{"udp without sni", udp("10.0.0.9:1", anyDst), ""},
			{"protocol ignored when sni given", conn("tcp", anySrc, anyDst, "a.test"), "sni-only"},
			{"tls, src matches, sni does not", conn("tls", "10.0.0.1:1", anyDst, "c.test"), ""},
			{"tcp, src matches, no sni", fromSrc("10.0.0.1:1"), ""},
		}},
		{TraditionalCompatible, []matchCase{
			{"tls sni", tls("a.test"), "sni-only"},
			{"tls other sni", tls("c.test"), ""},
			{"tls empty sni", tls(""), ""},
			{"tcp without sni", fromSrc("10.0.0.9:1"), ""},
			{"udp without sni", udp("10.0.0.9:1", anyDst), ""},
			{"tcp naming an sni skips the sni test", conn("tcp", "10.0.0.9:1", anyDst, "x.test"), "sni-only"},
			{"tls, src matches, sni does not", conn("tls", "10.0.0.1:1", anyDst, "c.test"), ""},
			{"tls, src and sni match", conn("tls", "10.0.0.1:1", anyDst, "b.test"), "sni-and-src"},
			{"tcp, src matches, no sni", fromSrc("10.0.0.1:1"), ""},
			// Both have the SNI bit; sni-and-src adds source bits.
			{"tcp naming an sni, src matches", conn("tcp", "10.0.0.1:1", anyDst, "x.test"), "sni-and-src"},
		}},
		// Translate leaves Kong's net.protocol guard out: the SNI is
		// always tested.
		{Expressions, []matchCase{
			{"tls sni", tls("a.test"), "sni-only"},
			{"tls other sni", tls("c.test"), ""},
			{"tls empty sni", tls(""), ""},
			{"tcp without sni", fromSrc("10.0.0.9:1"), ""},
			{"udp without sni", udp("10.0.0.9:1", anyDst), ""},
			{"tcp naming an sni tests it", conn("tcp", "10.0.0.9:1", anyDst, "x.test"), ""},
			{"tcp naming the sni", conn("tcp", "10.0.0.9:1", anyDst, "a.test"), "sni-only"},
			{"tls, src and sni match", conn("tls", "10.0.0.1:1", anyDst, "b.test"), "sni-and-src"},
			{"tcp, src matches, no sni", fromSrc("10.0.0.1:1"), ""},
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.flavor), func(t *testing.T) {
			// No cache: in compat, a TLS connection without SNI and a TCP
			// connection share cache entries (see TestCacheKeyOmitsProtocol).
			check(t, newRouter(t, tt.flavor, -1, routes()...), tt.cases)
		})
	}
}

// TestSNIWildcards: compat only (§3.2); Kong's spec "[wildcard sni]".
func TestSNIWildcards(t *testing.T) {
	for _, f := range atcFlavors {
		t.Run(string(f), func(t *testing.T) { testSNIWildcards(t, f) })
	}
}

func testSNIWildcards(t *testing.T, f Flavor) {
	r := newRouter(t, f, 0,
		&Route{Name: "leftmost", SNIs: []string{"*.sni.test"}},
		&Route{Name: "rightmost", SNIs: []string{"sni.*"}},
		&Route{Name: "leftmost-dot", SNIs: []string{"*.dot.test."}},
		&Route{Name: "no-dot", SNIs: []string{"*bare.test"}},
		&Route{Name: "prefix-keeps-dot", SNIs: []string{"pre.fix.*"}},
	)
	check(t, r, []matchCase{
		{"leftmost one label", tls("foo.sni.test"), "leftmost"},
		{"leftmost two labels", tls("foo.bar.sni.test"), "leftmost"},
		{"leftmost needs a label, rightmost takes it", tls("sni.test"), "rightmost"},
		{"no wildcard fits", tls("x.sni.test2"), ""},
		{"rightmost one label", tls("sni.foo"), "rightmost"},
		{"rightmost two labels", tls("sni.foo.bar"), "rightmost"},
		{"rightmost needs the dot", tls("snifoo"), ""},
		{"neither", tls("bar.sni.foo"), ""},
		{"neither, suffix after", tls("foo.sni.test.bar"), ""},
		{"trailing dot dropped before suffix", tls("a.dot.test"), "leftmost-dot"},
		{"suffix is a plain string suffix", tls("xbare.test"), "no-dot"},
		{"suffix may be the whole name", tls("bare.test"), "no-dot"},
		{"prefix", tls("pre.fix.x"), "prefix-keeps-dot"},
		{"no sni, no match", toDst("198.51.100.7:1"), ""},
	})
}

// TestCatchAllSNI: a route SNI "*" becomes an empty suffix, which every
// TLS server name has; a TLS connection without SNI does not match it.
func TestCatchAllSNI(t *testing.T) {
	for _, f := range atcFlavors {
		t.Run(string(f), func(t *testing.T) {
			r := newRouter(t, f, -1, &Route{Name: "all", SNIs: []string{"*"}})
			check(t, r, []matchCase{
				{"some name", tls("x.test"), "all"},
				{"no name", tls(""), ""},
			})
		})
	}
}

// TestIPText: the traditional flavor compares plain IPs as text (§7.1
// quirk 4); compat parses them.
func TestIPText(t *testing.T) {
	routes := func() []*Route {
		return []*Route{
			{Name: "upper", Sources: eps(ip("2001:DB8::1"))},
			{Name: "long", Sources: eps(ip("2001:db8:0:0:0:0:0:2"))},
			{Name: "mapped", Sources: eps(ip("::ffff:10.0.0.3"))},
			{Name: "canonical", Sources: eps(ip("2001:db8::4"))},
			{Name: "upper-port", Sources: eps(ipPort("2001:DB8::5", 80), port(81))},
		}
	}
	tests := []struct {
		flavor Flavor
		cases  []matchCase
	}{
		{Traditional, []matchCase{
			{"upper-case text never matches", fromSrc("[2001:db8::1]:1"), ""},
			{"uncompressed text never matches", fromSrc("[2001:db8::2]:1"), ""},
			{"mapped text never matches ipv4", fromSrc("10.0.0.3:1"), ""},
			{"canonical text matches", fromSrc("[2001:db8::4]:1"), "canonical"},
			{"other entry still matches", fromSrc("[2001:db8::5]:81"), "upper-port"},
			{"ip+port entry with odd text", fromSrc("[2001:db8::5]:80"), ""},
		}},
		{TraditionalCompatible, []matchCase{
			{"upper-case", fromSrc("[2001:db8::1]:1"), "upper"},
			{"uncompressed", fromSrc("[2001:db8::2]:1"), "long"},
			{"mapped is not ipv4", fromSrc("10.0.0.3:1"), ""},
			{"canonical", fromSrc("[2001:db8::4]:1"), "canonical"},
			{"ip+port entry", fromSrc("[2001:db8::5]:80"), "upper-port"},
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.flavor), func(t *testing.T) {
			check(t, newRouter(t, tt.flavor, 0, routes()...), tt.cases)
		})
	}
}

// TestCacheKeyOmitsProtocol: like Kong, the cache key has no protocol
// (§7.1 quirk 6). In compat a TLS connection and a TCP connection naming
// the same SNI therefore share an entry, whichever came first deciding
// for both (only tests build a TCP connection with an SNI).
func TestCacheKeyOmitsProtocol(t *testing.T) {
	routes := func() []*Route {
		return []*Route{{Name: "sni", SNIs: []string{"a.test"}}}
	}
	plain := conn("tcp", anySrc, anyDst, "b.test")
	other := conn("tls", anySrc, anyDst, "b.test")

	uncached := newRouter(t, TraditionalCompatible, -1, routes()...)
	if got := name(uncached, other); got != "" {
		t.Fatalf("uncached Match(%+v) = %q; want no match", other, got)
	}
	if got := name(uncached, plain); got != "sni" {
		t.Fatalf("uncached Match(%+v) = %q; want %q", plain, got, "sni")
	}

	cached := newRouter(t, TraditionalCompatible, 0, routes()...)
	name(cached, other)
	if got := name(cached, plain); got != "" {
		t.Fatalf("Match(%+v) after a TLS connection = %q; want the cached miss", plain, got)
	}

	cached = newRouter(t, TraditionalCompatible, 0, routes()...)
	name(cached, plain)
	if got := name(cached, other); got != "sni" {
		t.Fatalf("Match(%+v) after a TCP connection = %q; want the cached %q", other, got, "sni")
	}
}

// TestCacheKeyMask: facts no route reads stay out of the key, so the
// cache holds one entry for many connections.
func TestCacheKeyMask(t *testing.T) {
	r := newRouter(t, TraditionalCompatible, 0, &Route{Name: "web", Destinations: eps(port(80))})
	for p := range uint16(100) {
		ci := tcp("192.0.2.1:"+strconv.Itoa(1000+int(p)), "198.51.100.1:80")
		if got := name(r, ci); got != "web" {
			t.Fatalf("Match(%+v) = %q; want %q", ci, got, "web")
		}
		name(r, tcp("192.0.2.1:"+strconv.Itoa(1000+int(p)), "198.51.100.1:81"))
	}
	if n := r.pos.Len(); n != 1 {
		t.Errorf("positive cache holds %d entries; want 1", n)
	}
	if n := r.neg.Len(); n != 1 {
		t.Errorf("negative cache holds %d entries; want 1", n)
	}
}

func TestCacheBounded(t *testing.T) {
	r := newRouter(t, Traditional, 16, &Route{Name: "src", Sources: eps(port(1))})
	for p := range 1000 {
		name(r, fromSrc("192.0.2.1:"+strconv.Itoa(p+2)))
	}
	if n := r.neg.Len(); n != 16 {
		t.Errorf("negative cache holds %d entries; want 16", n)
	}
}

func TestCacheSizeDefault(t *testing.T) {
	tests := []struct{ routes, want int }{
		{0, 5000}, {1, 5000}, {5000, 5000}, {5001, 10000}, {150000, 100000},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.routes), func(t *testing.T) {
			routes := make([]*Route, tt.routes)
			for i := range routes {
				routes[i] = &Route{ID: id(i), Destinations: eps(port(uint16(i)))}
			}
			r, err := New(routes, Options{Flavor: Traditional})
			if err != nil {
				t.Fatal(err)
			}
			// Fill past the size and see where it stops.
			for p := range tt.want + 10 {
				r.neg.Add(cacheKey{sni: strconv.Itoa(p)}, struct{}{})
			}
			if n := r.neg.Len(); n != tt.want {
				t.Errorf("cache size for %d routes = %d; want %d", tt.routes, n, tt.want)
			}
		})
	}
}

func TestConcurrentMatch(t *testing.T) {
	for _, f := range flavors {
		t.Run(string(f), func(t *testing.T) {
			routes, conns := benchRoutes(200, f), benchConns(200, 64)
			r, err := New(routes, Options{Flavor: f, CacheSize: 32})
			if err != nil {
				t.Fatal(err)
			}
			ref, err := New(routes, Options{Flavor: f, CacheSize: -1})
			if err != nil {
				t.Fatal(err)
			}
			want := make([]string, len(conns))
			for i, ci := range conns {
				want[i] = name(ref, ci)
			}
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for n := range 500 {
						i := (g*31 + n) % len(conns)
						if got := name(r, conns[i]); got != want[i] {
							t.Errorf("Match(%+v) = %q; want %q", conns[i], got, want[i])
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
