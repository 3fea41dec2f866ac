package pdk

import (
	"net/netip"
	"strings"

	glua "github.com/yuin/gopher-lua"
)

// ipFuncs is kong.ip (kong/pdk/ip.lua).
func (p *pdk) ipFuncs() []Func {
	return []Func{
		{"is_trusted", anyPhase, p.ipIsTrusted},
	}
}

// trustedPrefixes parses the configuration's trusted_ips (a list or a
// comma-separated string), dropping invalid entries as Kong does; all is
// true when both 0.0.0.0/0 and ::/0 are listed.
func trustedPrefixes(c Configuration) (prefixes []netip.Prefix, all bool) {
	var entries []string
	switch v := c["trusted_ips"].(type) {
	case string:
		entries = strings.Split(v, ",")
	case []string:
		entries = v
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				entries = append(entries, s)
			}
		}
	}
	var any4, any6 bool
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "unix:" {
			continue
		}
		pfx, err := netip.ParsePrefix(e)
		if err != nil {
			addr, err := netip.ParseAddr(e)
			if err != nil {
				continue
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		any4 = any4 || pfx.String() == "0.0.0.0/0"
		any6 = any6 || pfx.String() == "::/0"
		prefixes = append(prefixes, pfx.Masked())
	}
	return prefixes, any4 && any6
}

func (p *pdk) ipIsTrusted(L *glua.LState, _ *State) int {
	prefixes, all := p.trusted, p.trustAll
	if all {
		L.Push(glua.LTrue)
		return 1
	}
	addr, err := netip.ParseAddr(L.OptString(1, ""))
	if err != nil {
		L.Push(glua.LFalse)
		return 1
	}
	addr = addr.Unmap()
	for _, pfx := range prefixes {
		if pfx.Contains(addr) {
			L.Push(glua.LTrue)
			return 1
		}
	}
	L.Push(glua.LFalse)
	return 1
}
