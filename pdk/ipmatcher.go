package pdk

import (
	"net/netip"
	"strings"

	glua "github.com/yuin/gopher-lua"
)

// ipmatcherType is the metatable name of resty.ipmatcher matchers.
const ipmatcherType = "resty.ipmatcher"

// openIPMatcher is a Go-native resty.ipmatcher (the part Kong's plugins
// use): new(list) builds a matcher from IPs and CIDRs, v4 or v6;
// matcher:match(ip) reports whether ip is in it, and matcher:match_bin(b)
// does the same for the 4 or 16 bytes of ngx.var.binary_remote_addr.
func openIPMatcher(L *glua.LState) int {
	mt := L.NewTypeMetatable(ipmatcherType)
	L.SetField(mt, "__index", L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"match": ipmatcherMatch, "match_bin": ipmatcherMatchBin,
	}))
	mod := L.NewTable()
	L.SetField(mod, "new", L.NewFunction(ipmatcherNew))
	L.Push(mod)
	return 1
}

// ipmatcherNew implements ipmatcher.new: nil and an error naming the first
// invalid entry, as resty.ipmatcher does.
func ipmatcherNew(L *glua.LState) int {
	list := L.CheckTable(1)
	var prefixes []netip.Prefix
	var bad string
	list.ForEach(func(_, v glua.LValue) {
		if bad != "" {
			return
		}
		s := v.String()
		p, err := netip.ParsePrefix(s)
		if !strings.Contains(s, "/") {
			var a netip.Addr
			a, err = netip.ParseAddr(s)
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			bad = s
			return
		}
		prefixes = append(prefixes, p.Masked())
	})
	if bad != "" {
		return pushErr(L, "invalid ip address: "+bad)
	}
	ud := L.NewUserData()
	ud.Value = prefixes
	L.SetMetatable(ud, L.GetTypeMetatable(ipmatcherType))
	L.Push(ud)
	return 1
}

// ipmatcherMatch implements matcher:match(ip): false and an error for an
// address that does not parse.
func ipmatcherMatch(L *glua.LState) int {
	prefixes := checkIPMatcher(L)
	a, err := netip.ParseAddr(L.CheckString(2))
	if err != nil {
		L.Push(glua.LFalse)
		L.Push(glua.LString("invalid ip address: " + L.CheckString(2)))
		return 2
	}
	L.Push(glua.LBool(prefixesContain(prefixes, a)))
	return 1
}

// ipmatcherMatchBin implements matcher:match_bin(bin): false and an error
// for bytes that are not an IPv4 or IPv6 address.
func ipmatcherMatchBin(L *glua.LState) int {
	prefixes := checkIPMatcher(L)
	a, ok := netip.AddrFromSlice([]byte(L.CheckString(2)))
	if !ok {
		L.Push(glua.LFalse)
		L.Push(glua.LString("invalid binary ip address"))
		return 2
	}
	L.Push(glua.LBool(prefixesContain(prefixes, a)))
	return 1
}

func checkIPMatcher(L *glua.LState) []netip.Prefix {
	prefixes, ok := L.CheckUserData(1).Value.([]netip.Prefix)
	if !ok {
		L.ArgError(1, "ipmatcher expected")
	}
	return prefixes
}

func prefixesContain(prefixes []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
