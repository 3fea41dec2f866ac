package router

import (
	"net/netip"
	"slices"
)

// netIndex finds the routes having a sources (or destinations) entry that
// matches an address. Each kind of entry has its own exact-key map, so a
// list returned by a lookup holds only routes whose entry really matches.
// Lists hold route positions in ascending order.
type netIndex struct {
	addr     map[netip.Addr][]int32
	addrPort map[netip.AddrPort][]int32
	port     map[uint16][]int32
	cidr     map[netip.Prefix][]int32
	cidrPort map[prefixPort][]int32
	// bits4 and bits6 are the distinct prefix lengths of the CIDR
	// entries; a lookup masks the address once per length.
	bits4, bits6 []int
}

type prefixPort struct {
	prefix netip.Prefix
	port   uint16
}

func newNetIndex() netIndex {
	return netIndex{
		addr:     map[netip.Addr][]int32{},
		addrPort: map[netip.AddrPort][]int32{},
		port:     map[uint16][]int32{},
		cidr:     map[netip.Prefix][]int32{},
		cidrPort: map[prefixPort][]int32{},
	}
}

// list returns the list of e's key, or nil for an entry that never
// matches.
func (x *netIndex) list(e *entry) []int32 {
	switch e.kind {
	case anyIP:
		return x.port[e.port]
	case exactIP:
		if e.hasPort {
			return x.addrPort[netip.AddrPortFrom(e.addr, e.port)]
		}
		return x.addr[e.addr]
	case cidrIP:
		if e.hasPort {
			return x.cidrPort[prefixPort{e.prefix, e.port}]
		}
		return x.cidr[e.prefix]
	}
	return nil
}

func (x *netIndex) add(e *entry, i int32) {
	switch e.kind {
	case anyIP:
		x.port[e.port] = appendOnce(x.port[e.port], i)
	case exactIP:
		if e.hasPort {
			k := netip.AddrPortFrom(e.addr, e.port)
			x.addrPort[k] = appendOnce(x.addrPort[k], i)
		} else {
			x.addr[e.addr] = appendOnce(x.addr[e.addr], i)
		}
	case cidrIP:
		if e.hasPort {
			k := prefixPort{e.prefix, e.port}
			x.cidrPort[k] = appendOnce(x.cidrPort[k], i)
		} else {
			x.cidr[e.prefix] = appendOnce(x.cidr[e.prefix], i)
		}
		bits := &x.bits6
		if e.prefix.Addr().Is4() {
			bits = &x.bits4
		}
		if !slices.Contains(*bits, e.prefix.Bits()) {
			*bits = append(*bits, e.prefix.Bits())
		}
	}
}

// appendOnce appends i unless it is already last: routes are added in
// ascending order, so a route with two entries of the same key is listed
// once.
func appendOnce(list []int32, i int32) []int32 {
	if n := len(list); n > 0 && list[n-1] == i {
		return list
	}
	return append(list, i)
}

// lookup hands s every list of routes with an entry matching ap.
func (x *netIndex) lookup(ap netip.AddrPort, s *search) {
	a := ap.Addr()
	if !a.IsValid() {
		return
	}
	s.scan(x.addr[a])
	s.scan(x.addrPort[ap])
	s.scan(x.port[ap.Port()])
	bits := x.bits6
	if a.Is4() {
		bits = x.bits4
	}
	for _, b := range bits {
		p, _ := a.Prefix(b)
		s.scan(x.cidr[p])
		s.scan(x.cidrPort[prefixPort{p, ap.Port()}])
	}
}

// sniIndex finds the routes with an SNI matching a server name: exact
// names, and in traditional_compatible suffixes ("*.example.com") and
// prefixes ("example.*").
type sniIndex struct {
	exact, suffix, prefix map[string][]int32
	// suffixLens and prefixLens are the distinct lengths of the wildcard
	// names; a lookup slices the server name once per length.
	suffixLens, prefixLens []int
}

func newSNIIndex() sniIndex {
	return sniIndex{
		exact:  map[string][]int32{},
		suffix: map[string][]int32{},
		prefix: map[string][]int32{},
	}
}

