package pdk

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"hash/crc32"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/gong-proxy/gong/lua"
	"github.com/gong-proxy/gong/luanum"
	glua "github.com/yuin/gopher-lua"
)

// nginxVersion is the nginx of the OpenResty release Kong 3.10 ships
// (1.27.1), as ngx.config.nginx_version gives it.
const nginxVersion = 1027001

// openNgxMore adds ngx.worker, the rest of ngx.config, the encoding and
// hashing helpers and the HTTP date functions to ngx.
func (p *pdk) openNgxMore(L *glua.LState, ngx *glua.LTable) {
	config := ngx.RawGetString("config").(*glua.LTable)
	config.RawSetString("nginx_version", glua.LNumber(nginxVersion))
	config.RawSetString("debug", glua.LFalse)
	prefix, _ := p.opts.Configuration["prefix"].(string)
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	setFuncs(L, config, map[string]glua.LGFunction{
		"prefix":          func(L *glua.LState) int { L.Push(glua.LString(prefix)); return 1 },
		"nginx_configure": func(L *glua.LState) int { L.Push(glua.LString("")); return 1 },
	})

	// Each VM of a pool is a worker of one process (docs/architecture.md,
	// "Lua VMs");
	// a VM outside any pool is worker 0 of 1.
	id, count := 0, 1
	if vm := p.b.vm; vm != nil && vm.Pool() != nil {
		id, count = vm.WorkerID(), vm.Pool().Workers()
	}
	worker := L.NewTable()
	setFuncs(L, worker, map[string]glua.LGFunction{
		"id":    func(L *glua.LState) int { L.Push(glua.LNumber(id)); return 1 },
		"count": func(L *glua.LState) int { L.Push(glua.LNumber(count)); return 1 },
		"pid":   func(L *glua.LState) int { L.Push(glua.LNumber(os.Getpid())); return 1 },
		"pids": func(L *glua.LState) int {
			t := L.NewTable()
			t.Append(glua.LNumber(os.Getpid()))
			L.Push(t)
			return 1
		},
		"exiting": func(L *glua.LState) int {
			L.Push(glua.LBool(p.opts.Exiting != nil && p.opts.Exiting()))
			return 1
		},
	})
	ngx.RawSetString("worker", worker)
	setFuncs(L, ngx, codecFuncs)
	setFuncs(L, ngx, map[string]glua.LGFunction{
		"http_time": func(L *glua.LState) int {
			L.Push(glua.LString(time.Unix(int64(L.CheckNumber(1)), 0).UTC().Format(httpTimeLayout)))
			return 1
		},
		"cookie_time": func(L *glua.LState) int {
			L.Push(glua.LString(time.Unix(int64(L.CheckNumber(1)), 0).UTC().Format("Mon, 02-Jan-06 15:04:05 GMT")))
			return 1
		},
		"parse_http_time": func(L *glua.LState) int {
			s := L.CheckString(1)
			for _, layout := range []string{httpTimeLayout, time.RFC850, time.ANSIC} {
				if t, err := time.Parse(layout, s); err == nil {
					L.Push(glua.LNumber(t.Unix()))
					return 1
				}
			}
			L.Push(glua.LNil)
			return 1
		},
	})
}

const httpTimeLayout = "Mon, 02 Jan 2006 15:04:05 GMT"

func setFuncs(L *glua.LState, t *glua.LTable, fns map[string]glua.LGFunction) {
	for name, fn := range fns {
		t.RawSetString(name, L.NewFunction(fn))
	}
}

// checkBytes reads a string argument; numbers are turned into strings,
// as lua-resty-core does with tostring.
func checkBytes(L *glua.LState, n int) string {
	switch v := L.Get(n).(type) {
	case glua.LString:
		return string(v)
	case glua.LNumber:
		return luanum.Format(float64(v))
	case *glua.LNilType:
		return ""
	default:
		L.RaiseError("string argument only")
		return ""
	}
}

