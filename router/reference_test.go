package router

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestAgainstReference compares the indexed router with literal ports of
// Kong's algorithms (refTraditional follows traditional.lua step by step;
// refCompat evaluates transform.lua's expressions in ATC order) on random
// route sets built from a small universe, so that routes overlap a lot.
func TestAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range allFlavors {
		t.Run(string(f), func(t *testing.T) {
			for set := range 400 {
				routes := randomRoutes(rng, f, 1+rng.IntN(12))
				r, err := New(routes, Options{Flavor: f, CacheSize: -1})
				if err != nil {
					t.Fatalf("set %d: New = %v", set, err)
				}
				for range 60 {
					ci := randomConn(rng)
					var want *Route
					if f == Traditional {
						want = refTraditional(routes, ci)
					} else {
						// The expressions flavor must agree with compat.
						want = refCompat(routes, ci)
					}
					got, _ := r.Match(ci)
					if got != want {
						t.Fatalf("set %d: Match(%+v) = %s; want %s\nroutes:\n%s",
							set, ci, describe(got), describe(want), describeAll(routes))
					}
				}
			}
		})
	}
}

var (
	uniIPs = []string{"10.0.0.1", "10.0.0.2", "10.0.1.1", "2001:db8::1", "::ffff:10.0.0.1"}
	// ATC's grammar has no IPv6 literal with an embedded IPv4 address, so
	// Kong's ATC flavors cannot load a route with one.
	uniATCIPs = uniIPs[:4]
	uniCIDRs  = []string{"10.0.0.0/8", "10.0.0.0/24", "10.0.0.1/32", "2001:db8::/32", "0.0.0.0/0"}
	uniOdd    = []string{"2001:DB8::1", "2001:db8:0::1"} // non-canonical text
	uniPorts  = []uint16{1, 2, 3}
	uniSNIs   = []string{"a.test", "b.test", "a.test.", "c.d.test"}
	uniWild   = []string{"*.test", "a.*", "*.d.test", "*"}
)

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

func randomEndpoints(rng *rand.Rand, f Flavor) []Endpoint {
	ips := uniIPs
	if f == Expressions {
		ips = uniATCIPs
	}
	var out []Endpoint
	for range 1 + rng.IntN(3) {
		var e Endpoint
		switch rng.IntN(4) {
		case 0:
			e.IP = pick(rng, ips)
		case 1:
			e.IP = pick(rng, uniCIDRs)
		case 2:
			e.IP = pick(rng, uniOdd)
		}
		if e.IP == "" || rng.IntN(2) == 0 {
			e.Port, e.HasPort = pick(rng, uniPorts), true
		}
		out = append(out, e)
	}
	return out
}

func randomRoutes(rng *rand.Rand, f Flavor, n int) []*Route {
	routes := make([]*Route, n)
	for i := range routes {
		rt := &Route{
			Name:      fmt.Sprintf("r%d", i),
			ID:        fmt.Sprintf("%08x-0000-4000-8000-%012x", rng.Uint32(), i),
			CreatedAt: int64(rng.IntN(4)),
		}
		for rt.SNIs == nil && rt.Sources == nil && rt.Destinations == nil {
			if rng.IntN(2) == 0 {
				for range 1 + rng.IntN(2) {
					if f != Traditional && rng.IntN(2) == 0 {
						rt.SNIs = append(rt.SNIs, pick(rng, uniWild))
					} else {
						rt.SNIs = append(rt.SNIs, pick(rng, uniSNIs))
					}
				}
			}
			if rng.IntN(2) == 0 {
				rt.Sources = randomEndpoints(rng, f)
			}
			if rng.IntN(2) == 0 {
				rt.Destinations = randomEndpoints(rng, f)
			}
		}
		routes[i] = rt
	}
	return routes
}

func randomAddrPort(rng *rand.Rand) netip.AddrPort {
	ips := []string{"10.0.0.1", "10.0.0.2", "10.0.1.1", "10.9.9.9", "192.0.2.1", "2001:db8::1", "2001:db8::2", "2001:db9::1"}
	return netip.AddrPortFrom(netip.MustParseAddr(pick(rng, ips)), pick(rng, []uint16{1, 2, 3, 4}))
}

func randomConn(rng *rand.Rand) ConnInfo {
	ci := ConnInfo{Protocol: pick(rng, []string{"tcp", "udp", "tls", "tls"}), Src: randomAddrPort(rng), Dst: randomAddrPort(rng)}
	if ci.Protocol == "tls" {
		ci.SNI = pick(rng, []string{"", "a.test", "b.test", "c.d.test", "x.test", "a.x", "test"})
	}
	return ci
}

