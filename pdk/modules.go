package pdk

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	glua "github.com/yuin/gopher-lua"
)

// The OpenResty and Kong modules whose originals need FFI, written in Go.

// openRestyString is resty.string: to_hex and atoi.
func openRestyString(L *glua.LState) int {
	t := L.NewTable()
	setFuncs(L, t, map[string]glua.LGFunction{
		"to_hex": func(L *glua.LState) int {
			L.Push(glua.LString(hex.EncodeToString([]byte(checkBytes(L, 1)))))
			return 1
		},
		"atoi": func(L *glua.LState) int {
			n, err := strconv.Atoi(L.CheckString(1))
			if err != nil {
				L.Push(glua.LNumber(-1))
				return 1
			}
			L.Push(glua.LNumber(n))
			return 1
		},
	})
	L.Push(t)
	return 1
}

// randomBytes returns n bytes from the system's CSPRNG.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// openRestyRandom is resty.random: bytes(n, strong), where strong makes no
// difference since every byte comes from the system's CSPRNG.
func openRestyRandom(L *glua.LState) int {
	t := L.NewTable()
	setFuncs(L, t, map[string]glua.LGFunction{
		"bytes": func(L *glua.LState) int {
			n := L.CheckInt(1)
			if n < 0 {
				L.Push(glua.LNil)
				return 1
			}
			L.Push(glua.LString(randomBytes(n)))
			return 1
		},
	})
	L.Push(t)
	return 1
}

// randomStringAlphabet is what kong.tools.rand.random_string draws from:
// base64url without its two symbols, as Kong's replaces them.
const randomStringAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// openToolsRand is kong.tools.rand: get_rand_bytes(n) and random_string()
// (32 alphanumeric characters).
func openToolsRand(L *glua.LState) int {
	t := L.NewTable()
	setFuncs(L, t, map[string]glua.LGFunction{
		"get_rand_bytes": func(L *glua.LState) int {
			L.Push(glua.LString(randomBytes(L.CheckInt(1))))
			return 1
		},
		"random_string": func(L *glua.LState) int {
			b := randomBytes(32)
			for i := range b {
				b[i] = randomStringAlphabet[int(b[i])%len(randomStringAlphabet)]
			}
			L.Push(glua.LString(b))
			return 1
		},
	})
	L.Push(t)
	return 1
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// openToolsUUID is kong.tools.uuid: uuid() and is_valid_uuid(s), which
// also accepts the nil UUID as Kong's does.
func openToolsUUID(L *glua.LState) int {
	t := L.NewTable()
	setFuncs(L, t, map[string]glua.LGFunction{
		"uuid": func(L *glua.LState) int {
			L.Push(glua.LString(newUUID()))
			return 1
		},
		"is_valid_uuid": func(L *glua.LState) int {
			s, ok := L.Get(1).(glua.LString)
			L.Push(glua.LBool(ok && uuidPattern.MatchString(string(s))))
			return 1
		},
	})
	L.Push(t)
	return 1
}

// lruItem is a resty.lrucache entry.
type lruItem struct {
	value   glua.LValue
	expires time.Time // zero: never
	flags   glua.LValue
}

// lruCache is one resty.lrucache instance.
type lruCache struct {
	*simplelru.LRU[glua.LValue, *lruItem]
	capacity int
}

// openLRUCache is resty.lrucache (and resty.lrucache.pureffi): a cache of
// one VM, keyed by any Lua value (tables by identity), as a worker's is.
func openLRUCache(L *glua.LState) int {
	mt := L.NewTable()
	check := func(L *glua.LState) *lruCache {
		if ud, ok := L.Get(1).(*glua.LUserData); ok {
			if c, ok := ud.Value.(*lruCache); ok {
				return c
			}
		}
		L.RaiseError("bad argument #1: lrucache expected, call methods with ':'")
		return nil
	}
	methods := L.NewTable()
	setFuncs(L, methods, map[string]glua.LGFunction{
		"get": func(L *glua.LState) int {
			c := check(L)
			it, ok := c.Get(L.Get(2))
			if !ok {
				L.Push(glua.LNil)
				return 1
			}
			if !it.expires.IsZero() && !time.Now().Before(it.expires) {
				L.Push(glua.LNil)
				L.Push(it.value)
				L.Push(it.flags)
				return 3
			}
			L.Push(it.value)
			L.Push(glua.LNil)
			L.Push(it.flags)
			return 3
		},
		"set": func(L *glua.LState) int {
			c := check(L)
			it := &lruItem{value: L.Get(3), flags: L.Get(5)}
			if ttl := float64(L.OptNumber(4, 0)); ttl > 0 {
				it.expires = time.Now().Add(time.Duration(ttl * float64(time.Second)))
			}
			if it.flags == glua.LNil {
				it.flags = glua.LNumber(0)
			}
			c.Add(L.Get(2), it)
			return 0
		},
		"delete": func(L *glua.LState) int {
			L.Push(glua.LBool(check(L).Remove(L.Get(2))))
			return 1
		},
		"count": func(L *glua.LState) int {
			L.Push(glua.LNumber(check(L).Len()))
			return 1
		},
		"capacity": func(L *glua.LState) int {
			L.Push(glua.LNumber(check(L).capacity))
			return 1
		},
		"get_keys": func(L *glua.LState) int {
			keys := check(L).Keys()
			max := L.OptInt(2, 0)
			res, ok := L.Get(3).(*glua.LTable)
			if !ok {
				res = L.NewTable()
			}
			n := 0
			for i := len(keys) - 1; i >= 0 && (max <= 0 || n < max); i-- { // most recent first
				n++
				res.RawSetInt(n, keys[i])
			}
			res.RawSetInt(n+1, glua.LNil)
			L.Push(res)
			return 1
		},
		"flush_all": func(L *glua.LState) int {
			check(L).Purge()
			return 0
		},
	})
	mt.RawSetString("__index", methods)
	t := L.NewTable()
	t.RawSetString("_VERSION", glua.LString("0.15"))
	t.RawSetString("new", L.NewFunction(func(L *glua.LState) int {
		size := L.CheckNumber(1)
		if size < 1 || size > math.MaxInt32 {
			return pushErr(L, "size too small")
		}
		c, _ := simplelru.NewLRU[glua.LValue, *lruItem](int(size), nil)
		ud := L.NewUserData()
		ud.Value = &lruCache{LRU: c, capacity: int(size)}
		L.SetMetatable(ud, mt)
		L.Push(ud)
		return 1
	}))
	L.Push(t)
	return 1
}

// openToolsIP is kong.tools.ip: address and CIDR validation,
// hostname_type, normalize_ip and format_host.
func openToolsIP(L *glua.LState) int {
	t := L.NewTable()
	is := func(ok func(string) bool) glua.LGFunction {
		return func(L *glua.LState) int {
			s, isStr := L.Get(1).(glua.LString)
			L.Push(glua.LBool(isStr && ok(string(s))))
			return 1
		}
	}
	setFuncs(L, t, map[string]glua.LGFunction{
		"is_valid_ipv4":          is(func(s string) bool { return ipKind(s) == 4 }),
		"is_valid_ipv6":          is(func(s string) bool { return ipKind(s) == 6 }),
		"is_valid_ip":            is(func(s string) bool { return ipKind(s) != 0 }),
		"is_valid_cidr_v4":       is(func(s string) bool { return cidrKind(s) == 4 }),
		"is_valid_cidr_v6":       is(func(s string) bool { return cidrKind(s) == 6 }),
		"is_valid_cidr":          is(func(s string) bool { return cidrKind(s) != 0 }),
		"is_valid_ip_or_cidr_v4": is(func(s string) bool { return ipKind(s) == 4 || cidrKind(s) == 4 }),
		"is_valid_ip_or_cidr_v6": is(func(s string) bool { return ipKind(s) == 6 || cidrKind(s) == 6 }),
		"is_valid_ip_or_cidr":    is(func(s string) bool { return ipKind(s) != 0 || cidrKind(s) != 0 }),
		"hostname_type": func(L *glua.LState) int {
			L.Push(glua.LString(hostnameType(L.CheckString(1))))
			return 1
		},
		"normalize_ip": func(L *glua.LState) int {
			host, port, err := normalizeIP(L.CheckString(1))
			if err != "" {
				return pushErr(L, err)
			}
			r := L.NewTable()
			r.RawSetString("type", glua.LString(hostnameType(host)))
			r.RawSetString("host", glua.LString(host))
			if port >= 0 {
				r.RawSetString("port", glua.LNumber(port))
			}
			L.Push(r)
			return 1
		},
		"format_host": func(L *glua.LState) int {
			var host string
			port := L.Get(2)
			if tb, ok := L.Get(1).(*glua.LTable); ok {
				host = tb.RawGetString("host").String()
				if port == glua.LNil {
					port = tb.RawGetString("port")
				}
			} else {
				host = L.CheckString(1)
			}
			if hostnameType(host) == "ipv6" && !strings.HasPrefix(host, "[") {
				host = "[" + host + "]"
			}
			if port != glua.LNil {
				host += ":" + port.String()
			}
			L.Push(glua.LString(host))
			return 1
		},
	})
	L.Push(t)
	return 1
}

// ipKind is 4 or 6 for an address of that family, else 0.
func ipKind(s string) int {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil || a.Zone() != "":
		return 0
	case a.Is4():
		return 4
	default:
		return 6
	}
}

