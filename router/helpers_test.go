package router

import (
	"fmt"
	"net/netip"
	"testing"
)

// Endpoint constructors.
func ip(s string) Endpoint               { return Endpoint{IP: s} }
func port(p uint16) Endpoint             { return Endpoint{Port: p, HasPort: true} }
func ipPort(s string, p uint16) Endpoint { return Endpoint{IP: s, Port: p, HasPort: true} }

func eps(e ...Endpoint) []Endpoint { return e }

// id returns a UUID whose last group is n, so greater n means greater UUID.
func id(n int) string { return fmt.Sprintf("e8fb37f1-102d-461e-9c51-%012x", n) }

// conn builds a ConnInfo; src and dst are "ip:port" or "[ip6]:port".
func conn(proto, src, dst, sni string) ConnInfo {
	return ConnInfo{
		Protocol: proto,
		Src:      netip.MustParseAddrPort(src),
		Dst:      netip.MustParseAddrPort(dst),
		SNI:      sni,
	}
}

// Addresses that no route in the tests uses.
const (
	anySrc = "192.0.2.1:40000"
	anyDst = "198.51.100.1:40001"
)

func tcp(src, dst string) ConnInfo { return conn("tcp", src, dst, "") }
func udp(src, dst string) ConnInfo { return conn("udp", src, dst, "") }
func tls(sni string) ConnInfo      { return conn("tls", anySrc, anyDst, sni) }
func fromSrc(src string) ConnInfo  { return tcp(src, anyDst) }
func toDst(dst string) ConnInfo    { return tcp(anySrc, dst) }

var flavors = []Flavor{Traditional, TraditionalCompatible}

// atcFlavors are the flavors built on Kong's ATC router. Tests of
// traditional_compatible run through the expressions flavor too, where
// routes of snis, sources and destinations are translated as
// kong/router/transform.lua does (Translate): both must agree.
var atcFlavors = []Flavor{TraditionalCompatible, Expressions}

var allFlavors = []Flavor{Traditional, TraditionalCompatible, Expressions}

// newRouter builds a router, naming each route after its position
// ("r1", "r2", ...) when it has no name and giving it an id and an age in
// that order.
func newRouter(t testing.TB, flavor Flavor, cacheSize int, routes ...*Route) *Router {
	t.Helper()
	for i, rt := range routes {
		if rt.Name == "" {
			rt.Name = fmt.Sprintf("r%d", i+1)
		}
		if rt.ID == "" {
			rt.ID = id(i + 1)
		}
		if rt.CreatedAt == 0 {
			rt.CreatedAt = int64(i + 1)
		}
	}
	r, err := New(routes, Options{Flavor: flavor, CacheSize: cacheSize})
	if err != nil {
		t.Fatalf("New(%s) = %v", flavor, err)
	}
	return r
}

// name returns the matched route's name, or "" for no match.
func name(r *Router, ci ConnInfo) string {
	rt, ok := r.Match(ci)
	if !ok {
		return ""
	}
	return rt.Name
}

// check runs Match for every case, twice: the second lookup is served by
// the cache.
func check(t *testing.T, r *Router, cases []matchCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			for range 2 {
				if got := name(r, tt.ci); got != tt.want {
					t.Fatalf("Match(%+v) = %q; want %q", tt.ci, got, tt.want)
				}
			}
		})
	}
}

type matchCase struct {
	name string
	ci   ConnInfo
	want string // route name, "" for no match
}
