package router

import (
	"bytes"
	"cmp"
	"math"
	"strings"
)

// Priority bits of a stream route, as stream_get_priority in
// kong/router/transform.lua.
const (
	// prioTop is set when a route has snis, or both sources and
	// destinations ("[src] + [dst] has higher priority than [sni]" ends up
	// as the same bit).
	prioTop uint64 = 1 << 61
	// IP > PORT > CIDR, per attribute; sources are shifted above
	// destinations.
	prioIP   uint64 = 1 << 3
	prioPort uint64 = 1 << 2
	prioCIDR uint64 = 1 << 0
)

func streamPriority(rt *Route) uint64 {
	var p uint64
	if len(rt.SNIs) > 0 || (len(rt.Sources) > 0 && len(rt.Destinations) > 0) {
		p = prioTop
	}
	return p | endpointWeight(rt.Sources)<<4 | endpointWeight(rt.Destinations)
}

// endpointWeight is calc_ip_weight: an ip containing "/" counts as a CIDR,
// whatever its length.
func endpointWeight(eps []Endpoint) uint64 {
	var w uint64
	for _, ep := range eps {
		if ep.IP != "" {
			if strings.IndexByte(ep.IP, '/') >= 0 {
				w |= prioCIDR
			} else {
				w |= prioIP
			}
		}
		if ep.HasPort {
			w |= prioPort
		}
	}
	return w
}

// compatOrder is the ATC engine's evaluation order (atc-router
// src/router.rs: a BTreeMap keyed by (priority, uuid) walked in reverse):
// higher priority first, then the greater UUID.
func compatOrder(a, b route) int {
	if c := cmp.Compare(b.priority, a.priority); c != 0 {
		return c
	}
	return bytes.Compare(b.uuid[:], a.uuid[:])
}

// matchesCompat evaluates the expression transform.lua generates for a
// stream route: (net.protocol != "tls" || <snis>) && (<sources>) &&
// (<destinations>), each present only if the attribute is set. Unlike
// Kong, a route with snis never matches a connection that carries no SNI:
// such a route must not capture plain TCP connections meant for routes of
// destinations (Kong's guard is kept for a non-TLS connection that names
// an SNI, which only tests build).
func (rt *route) matchesCompat(ci *ConnInfo, tls bool) bool {
	if rt.bits&bitSNI != 0 && (ci.SNI == "" || tls && !rt.matchSNI(ci.SNI)) {
		return false
	}
	if rt.bits&bitSRC != 0 && !matchesAny(rt.src, ci.Src) {
		return false
	}
	return rt.bits&bitDST == 0 || matchesAny(rt.dst, ci.Dst)
}

// matchCompat returns the position of the first route in evaluation order
// that matches ci, or -1.
func (r *Router) matchCompat(ci *ConnInfo) int32 {
	s := search{r: r, ci: ci, tls: ci.Protocol == "tls", best: math.MaxInt32}
	if s.tls {
		r.sni.lookup(ci.SNI, &s)
	} else if r.sniOnly >= 0 && ci.SNI != "" {
		s.best = r.sniOnly
	}
	r.src.lookup(ci.Src, &s)
	r.dst.lookup(ci.Dst, &s)
	if s.best == math.MaxInt32 {
		return -1
	}
	return s.best
}

// scanCompat keeps the first matching route of list, a list sorted in
// evaluation order, if it comes before the best so far. It serves the
// expressions flavor too.
func (s *search) scanCompat(list []int32) {
	for _, i := range list {
		if i >= s.best {
			return
		}
		rt := &s.r.routes[i]
		if rt.expr != nil && rt.expr.eval(s.ci) || rt.expr == nil && rt.matchesCompat(s.ci, s.tls) {
			s.best = i
			return
		}
	}
}