func cidrKind(s string) int {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return 0
	case p.Addr().Is4():
		return 4
	default:
		return 6
	}
}

// hostnameType is "ipv4", "ipv6" (with or without brackets and port) or
// "name".
func hostnameType(s string) string {
	if strings.Contains(s, ":") {
		if strings.Count(s, ":") == 1 && ipKind(strings.Split(s, ":")[0]) != 6 {
			s = strings.Split(s, ":")[0]
		} else {
			return "ipv6"
		}
	}
	if ipKind(s) == 4 {
		return "ipv4"
	}
	return "name"
}

// normalizeIP splits "host[:port]" ("[v6]:port" for IPv6); port is -1
// when absent.
func normalizeIP(s string) (host string, port int, errText string) {
	port = -1
	switch hostnameType(s) {
	case "ipv6":
		if strings.HasPrefix(s, "[") {
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return "", 0, "invalid ipv6 address: " + s
			}
			host = s[1:end]
			if rest := s[end+1:]; rest != "" {
				p, err := strconv.Atoi(strings.TrimPrefix(rest, ":"))
				if err != nil || !strings.HasPrefix(rest, ":") || p < 0 || p > 65535 {
					return "", 0, "invalid port number"
				}
				port = p
			}
		} else {
			host = s
		}
		if ipKind(host) != 6 {
			return "", 0, "invalid ipv6 address: " + s
		}
		return host, port, ""
	default:
		host = s
		if h, p, ok := strings.Cut(s, ":"); ok {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 || n > 65535 {
				return "", 0, "invalid port number"
			}
			host, port = h, n
		}
		return host, port, ""
	}
}