func describe(rt *Route) string {
	if rt == nil {
		return "no match"
	}
	return rt.Name
}

func describeAll(routes []*Route) string {
	var b strings.Builder
	for _, rt := range routes {
		fmt.Fprintf(&b, "  %s id=%s created=%d snis=%q src=%+v dst=%+v\n",
			rt.Name, rt.ID, rt.CreatedAt, rt.SNIs, rt.Sources, rt.Destinations)
	}
	return b.String()
}

// refEntryMatch is matcher_src_dst for one entry: a plain ip is compared
// as text with the address as nginx prints it, a CIDR by containment.
func refEntryMatch(e Endpoint, ap netip.AddrPort, textual bool) bool {
	if e.HasPort && e.Port != ap.Port() {
		return false
	}
	switch {
	case e.IP == "":
		return true
	case strings.Contains(e.IP, "/"):
		return netip.MustParsePrefix(e.IP).Contains(ap.Addr())
	case textual:
		return e.IP == ap.Addr().String()
	}
	return netip.MustParseAddr(e.IP) == ap.Addr()
}

func refAny(eps []Endpoint, ap netip.AddrPort, textual bool) bool {
	for _, e := range eps {
		if refEntryMatch(e, ap, textual) {
			return true
		}
	}
	return false
}

func refTrimDot(s string) string {
	if len(s) > 1 && strings.HasSuffix(s, ".") {
		return s[:len(s)-1]
	}
	return s
}

func refNormalize(ci ConnInfo) ConnInfo {
	ci.Src = netip.AddrPortFrom(ci.Src.Addr().Unmap(), ci.Src.Port())
	ci.Dst = netip.AddrPortFrom(ci.Dst.Addr().Unmap(), ci.Dst.Port())
	return ci
}

