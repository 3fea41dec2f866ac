package router

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Attribute bits, as MATCH_RULES in kong/router/traditional.lua.
const (
	bitDST uint8 = 1 << iota
	bitSRC
	bitSNI
)

// ipKind says how an endpoint's ip field matches an address.
type ipKind uint8

const (
	anyIP   ipKind = iota // no ip field
	exactIP               // one address
	cidrIP                // a network
	// neverIP is a traditional-flavor address written differently from
	// how nginx prints addresses ("2001:DB8::1", "2001:db8:0::1"). Kong
	// compares such an ip to $remote_addr as a string, so it never
	// matches.
	neverIP
)

// entry is a compiled Endpoint.
type entry struct {
	kind    ipKind
	addr    netip.Addr   // exactIP
	prefix  netip.Prefix // cidrIP, masked
	port    uint16
	hasPort bool
}

func (e *entry) matches(ap netip.AddrPort) bool {
	if e.hasPort && e.port != ap.Port() {
		return false
	}
	switch e.kind {
	case exactIP:
		return e.addr == ap.Addr()
	case cidrIP:
		return e.prefix.Contains(ap.Addr())
	case neverIP:
		return false
	}
	return true
}

func matchesAny(entries []entry, ap netip.AddrPort) bool {
	for i := range entries {
		if entries[i].matches(ap) {
			return true
		}
	}
	return false
}

// route is a compiled Route.
type route struct {
	r *Route
	// snis are exact names (trailing dot removed); suffixes and prefixes
	// are the compat flavor's wildcard names without their "*".
	snis, suffixes, prefixes []string
	src, dst                 []entry
	bits                     uint8

	// traditional_compatible and expressions.
	priority uint64
	uuid     [16]byte
	// expressions only: the route's expression and protocol condition.
	expr *expr

	// traditional only: whether some source (destination) entry has both
	// an ip and a port; such routes go first in a source (destination)
	// bucket (traditional.lua sort_sources, sort_destinations).
	srcIPPort, dstIPPort bool
}

func compile(rt *Route, flavor Flavor) (route, error) {
	c := route{r: rt}
	var err error
	if c.src, err = compileEndpoints("sources", rt.Sources, flavor); err != nil {
		return c, err
	}
	if c.dst, err = compileEndpoints("destinations", rt.Destinations, flavor); err != nil {
		return c, err
	}
	for i, s := range rt.SNIs {
		if err := c.addSNI(s, flavor); err != nil {
			return c, fmt.Errorf("snis[%d]: %w", i, err)
		}
	}
	if len(rt.SNIs) > 0 {
		c.bits |= bitSNI
	}
	if len(c.src) > 0 {
		c.bits |= bitSRC
	}
	if len(c.dst) > 0 {
		c.bits |= bitDST
	}
	if c.bits == 0 {
		// Same text as traditional.lua marshall_route; the compat flavor
		// cannot compile an empty expression either.
		return c, errors.New("could not categorize route")
	}
	c.srcIPPort = hasIPPort(c.src)
	c.dstIPPort = hasIPPort(c.dst)
	if flavor == TraditionalCompatible {
		if c.uuid, err = parseUUID(rt.ID); err != nil {
			return c, err
		}
		c.priority = streamPriority(rt)
	}
	return c, nil
}

func hasIPPort(entries []entry) bool {
	for _, e := range entries {
		if e.kind != anyIP && e.hasPort {
			return true
		}
	}
	return false
}

// addSNI stores one route SNI the way the flavor compares it: traditional.lua
// marshall_route and transform.lua sni_val_transform both drop one trailing
// dot (from names longer than one byte); for "x.*" the compat flavor keeps
// the text before the "*" as is.
func (c *route) addSNI(s string, flavor Flavor) error {
	if s == "" {
		return errors.New("empty sni")
	}
	wild := strings.IndexByte(s, '*')
	if wild >= 0 && flavor == Traditional {
		return fmt.Errorf("wildcard sni %q needs router_flavor = traditional_compatible", s)
	}
	if strings.Count(s, "*") > 1 {
		return fmt.Errorf("invalid sni %q: only one wildcard must be specified", s)
	}
	switch {
	case wild == 0:
		s = strings.TrimPrefix(trimDot(s), "*")
		c.suffixes = append(c.suffixes, s)
	case wild == len(s)-1:
		c.prefixes = append(c.prefixes, s[:len(s)-1])
	case wild > 0:
		return fmt.Errorf("invalid sni %q: wildcard must be leftmost or rightmost character", s)
	default:
		c.snis = append(c.snis, trimDot(s))
	}
	return nil
}

func trimDot(s string) string {
	if len(s) > 1 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}

func (c *route) matchSNI(sni string) bool {
	for _, s := range c.snis {
		if s == sni {
			return true
		}
	}
	for _, s := range c.suffixes {
		if strings.HasSuffix(sni, s) {
			return true
		}
	}
	for _, s := range c.prefixes {
		if strings.HasPrefix(sni, s) {
			return true
		}
	}
	return false
}

func compileEndpoints(field string, eps []Endpoint, flavor Flavor) ([]entry, error) {
	var out []entry
	for i, ep := range eps {
		e, err := compileEndpoint(ep, flavor)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func compileEndpoint(ep Endpoint, flavor Flavor) (entry, error) {
	e := entry{port: ep.Port, hasPort: ep.HasPort}
	if ep.IP == "" {
		if !ep.HasPort {
			return e, errors.New("at least one of these fields must be non-empty: 'ip', 'port'")
		}
		return e, nil
	}
	invalid := fmt.Errorf("invalid ip or cidr range: '%s'", ep.IP)
	if strings.IndexByte(ep.IP, '/') >= 0 {
		p, err := netip.ParsePrefix(ep.IP)
		if err != nil {
			return e, invalid
		}
		// The ATC engine refuses an IPv6 network with host bits set
		// (Kong's transform.lua canonicalises IPv4 networks only), so
		// Kong cannot load such a route in this flavor.
		if flavor == TraditionalCompatible && p.Addr().Is6() && p != p.Masked() {
			return e, fmt.Errorf("invalid cidr '%s': host part of address was not zero", ep.IP)
		}
		e.kind, e.prefix = cidrIP, p.Masked()
		return e, nil
	}
	a, err := netip.ParseAddr(ep.IP)
	if err != nil || a.Zone() != "" {
		return e, invalid
	}
	e.kind, e.addr = exactIP, a
	// traditional.lua compares a plain ip to $remote_addr/$server_addr
	// as strings; nginx prints the canonical form, as netip does.
	if flavor == Traditional && a.String() != ep.IP {
		e.kind = neverIP
	}
	return e, nil
}

// parseUUID reads a textual UUID into its 16 bytes; the ATC engine orders
// equal priorities by these bytes.
func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("invalid route id %q: expected a UUID", s)
	}
	j := 0
	for i := 0; i < len(s); i += 2 {
		if s[i] == '-' {
			i--
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return u, fmt.Errorf("invalid route id %q: expected a UUID", s)
		}
		u[j] = hi<<4 | lo
		j++
	}
	return u, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
