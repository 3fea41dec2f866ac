package router

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
)

// catRank orders the traditional flavor's categories (a category is the
// set of attributes a route has): more attributes first, then the greater
// bitmask, as sort_categories in kong/router/traditional.lua. So
// SNI+SRC+DST > SNI+SRC > SNI+DST > SRC+DST > SNI > SRC > DST.
var catRank = [8]int8{
	bitSNI | bitSRC | bitDST: 0,
	bitSNI | bitSRC:          1,
	bitSNI | bitDST:          2,
	bitSRC | bitDST:          3,
	bitSNI:                   4,
	bitSRC:                   5,
	bitDST:                   6,
	0:                        7,
}

// traditionalOrder sorts routes by category, then older first
// (traditional.lua sort_routes; the other sort keys are 0 for stream
// routes). Routes created at the same time keep their input order, where
// Kong's unstable sort leaves it unspecified.
func traditionalOrder(a, b route) int {
	if c := cmp.Compare(catRank[a.bits], catRank[b.bits]); c != 0 {
		return c
	}
	return cmp.Compare(a.r.CreatedAt, b.r.CreatedAt)
}

// category counts, for one category, how many routes each bucket of
// traditional.lua categorize_route_t holds: routes_by_sni,
// routes_by_sources and routes_by_destinations. Buckets are keyed by the
// ip text, so only addresses written the way nginx prints them can be hit.
type category struct {
	sni              map[string]int
	srcIP, dstIP     map[netip.Addr]int
	srcPort, dstPort map[uint16]int
	// lastSrcIPPort and lastDstIPPort are the last positions of routes
	// that go first in source (destination) buckets, -1 if none: past
	// them, a bucket's order is plain position order.
	lastSrcIPPort, lastDstIPPort int32
}

func buildCategories(routes []route) map[uint8]*category {
	cats := map[uint8]*category{}
	for i := range routes {
		rt := &routes[i]
		c := cats[rt.bits]
		if c == nil {
			c = &category{
				sni:   map[string]int{},
				srcIP: map[netip.Addr]int{}, dstIP: map[netip.Addr]int{},
				srcPort: map[uint16]int{}, dstPort: map[uint16]int{},
				lastSrcIPPort: -1, lastDstIPPort: -1,
			}
			cats[rt.bits] = c
		}
		if rt.srcIPPort {
			c.lastSrcIPPort = int32(i)
		}
		if rt.dstIPPort {
			c.lastDstIPPort = int32(i)
		}
		for j, s := range rt.snis {
			if !slices.Contains(rt.snis[:j], s) {
				c.sni[s]++
			}
		}
		countEntries(rt.src, c.srcIP, c.srcPort)
		countEntries(rt.dst, c.dstIP, c.dstPort)
	}
	return cats
}

// countEntries counts a route once per distinct ip and port of its entries,
// as categorize_src_dst does with its APPENDED set.
func countEntries(entries []entry, ips map[netip.Addr]int, ports map[uint16]int) {
	for j, e := range entries {
		seenIP, seenPort := false, false
		for _, prev := range entries[:j] {
			seenIP = seenIP || (prev.kind == exactIP && e.kind == exactIP && prev.addr == e.addr)
			seenPort = seenPort || (prev.hasPort && e.hasPort && prev.port == e.port)
		}
		if e.kind == exactIP && !seenIP {
			ips[e.addr]++
		}
		if e.hasPort && !seenPort {
			ports[e.port]++
		}
	}
}

// bucketKind names the bucket traditional.lua's reducer picks in a
// category.
type bucketKind uint8

const (
	noBucket bucketKind = iota
	sniBucket
	srcIPBucket
	srcPortBucket
	dstIPBucket
	dstPortBucket
)

// bucketFor returns the reducer's choice for category bits: the smallest of
// routes_by_sni[sni], routes_by_sources[src_ip] (else [src_port]) and
// routes_by_destinations[dst_ip] (else [dst_port]), the first one on ties.
func (r *Router) bucketFor(bits uint8, ci *ConnInfo) bucketKind {
	c := r.cats[bits]
	kind, size := noBucket, 0
	consider := func(k bucketKind, n int) {
		if n > 0 && (kind == noBucket || n < size) {
			kind, size = k, n
		}
	}
	if bits&bitSNI != 0 {
		consider(sniBucket, c.sni[ci.SNI])
	}
	if bits&bitSRC != 0 {
		if n := c.srcIP[ci.Src.Addr()]; n > 0 {
			consider(srcIPBucket, n)
		} else {
			consider(srcPortBucket, c.srcPort[ci.Src.Port()])
		}
	}
	if bits&bitDST != 0 {
		if n := c.dstIP[ci.Dst.Addr()]; n > 0 {
			consider(dstIPBucket, n)
		} else {
			consider(dstPortBucket, c.dstPort[ci.Dst.Port()])
		}
	}
	return kind
}

