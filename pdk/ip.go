package pdk

import (
	"net/netip"

	glua "github.com/yuin/gopher-lua"
)

// ipFuncs is kong.ip (kong/pdk/ip.lua).
func (p *pdk) ipFuncs() []Func {
	return []Func{
		{"is_trusted", anyPhase, p.ipIsTrusted},
	}
}

// trustsAll reports whether prefixes hold both 0.0.0.0/0 and ::/0: then
// Kong answers true for anything, even what is not an address.
func trustsAll(prefixes []netip.Prefix) bool {
	var any4, any6 bool
	for _, p := range prefixes {
		any4 = any4 || p.Bits() == 0 && p.Addr().Is4()
		any6 = any6 || p.Bits() == 0 && p.Addr().Is6()
	}
	return any4 && any6
}

func (p *pdk) ipIsTrusted(L *glua.LState, _ *State) int {
	if p.trustAll {
		L.Push(glua.LTrue)
		return 1
	}
	addr, err := netip.ParseAddr(L.OptString(1, ""))
	if err != nil {
		L.Push(glua.LFalse)
		return 1
	}
	addr = addr.Unmap()
	for _, pfx := range p.opts.TrustedIPs {
		if pfx.Contains(addr) {
			L.Push(glua.LTrue)
			return 1
		}
	}
	L.Push(glua.LFalse)
	return 1
}
