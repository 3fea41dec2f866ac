package lua

import (
	glua "github.com/yuin/gopher-lua"

	"github.com/gong-proxy/gong/luanum"
)

// LuaJIT's string.buffer, the string-building part (new, put, putf, get,
// skip, set, reset, tostring, len, #buf). Serialisation (encode/decode)
// and the FFI pointer methods are not provided.

const strBufType = "string.buffer"

type strBuf struct{ b []byte }

// add appends s, refusing growth past the memory limit.
func (sb *strBuf) add(L *glua.LState, s string) {
	CheckAppend(L, sb.b, len(s))
	sb.b = append(sb.b, s...)
}

func openStringBuffer(L *glua.LState) *glua.LTable {
	mt := L.NewTypeMetatable(strBufType)
	methods := L.SetFuncs(L.NewTable(), strBufMethods)
	mt.RawSetString("__index", methods)
	mt.RawSetString("__len", L.NewFunction(strBufLen))
	mt.RawSetString("__tostring", L.NewFunction(strBufToString))
	mod := L.NewTable()
	mod.RawSetString("new", L.NewFunction(func(L *glua.LState) int {
		ud := L.NewUserData()
		ud.Value = &strBuf{b: make([]byte, 0, min(max(L.OptInt(1, 0), 0), tableNewCap))}
		L.SetMetatable(ud, L.GetTypeMetatable(strBufType))
		L.Push(ud)
		return 1
	}))
	return mod
}

func checkStrBuf(L *glua.LState) *strBuf {
	if ud, ok := L.Get(1).(*glua.LUserData); ok {
		if sb, ok := ud.Value.(*strBuf); ok {
			return sb
		}
	}
	L.ArgError(1, "buffer expected")
	return nil
}

var strBufMethods = map[string]glua.LGFunction{
	"put": func(L *glua.LState) int {
		sb := checkStrBuf(L)
		for i := 2; i <= L.GetTop(); i++ {
			switch v := L.Get(i).(type) {
			case glua.LString:
				sb.add(L, string(v))
			case glua.LNumber:
				sb.add(L, luanum.Format(float64(v)))
			case *glua.LUserData:
				if other, ok := v.Value.(*strBuf); ok {
					CheckAppend(L, sb.b, len(other.b))
					sb.b = append(sb.b, other.b...)
					continue
				}
				sb.add(L, putMeta(L, i, v))
			default:
				sb.add(L, putMeta(L, i, v))
			}
		}
		L.SetTop(1)
		return 1
	},
	"putf": func(L *glua.LState) int {
		sb := checkStrBuf(L)
		top := L.GetTop()
		L.Push(L.GetField(L.GetGlobal("string"), "format"))
		for i := 2; i <= top; i++ {
			L.Push(L.Get(i))
		}
		L.Call(top-1, 1)
		sb.add(L, L.CheckString(-1))
		L.SetTop(1)
		return 1
	},
	"get": func(L *glua.LState) int {
		sb := checkStrBuf(L)
		top := L.GetTop()
		if top < 2 {
			L.Push(glua.LString(sb.b))
			sb.b = sb.b[:0]
			return 1
		}
		for i := 2; i <= top; i++ {
			n := len(sb.b)
			if L.Get(i) != glua.LNil {
				n = min(max(L.CheckInt(i), 0), len(sb.b))
			}
			L.Push(glua.LString(sb.b[:n]))
			sb.b = sb.b[n:]
		}
		return top - 1
	},
	"skip": func(L *glua.LState) int {
		sb := checkStrBuf(L)
		n := min(max(L.CheckInt(2), 0), len(sb.b))
		sb.b = sb.b[n:]
		L.SetTop(1)
		return 1
	},
	"set": func(L *glua.LState) int {
		sb := checkStrBuf(L)
		s := L.CheckString(2)
		sb.b = sb.b[:0]
		sb.add(L, s)
		L.SetTop(1)
		return 1
	},
	"reset": func(L *glua.LState) int {
		sb := checkStrBuf(L)
		sb.b = sb.b[:0]
		L.SetTop(1)
		return 1
	},
	"tostring": strBufToString,
	"len":      strBufLen,
}

// putMeta appends a value through its __tostring, as LuaJIT's put does;
// anything else is an argument error.
func putMeta(L *glua.LState, i int, v glua.LValue) string {
	if L.GetMetaField(v, "__tostring") == glua.LNil {
		L.ArgError(i, "string expected, got "+v.Type().String())
	}
	return L.ToStringMeta(v).String()
}

func strBufToString(L *glua.LState) int {
	L.Push(glua.LString(checkStrBuf(L).b))
	return 1
}

func strBufLen(L *glua.LState) int {
	L.Push(glua.LNumber(len(checkStrBuf(L).b)))
	return 1
}