// inBucket reports whether rt is in bucket k for ci.
func (rt *route) inBucket(k bucketKind, ci *ConnInfo) bool {
	switch k {
	case sniBucket:
		return slices.Contains(rt.snis, ci.SNI)
	case srcIPBucket:
		return hasAddr(rt.src, ci.Src.Addr())
	case srcPortBucket:
		return hasPortValue(rt.src, ci.Src.Port())
	case dstIPBucket:
		return hasAddr(rt.dst, ci.Dst.Addr())
	case dstPortBucket:
		return hasPortValue(rt.dst, ci.Dst.Port())
	}
	return false
}

func hasAddr(entries []entry, a netip.Addr) bool {
	for _, e := range entries {
		if e.kind == exactIP && e.addr == a {
			return true
		}
	}
	return false
}

func hasPortValue(entries []entry, p uint16) bool {
	for _, e := range entries {
		if e.hasPort && e.port == p {
			return true
		}
	}
	return false
}

// bucketBefore reports whether route i comes before route j in bucket k:
// source and destination buckets list routes with an ip+port entry first
// (sort_sources, sort_destinations), then by position; an SNI bucket is in
// position order.
func (r *Router) bucketBefore(k bucketKind, i, j int32) bool {
	a, b := &r.routes[i], &r.routes[j]
	var fa, fb bool
	switch k {
	case srcIPBucket, srcPortBucket:
		fa, fb = a.srcIPPort, b.srcIPPort
	case dstIPBucket, dstPortBucket:
		fa, fb = a.dstIPPort, b.dstIPPort
	}
	if fa != fb {
		return fa
	}
	return i < j
}

// matchesTraditional is match_route for a stream route: every attribute of
// the route must match. The SNI must be one of the route's, whatever the
// protocol (the "http" exemption of the SNI matcher never applies in
// stream).
func (rt *route) matchesTraditional(ci *ConnInfo) bool {
	if rt.bits&bitSNI != 0 && !slices.Contains(rt.snis, ci.SNI) {
		return false
	}
	if rt.bits&bitSRC != 0 && !matchesAny(rt.src, ci.Src) {
		return false
	}
	return rt.bits&bitDST == 0 || matchesAny(rt.dst, ci.Dst)
}

// matchTraditional returns the position of the route traditional.lua
// find_route picks, or -1.
//
// Kong walks its categories from the best one the connection may target
// and, in the first category with a match, tries the reducer's bucket in
// bucket order, then every route of the category in order. The only
// categories that can match are those whose attributes all hit an index,
// so this is the same as: take the best category among the matching
// routes; in it, the first matching route of the bucket if any, else the
// first matching route. Matching routes are found through the indexes
// instead of walking the category.
func (r *Router) matchTraditional(ci *ConnInfo) int32 {
	s := search{r: r, ci: ci, cat: math.MaxInt8, best: math.MaxInt32, inBucket: -1}
	r.sni.lookup(ci.SNI, &s)
	r.src.lookup(ci.Src, &s)
	r.dst.lookup(ci.Dst, &s)
	switch {
	case s.inBucket >= 0:
		return s.inBucket
	case s.best != math.MaxInt32:
		return s.best
	}
	return -1
}

// scanTraditional looks at the routes of list, sorted by category then
// age, up to the end of the best category found so far.
func (s *search) scanTraditional(list []int32) {
	for _, i := range list {
		rt := &s.r.routes[i]
		rank := catRank[rt.bits]
		if rank > s.cat {
			return
		}
		if !rt.matchesTraditional(s.ci) {
			continue
		}
		if rank < s.cat {
			s.cat, s.best, s.inBucket = rank, i, -1
			s.bucket = s.r.bucketFor(rt.bits, s.ci)
		}
		s.best = min(s.best, i)
		if rt.inBucket(s.bucket, s.ci) && (s.inBucket < 0 || s.r.bucketBefore(s.bucket, i, s.inBucket)) {
			s.inBucket = i
		}
		if s.settled(rt.bits, i) {
			return
		}
	}
}

// settled reports whether the routes after position i in a list can no
// longer change the result. The first match wins when there is no
// bucket. A bucket's best route so far can only be overtaken by a route
// before it, or by a later one that goes first in the bucket when it does
// not.
func (s *search) settled(bits uint8, i int32) bool {
	if s.bucket == noBucket {
		return true
	}
	if s.inBucket < 0 || i < s.inBucket {
		return false
	}
	c, in := s.r.cats[bits], &s.r.routes[s.inBucket]
	switch s.bucket {
	case srcIPBucket, srcPortBucket:
		return in.srcIPPort || i >= c.lastSrcIPPort
	case dstIPBucket, dstPortBucket:
		return in.dstIPPort || i >= c.lastDstIPPort
	}
	return true
}