func (x *sniIndex) add(rt *route, i int32) {
	for _, s := range rt.snis {
		x.exact[s] = appendOnce(x.exact[s], i)
	}
	for _, s := range rt.suffixes {
		x.suffix[s] = appendOnce(x.suffix[s], i)
		if !slices.Contains(x.suffixLens, len(s)) {
			x.suffixLens = append(x.suffixLens, len(s))
		}
	}
	for _, s := range rt.prefixes {
		x.prefix[s] = appendOnce(x.prefix[s], i)
		if !slices.Contains(x.prefixLens, len(s)) {
			x.prefixLens = append(x.prefixLens, len(s))
		}
	}
}

// cost is the length of the longest list rt is in.
func (x *sniIndex) cost(rt *route) int {
	n := 0
	for _, s := range rt.snis {
		n = max(n, len(x.exact[s]))
	}
	for _, s := range rt.suffixes {
		n = max(n, len(x.suffix[s]))
	}
	for _, s := range rt.prefixes {
		n = max(n, len(x.prefix[s]))
	}
	return n
}

func (x *sniIndex) lookup(sni string, s *search) {
	s.scan(x.exact[sni])
	for _, n := range x.suffixLens {
		if n <= len(sni) {
			s.scan(x.suffix[sni[len(sni)-n:]])
		}
	}
	for _, n := range x.prefixLens {
		if n <= len(sni) {
			s.scan(x.prefix[sni[:n]])
		}
	}
}

func netCost(x *netIndex, entries []entry) int {
	n := 0
	for i := range entries {
		n = max(n, len(x.list(&entries[i])))
	}
	return n
}

// index fills r.src, r.dst and r.sni. Each route is indexed under one
// attribute only, its anchor: the one whose keys are shared by the fewest
// routes, so that a lookup hands few routes to check. In
// traditional_compatible an SNI condition holds for every non-TLS
// connection, so routes with sources or destinations are anchored on
// those, and the first route with only snis is also kept in r.sniOnly.
func (r *Router) index() {
	all := struct {
		src, dst netIndex
		sni      sniIndex
	}{newNetIndex(), newNetIndex(), newSNIIndex()}
	for i := range r.routes {
		rt := &r.routes[i]
		for j := range rt.src {
			all.src.add(&rt.src[j], int32(i))
		}
		for j := range rt.dst {
			all.dst.add(&rt.dst[j], int32(i))
		}
		all.sni.add(rt, int32(i))
	}

	r.src, r.dst, r.sni = newNetIndex(), newNetIndex(), newSNIIndex()
	compat := r.flavor == TraditionalCompatible
	for i := range r.routes {
		rt := &r.routes[i]
		r.key.srcIP = r.key.srcIP || hasIP(rt.src)
		r.key.srcPort = r.key.srcPort || hasPort(rt.src)
		r.key.dstIP = r.key.dstIP || hasIP(rt.dst)
		r.key.dstPort = r.key.dstPort || hasPort(rt.dst)
		r.key.sni = r.key.sni || rt.bits&bitSNI != 0

		if compat && rt.bits == bitSNI && r.sniOnly < 0 {
			r.sniOnly = int32(i)
		}
		anchor, cost := uint8(0), 0
		try := func(bit uint8, c int) {
			if rt.bits&bit != 0 && (anchor == 0 || c < cost) {
				anchor, cost = bit, c
			}
		}
		if !compat || rt.bits == bitSNI {
			try(bitSNI, all.sni.cost(rt))
		}
		try(bitDST, netCost(&all.dst, rt.dst))
		try(bitSRC, netCost(&all.src, rt.src))
		switch anchor {
		case bitSNI:
			r.sni.add(rt, int32(i))
		case bitDST:
			for j := range rt.dst {
				r.dst.add(&rt.dst[j], int32(i))
			}
		case bitSRC:
			for j := range rt.src {
				r.src.add(&rt.src[j], int32(i))
			}
		}
	}
}

func hasIP(entries []entry) bool {
	for _, e := range entries {
		if e.kind != anyIP {
			return true
		}
	}
	return false
}

func hasPort(entries []entry) bool {
	for _, e := range entries {
		if e.hasPort {
			return true
		}
	}
	return false
}
