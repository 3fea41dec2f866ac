package pdk

import (
	"fmt"
	"sort"

	glua "github.com/yuin/gopher-lua"
)

// toLua converts a Go value of the shapes Session.Serialize and
// Configuration use, or a luaToGo copy, into a new Lua value. Slices get arrayMT (cjson's
// array_mt) when it is not nil, so an empty one encodes as [] as Kong's
// tries do. Map keys are inserted sorted so iteration order is stable.
func toLua(L *glua.LState, v any, arrayMT *glua.LTable) glua.LValue {
	switch v := v.(type) {
	case nil:
		return glua.LNil
	case glua.LValue:
		return v
	case []BalancerTry:
		return triesTable(L, v)
	case string:
		return glua.LString(v)
	case []byte:
		return glua.LString(v)
	case bool:
		return glua.LBool(v)
	case int:
		return glua.LNumber(v)
	case int32:
		return glua.LNumber(v)
	case int64:
		return glua.LNumber(v)
	case uint16:
		return glua.LNumber(v)
	case uint32:
		return glua.LNumber(v)
	case uint64:
		return glua.LNumber(v)
	case float32:
		return glua.LNumber(v)
	case float64:
		return glua.LNumber(v)
	case []string:
		t := L.CreateTable(len(v), 0)
		for _, e := range v {
			t.Append(glua.LString(e))
		}
		setArrayMT(L, t, arrayMT)
		return t
	case []any:
		t := L.CreateTable(len(v), 0)
		for i, e := range v {
			t.RawSetInt(i+1, toLua(L, e, arrayMT))
		}
		setArrayMT(L, t, arrayMT)
		return t
	case map[string]any:
		t := L.CreateTable(0, len(v))
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.RawSetString(k, toLua(L, v[k], arrayMT))
		}
		return t
	case map[any]any:
		t := L.NewTable()
		keys := make([]any, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			t.RawSet(toLua(L, k, arrayMT), toLua(L, v[k], arrayMT))
		}
		return t
	case Configuration:
		return toLua(L, map[string]any(v), arrayMT)
	default:
		return glua.LString(fmt.Sprint(v))
	}
}

// luaScalar copies a Lua nil, boolean, number or string into Go as nil,
// bool, float64 or string; ok is false for any other type.
func luaScalar(v glua.LValue) (value any, ok bool) {
	switch v := v.(type) {
	case *glua.LNilType:
		return nil, true
	case glua.LBool:
		return bool(v), true
	case glua.LNumber:
		return float64(v), true
	case glua.LString:
		return string(v), true
	}
	return nil, false
}

func setArrayMT(L *glua.LState, t, mt *glua.LTable) {
	if mt != nil {
		L.SetMetatable(t, mt)
	}
}

// deepCopy copies a Lua table recursively, keeping metatables and shared
// references (Kong's cycle_aware_deep_copy).
func deepCopy(L *glua.LState, v glua.LValue, seen map[*glua.LTable]*glua.LTable) glua.LValue {
	t, ok := v.(*glua.LTable)
	if !ok {
		return v
	}
	if c, ok := seen[t]; ok {
		return c
	}
	c := L.NewTable()
	seen[t] = c
	t.ForEach(func(k, val glua.LValue) {
		c.RawSet(deepCopy(L, k, seen), deepCopy(L, val, seen))
	})
	if mt, ok := L.GetMetatable(t).(*glua.LTable); ok {
		L.SetMetatable(c, mt)
	}
	return c
}

// ToLua converts a plugin's conf, as decoded from the declarative
// configuration, into the Lua table its handlers receive; arrays get
// cjson's array_mt, as Kong's do.
func ToLua(L *glua.LState, v any) glua.LValue {
	return toLua(L, v, arrayMT(L))
}