var codecFuncs = map[string]glua.LGFunction{
	"encode_base64": func(L *glua.LState) int {
		enc := base64.StdEncoding
		if glua.LVAsBool(L.Get(2)) {
			enc = base64.RawStdEncoding
		}
		src := checkBytes(L, 1)
		lua.CheckAlloc(L, float64(enc.EncodedLen(len(src))))
		L.Push(glua.LString(enc.EncodeToString([]byte(src))))
		return 1
	},
	"decode_base64": func(L *glua.LState) int {
		s, ok := L.Get(1).(glua.LString)
		if !ok {
			L.RaiseError("string argument only")
		}
		// nginx accepts the padding or its absence.
		b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(string(s), "="))
		if err != nil {
			L.Push(glua.LNil)
			return 1
		}
		L.Push(glua.LString(b))
		return 1
	},
	"md5": func(L *glua.LState) int {
		sum := md5.Sum([]byte(checkBytes(L, 1)))
		L.Push(glua.LString(hex.EncodeToString(sum[:])))
		return 1
	},
	"md5_bin": func(L *glua.LState) int {
		sum := md5.Sum([]byte(checkBytes(L, 1)))
		L.Push(glua.LString(sum[:]))
		return 1
	},
	"sha1_bin": func(L *glua.LState) int {
		sum := sha1.Sum([]byte(checkBytes(L, 1)))
		L.Push(glua.LString(sum[:]))
		return 1
	},
	"hmac_sha1": func(L *glua.LState) int {
		m := hmac.New(sha1.New, []byte(checkBytes(L, 1)))
		m.Write([]byte(checkBytes(L, 2)))
		L.Push(glua.LString(m.Sum(nil)))
		return 1
	},
	"crc32_short": crc32Func,
	"crc32_long":  crc32Func,
	"escape_uri": func(L *glua.LState) int {
		kind := L.OptInt(2, 2)
		if kind != 0 && kind != 2 {
			L.RaiseError("\"type\" %d out of range", kind)
		}
		src := checkBytes(L, 1)
		// An escaped byte takes three.
		lua.CheckAlloc(L, 3*float64(len(src)))
		L.Push(glua.LString(escapeURI(src, kind == 2)))
		return 1
	},
	"unescape_uri": func(L *glua.LState) int {
		L.Push(glua.LString(unescapeURI(checkBytes(L, 1))))
		return 1
	},
	"encode_args":   encodeArgs,
	"decode_args":   decodeArgs,
	"quote_sql_str": quoteSQLStr,
}

// crc32Func is crc32_short and crc32_long: both are CRC-32 (IEEE); nginx
// only picks a different loop for short inputs.
func crc32Func(L *glua.LState) int {
	L.Push(glua.LNumber(crc32.ChecksumIEEE([]byte(checkBytes(L, 1)))))
	return 1
}

// escapeURI percent-encodes s. component (type 2) keeps only the
// unreserved characters; otherwise (type 0) only spaces, controls, bytes
// above 0x7e and "#", "%", "?" are escaped.
func escapeURI(s string, component bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		var keep bool
		if component {
			keep = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
		} else {
			keep = c > ' ' && c < 0x7f && c != '#' && c != '%' && c != '?'
		}
		if keep {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// unescapeURI decodes %XX sequences and "+" as a space; a malformed
// sequence is kept as is.
func unescapeURI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			v, _ := hex.DecodeString(s[i+1 : i+3])
			b.Write(v)
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// encodeArgs is ngx.encode_args: keys in sorted order (nginx follows the
// table's order, which Lua leaves unspecified), true as a bare key, false
// left out, an array value as the key repeated.
func encodeArgs(L *glua.LState) int {
	t := L.CheckTable(1)
	var keys []string
	vals := map[string][]glua.LValue{}
	t.ForEach(func(k, v glua.LValue) {
		var ks string
		switch k := k.(type) {
		case glua.LString:
			ks = string(k)
		case glua.LNumber:
			ks = luanum.Format(float64(k))
		default:
			L.RaiseError("attempt to use %s as query arg key", k.Type())
		}
		keys = append(keys, ks)
		if arr, ok := v.(*glua.LTable); ok {
			for i := 1; i <= arr.Len(); i++ {
				vals[ks] = append(vals[ks], arr.RawGetInt(i))
			}
		} else {
			vals[ks] = []glua.LValue{v}
		}
	})
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		ek := escapeURI(k, true)
		for _, v := range vals[k] {
			switch v := v.(type) {
			case glua.LBool:
				if v {
					parts = append(parts, ek)
				}
			case glua.LString, glua.LNumber:
				parts = append(parts, ek+"="+escapeURI(v.String(), true))
			default:
				L.RaiseError("attempt to use %s as query arg value", v.Type())
			}
		}
	}
	L.Push(glua.LString(strings.Join(parts, "&")))
	return 1
}

// decodeArgs is ngx.decode_args(s, max?): at most max (100; 0 for all)
// arguments, a bare key as true, a repeated key as an array.
func decodeArgs(L *glua.LState) int {
	s := L.CheckString(1)
	max := L.OptInt(2, 100)
	t := L.NewTable()
	n := 0
	for _, part := range strings.Split(s, "&") {
		if part == "" {
			continue
		}
		if max > 0 && n == max {
			break
		}
		n++
		k, v, hasValue := strings.Cut(part, "=")
		key := glua.LString(unescapeURI(k))
		var val glua.LValue = glua.LTrue
		if hasValue {
			val = glua.LString(unescapeURI(v))
		}
		switch old := t.RawGet(key).(type) {
		case *glua.LNilType:
			t.RawSet(key, val)
		case *glua.LTable:
			old.Append(val)
		default:
			arr := L.NewTable()
			arr.Append(old)
			arr.Append(val)
			t.RawSet(key, arr)
		}
	}
	L.Push(t)
	return 1
}

// quoteSQLStr quotes s for MySQL as ngx.quote_sql_str does.
func quoteSQLStr(L *glua.LState) int {
	s := checkBytes(L, 1)
	lua.CheckAlloc(L, 2*float64(len(s))+2)
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			b.WriteString(`\0`)
		case '\b':
			b.WriteString(`\b`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case 0x1a:
			b.WriteString(`\Z`)
		case '\\', '\'', '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	L.Push(glua.LString(b.String()))
	return 1
}