// refTraditional is traditional.lua new() and find_route() for stream.
func refTraditional(routes []*Route, ci ConnInfo) *Route {
	ci = refNormalize(ci)
	type marshalled struct {
		r        *Route
		bits     uint8
		snis     map[string]bool
		src, dst []Endpoint
	}
	sorted := slices.Clone(routes)
	slices.SortStableFunc(sorted, func(a, b *Route) int { return cmp.Compare(a.CreatedAt, b.CreatedAt) })

	type cat struct {
		bits         uint8
		all          []*marshalled
		bySNI        map[string][]*marshalled
		bySrc, byDst map[string][]*marshalled
	}
	cats := map[uint8]*cat{}
	snis, srcKeys, dstKeys := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var srcCIDRs, dstCIDRs []netip.Prefix
	portKey := func(p uint16) string { return fmt.Sprintf("port:%d", p) }

	categorize := func(eps []Endpoint, bucket map[string][]*marshalled, m *marshalled, keys map[string]bool, cidrs *[]netip.Prefix) {
		appended := map[string]bool{}
		for _, e := range eps {
			if e.IP != "" {
				keys[e.IP] = true
				if strings.Contains(e.IP, "/") {
					*cidrs = append(*cidrs, netip.MustParsePrefix(e.IP))
				}
				if !appended[e.IP] {
					bucket[e.IP] = append(bucket[e.IP], m)
					appended[e.IP] = true
				}
			}
			if e.HasPort {
				k := portKey(e.Port)
				keys[k] = true
				if !appended[k] {
					bucket[k] = append(bucket[k], m)
					appended[k] = true
				}
			}
		}
	}
	for _, r := range sorted {
		m := &marshalled{r: r, snis: map[string]bool{}, src: r.Sources, dst: r.Destinations}
		if len(r.SNIs) > 0 {
			m.bits |= bitSNI
		}
		if len(r.Sources) > 0 {
			m.bits |= bitSRC
		}
		if len(r.Destinations) > 0 {
			m.bits |= bitDST
		}
		c := cats[m.bits]
		if c == nil {
			c = &cat{bits: m.bits, bySNI: map[string][]*marshalled{}, bySrc: map[string][]*marshalled{}, byDst: map[string][]*marshalled{}}
			cats[m.bits] = c
		}
		c.all = append(c.all, m)
		for _, s := range r.SNIs {
			s = refTrimDot(s)
			if !m.snis[s] {
				m.snis[s] = true
				snis[s] = true
				c.bySNI[s] = append(c.bySNI[s], m)
			}
		}
		categorize(r.Sources, c.bySrc, m, srcKeys, &srcCIDRs)
		categorize(r.Destinations, c.byDst, m, dstKeys, &dstCIDRs)
	}
	ipPortFirst := func(eps func(*marshalled) []Endpoint) func(a, b *marshalled) int {
		flag := func(m *marshalled) int {
			for _, e := range eps(m) {
				if e.IP != "" && e.HasPort {
					return 0
				}
			}
			return 1
		}
		return func(a, b *marshalled) int { return cmp.Compare(flag(a), flag(b)) }
	}
	var order []*cat
	for _, c := range cats {
		for _, l := range c.bySrc {
			slices.SortStableFunc(l, ipPortFirst(func(m *marshalled) []Endpoint { return m.src }))
		}
		for _, l := range c.byDst {
			slices.SortStableFunc(l, ipPortFirst(func(m *marshalled) []Endpoint { return m.dst }))
		}
		order = append(order, c)
	}
	popcount := func(b uint8) int { return int(b&1 + b>>1&1 + b>>2&1) }
	slices.SortFunc(order, func(a, b *cat) int {
		if c := cmp.Compare(popcount(b.bits), popcount(a.bits)); c != 0 {
			return c
		}
		return cmp.Compare(b.bits, a.bits)
	})

	srcIP, dstIP := ci.Src.Addr().String(), ci.Dst.Addr().String()
	hit := func(keys map[string]bool, cidrs []netip.Prefix, ipText string, ap netip.AddrPort) bool {
		if keys[ipText] || keys[portKey(ap.Port())] {
			return true
		}
		for _, p := range cidrs {
			if p.Contains(ap.Addr()) {
				return true
			}
		}
		return false
	}
	var req uint8
	if snis[ci.SNI] {
		req |= bitSNI
	}
	if hit(srcKeys, srcCIDRs, srcIP, ci.Src) {
		req |= bitSRC
	}
	if hit(dstKeys, dstCIDRs, dstIP, ci.Dst) {
		req |= bitDST
	}
	if req == 0 {
		return nil
	}
	matches := func(m *marshalled) bool {
		if m.bits&bitSNI != 0 && !m.snis[ci.SNI] {
			return false
		}
		if m.bits&bitSRC != 0 && !refAny(m.src, ci.Src, true) {
			return false
		}
		return m.bits&bitDST == 0 || refAny(m.dst, ci.Dst, true)
	}
	first := func(l []*marshalled) *Route {
		for _, m := range l {
			if matches(m) {
				return m.r
			}
		}
		return nil
	}
	start := slices.IndexFunc(order, func(c *cat) bool { return c.bits == req })
	for _, c := range order[max(start, 0):] {
		var reduced []*marshalled
		consider := func(l []*marshalled) {
			if l != nil && (reduced == nil || len(l) < len(reduced)) {
				reduced = l
			}
		}
		if c.bits&bitSNI != 0 {
			consider(c.bySNI[ci.SNI])
		}
		if c.bits&bitSRC != 0 {
			l := c.bySrc[srcIP]
			if l == nil {
				l = c.bySrc[portKey(ci.Src.Port())]
			}
			consider(l)
		}
		if c.bits&bitDST != 0 {
			l := c.byDst[dstIP]
			if l == nil {
				l = c.byDst[portKey(ci.Dst.Port())]
			}
			consider(l)
		}
		if r := first(reduced); r != nil {
			return r
		}
		if r := first(c.all); r != nil {
			return r
		}
	}
	return nil
}

// refCompat evaluates the expression of every route in ATC order, with
// gong's rule for SNI routes.
func refCompat(routes []*Route, ci ConnInfo) *Route {
	ci = refNormalize(ci)
	sorted := slices.Clone(routes)
	slices.SortStableFunc(sorted, func(a, b *Route) int {
		if c := cmp.Compare(streamPriority(b), streamPriority(a)); c != 0 {
			return c
		}
		return strings.Compare(strings.ToLower(b.ID), strings.ToLower(a.ID))
	})
	sniMatch := func(rt *Route) bool {
		for _, s := range rt.SNIs {
			switch {
			case strings.HasPrefix(s, "*"):
				if strings.HasSuffix(ci.SNI, refTrimDot(s)[1:]) {
					return true
				}
			case strings.HasSuffix(s, "*"):
				if strings.HasPrefix(ci.SNI, s[:len(s)-1]) {
					return true
				}
			case refTrimDot(s) == ci.SNI:
				return true
			}
		}
		return false
	}
	for _, rt := range sorted {
		// gong: an SNI route never matches a connection without SNI.
		if len(rt.SNIs) > 0 && (ci.SNI == "" || ci.Protocol == "tls" && !sniMatch(rt)) {
			continue
		}
		if len(rt.Sources) > 0 && !refAny(rt.Sources, ci.Src, false) {
			continue
		}
		if len(rt.Destinations) > 0 && !refAny(rt.Destinations, ci.Dst, false) {
			continue
		}
		return rt
	}
	return nil
}
