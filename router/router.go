package router

import (
	"fmt"
	"net/netip"
	"slices"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Flavor is the value of kong.conf router_flavor.
type Flavor string

// The router flavors gong implements.
const (
	Traditional           Flavor = "traditional"
	TraditionalCompatible Flavor = "traditional_compatible"
	Expressions           Flavor = "expressions"
)

// Endpoint is one entry of a route's sources or destinations: Kong's
// {ip, port} record. At least one of IP and HasPort must be set.
type Endpoint struct {
	// IP is the ip field as written in the route: an address
	// ("10.0.0.1", "2001:db8::1") or a CIDR ("10.0.0.0/8"). Empty means
	// any address. The text is kept because Kong looks at it: the
	// traditional flavor compares plain addresses as strings, and
	// traditional_compatible ranks "10.0.0.1/32" as a CIDR, not an IP.
	IP string
	// Port is the port field; it applies only if HasPort is set (0 is a
	// valid port in Kong's schema).
	Port    uint16
	HasPort bool
}

// Route is a stream route as the router needs it.
type Route struct {
	// ID is the route's UUID. traditional_compatible requires it and
	// breaks priority ties on it (greater UUID first).
	ID   string
	Name string
	// Protocols is not used for matching in the traditional flavors
	// (Kong's stream router does not filter on it there); the
	// expressions flavor requires one of them, as Kong does (see
	// protocolCondition). It travels with the route so the caller can make
	// the TLS preread decision after a match.
	Protocols    []string
	Sources      []Endpoint
	Destinations []Endpoint
	// SNIs are validated route SNIs. A single trailing dot is ignored.
	// traditional_compatible also accepts one leading or trailing "*"
	// ("*.example.com" matches by suffix ".example.com", "example.*" by
	// prefix "example."); traditional rejects wildcards.
	SNIs []string
	// CreatedAt breaks ties in the traditional flavor: older routes first.
	CreatedAt int64
	// Expression is the route's expression (expressions flavor only);
	// when set, SNIs, Sources and Destinations are ignored.
	Expression string
	// Priority orders expression routes: the highest goes first
	// (expressions flavor only; at most MaxPriority).
	Priority uint64
	// Value is the caller's data (service, plugins, ...), untouched.
	Value any
}

// ConnInfo holds the facts of one connection that routing looks at.
type ConnInfo struct {
	// Protocol is "tcp", "udp" or "tls". "tls" means an SNI value is
	// known, possibly empty: a ClientHello was parsed, or TLS was
	// terminated and the client sent an SNI. Kong reports a terminated
	// connection without SNI, and a non-TLS first byte on an ssl
	// listener, as "tcp". Only traditional_compatible looks at it: SNI
	// conditions are skipped unless it is "tls".
	Protocol string
	// Src is the client address (after PROXY protocol, if trusted).
	Src netip.AddrPort
	// Dst is the listener address, with port_maps already applied by the
	// caller where Kong applies them.
	Dst netip.AddrPort
	// SNI is the server name as the client sent it ("" if none).
	SNI string
}

// Options configure New.
type Options struct {
	// Flavor is router_flavor. If empty, traditional_compatible (Kong's
	// default) is used.
	Flavor Flavor
	// CacheSize is the capacity of each of the positive and negative
	// match caches. If zero, Kong's size is used:
	// min(ceil(max(n/5000, 1))*5000, 100000) for n routes. If negative,
	// matches are not cached.
	CacheSize int
}

// Router matches connections to routes. It is immutable after New and safe
// for concurrent use.
type Router struct {
	flavor Flavor
	// routes is sorted by traditionalOrder or compatOrder: within a
	// category (traditional) or overall (compat), a lower position wins.
	// Index lists hold positions in this slice, ascending.
	routes []route
	// src, dst and sni index every route under exactly one of its
	// attributes, its anchor; a route that matches is therefore found
	// through the lookups of its anchor attribute.
	src, dst netIndex
	sni      sniIndex
	// sniOnly is, in traditional_compatible, the first route whose only
	// condition is snis: it matches every connection that is not TLS but
	// names an SNI (kong/router/transform.lua guards SNI with
	// net.protocol != "tls"). -1 if there is none.
	sniOnly int32
	// exprs indexes the routes of the expressions flavor, which uses no
	// other index.
	exprs exprIndex
	// cats holds the traditional flavor's per-category bucket sizes.
	cats map[uint8]*category
	key  keyMask
	pos  *lru.Cache[cacheKey, *Route]
	neg  *lru.Cache[cacheKey, struct{}]
}

// defaultCacheStep is Kong's DEFAULT_MATCH_LRUCACHE_SIZE
// (kong/router/utils.lua); the cache grows by this step per 5000 routes up
// to 20 steps (kong/runloop/handler.lua).
const defaultCacheStep = 5000

// New builds a router for routes. It fails on a route that Kong's schema
// or router refuses in that flavor (no snis, sources or destinations; a bad
// ip; a wildcard SNI in traditional; a non-UUID id in
// traditional_compatible), naming the route.
func New(routes []*Route, opts Options) (*Router, error) {
	flavor := opts.Flavor
	if flavor == "" {
		flavor = TraditionalCompatible
	}
	switch flavor {
	case Traditional, TraditionalCompatible, Expressions:
	default:
		return nil, fmt.Errorf("invalid router_flavor %q: expected traditional, traditional_compatible or expressions", flavor)
	}

	r := &Router{flavor: flavor, sniOnly: -1}
	compiled := make([]route, 0, len(routes))
	ids := make(map[string]bool, len(routes))
	for i, rt := range routes {
		var c route
		var err error
		if flavor == Expressions {
			c, err = compileExpressions(rt)
		} else {
			c, err = compile(rt, flavor)
		}
		if err != nil {
			name := rt.ID
			if name == "" {
				name = fmt.Sprintf("#%d", i)
			}
			return nil, fmt.Errorf("route %s: %w", name, err)
		}
		if rt.ID != "" {
			if ids[rt.ID] {
				return nil, fmt.Errorf("route %s: duplicate id", rt.ID)
			}
			ids[rt.ID] = true
		}
		compiled = append(compiled, c)
	}

	if flavor == Traditional {
		slices.SortStableFunc(compiled, traditionalOrder)
	} else {
		slices.SortStableFunc(compiled, compatOrder)
	}
	r.routes = compiled
	if flavor == Expressions {
		r.indexExpressions()
	} else {
		r.index()
	}
	if flavor == Traditional {
		r.cats = buildCategories(r.routes)
	}

	size := opts.CacheSize
	if size == 0 {
		steps := max((len(routes)+defaultCacheStep-1)/defaultCacheStep, 1)
		size = min(steps, 20) * defaultCacheStep
	}
	if size > 0 {
		// lru.New fails only for a size <= 0.
		r.pos, _ = lru.New[cacheKey, *Route](size)
		r.neg, _ = lru.New[cacheKey, struct{}](size)
	}
	return r, nil
}

// Flavor reports the flavor the router was built with.
func (r *Router) Flavor() Flavor { return r.flavor }

// Match returns the route for a connection, or false if none matches.
func (r *Router) Match(ci ConnInfo) (*Route, bool) {
	// nginx prints an IPv4 client of an IPv4 listener without the
	// ::ffff: prefix and never prints a zone; Go may hand us either.
	ci.Src = netip.AddrPortFrom(ci.Src.Addr().Unmap().WithZone(""), ci.Src.Port())
	ci.Dst = netip.AddrPortFrom(ci.Dst.Addr().Unmap().WithZone(""), ci.Dst.Port())

	if r.pos == nil {
		return r.match(&ci)
	}
	k := r.key.of(&ci)
	if rt, ok := r.pos.Get(k); ok {
		return rt, true
	}
	if r.neg.Contains(k) {
		return nil, false
	}
	rt, ok := r.match(&ci)
	if ok {
		r.pos.Add(k, rt)
	} else {
		r.neg.Add(k, struct{}{})
	}
	return rt, ok
}

func (r *Router) match(ci *ConnInfo) (*Route, bool) {
	var i int32
	switch r.flavor {
	case Traditional:
		i = r.matchTraditional(ci)
	case Expressions:
		i = r.matchExpressions(ci)
	default:
		i = r.matchCompat(ci)
	}
	if i < 0 {
		return nil, false
	}
	return r.routes[i].r, true
}

// cacheKey identifies a connection for the match caches. Like Kong's keys
// (traditional.lua find_route, fields.lua get_cache_key) it has no
// protocol in the traditional flavors, so a TCP connection and a UDP
// session (or a TLS connection without SNI) with the same addresses share
// an entry. In the expressions flavor it has the protocol when a route
// reads net.protocol.
type cacheKey struct {
	src, dst netip.AddrPort
	sni      string
	protocol string
}

// keyMask says which connection facts any route looks at; the others are
// left out of the cache key, as Kong's ATC flavors do (fields.lua visits
// only the fields the router uses). Leaving out a fact no route reads
// cannot change a result, and it keeps ephemeral source ports from
// flooding the cache.
type keyMask struct {
	srcIP, srcPort, dstIP, dstPort, sni, protocol bool
}

func (m keyMask) of(ci *ConnInfo) cacheKey {
	var k cacheKey
	k.src = mask(ci.Src, m.srcIP, m.srcPort)
	k.dst = mask(ci.Dst, m.dstIP, m.dstPort)
	if m.sni {
		k.sni = ci.SNI
	}
	if m.protocol {
		k.protocol = ci.Protocol
	}
	return k
}

func mask(ap netip.AddrPort, ip, port bool) netip.AddrPort {
	var a netip.Addr
	var p uint16
	if ip {
		a = ap.Addr()
	}
	if port {
		p = ap.Port()
	}
	return netip.AddrPortFrom(a, p)
}

// search is the state of one lookup: index lookups hand it lists of
// candidate routes, and it keeps the best match seen so far.
type search struct {
	r   *Router
	ci  *ConnInfo
	tls bool // traditional_compatible: SNI conditions apply
	// best is the position of the best match so far (MaxInt32 if none);
	// in the traditional flavor, the first match of category cat.
	best int32
	// traditional only: the best category with a match, the reducer's
	// bucket there and the first matching route of that bucket (-1).
	cat      int8
	bucket   bucketKind
	inBucket int32
}

func (s *search) scan(list []int32) {
	if len(list) == 0 {
		return
	}
	if s.r.flavor == Traditional {
		s.scanTraditional(list)
	} else {
		s.scanCompat(list)
	}
}
