package luaschema

import (
	"fmt"
	"math"
	"sort"

	glua "github.com/yuin/gopher-lua"

	"github.com/gong-proxy/gong/luanum"
)

// nullKey is the registry field holding this package's null sentinel on
// a VM whose "ngx" global has no null.
const nullKey = "gong.schema.null"

// nullValue is the VM's ngx.null, or this package's sentinel (created on
// first use) when there is none.
func nullValue(L *glua.LState) glua.LValue {
	if ngx, ok := L.GetGlobal("ngx").(*glua.LTable); ok {
		if n := ngx.RawGetString("null"); n != glua.LNil {
			return n
		}
	}
	reg := L.Get(glua.RegistryIndex).(*glua.LTable)
	if n := reg.RawGetString(nullKey); n != glua.LNil {
		return n
	}
	n := L.NewUserData()
	reg.RawSetString(nullKey, n)
	return n
}

// nullTest reports whether a Lua value is null: the VM's ngx.null or this
// package's sentinel.
func nullTest(L *glua.LState) func(glua.LValue) bool {
	reg := L.Get(glua.RegistryIndex).(*glua.LTable)
	sentinel := reg.RawGetString(nullKey)
	var ngxNull glua.LValue = glua.LNil
	if ngx, ok := L.GetGlobal("ngx").(*glua.LTable); ok {
		ngxNull = ngx.RawGetString("null")
	}
	return func(v glua.LValue) bool {
		if v == glua.LNil {
			return false
		}
		return v == sentinel || v == ngxNull
	}
}

// toGo converts a Lua value to the Go value domain: a non-empty sequence
// becomes []any, another table map[string]any (numeric keys written as Lua
// prints them), nil and null become nil. A function becomes fn's value;
// with fn nil it cannot be converted.
func toGo(v glua.LValue, isNull func(glua.LValue) bool, fn func(*glua.LFunction) any, depth int) (any, error) {
	if depth > 100 {
		return nil, fmt.Errorf("table nested too deeply")
	}
	if v == glua.LNil || isNull(v) {
		return nil, nil
	}
	switch x := v.(type) {
	case *glua.LFunction:
		if fn != nil {
			return fn(x), nil
		}
	case glua.LString:
		return string(x), nil
	case glua.LNumber:
		return float64(x), nil
	case glua.LBool:
		return bool(x), nil
	case *glua.LTable:
		if n := x.Len(); n > 0 && isSequence(x, n) {
			out := make([]any, n)
			for i := 1; i <= n; i++ {
				e, err := toGo(x.RawGetInt(i), isNull, fn, depth+1)
				if err != nil {
					return nil, err
				}
				out[i-1] = e
			}
			return out, nil
		}
		out := map[string]any{}
		var err error
		x.ForEach(func(k, val glua.LValue) {
			if err != nil {
				return
			}
			var e any
			if e, err = toGo(val, isNull, fn, depth+1); err == nil {
				out[luaString(k)] = e
			}
		})
		return out, err
	}
	return nil, fmt.Errorf("cannot convert a %s", v.Type())
}

func isSequence(t *glua.LTable, n int) bool {
	count := 0
	ok := true
	t.ForEach(func(k, _ glua.LValue) {
		count++
		if num, isNum := k.(glua.LNumber); !isNum || float64(num) != math.Floor(float64(num)) || num < 1 || int(num) > n {
			ok = false
		}
	})
	return ok && count == n
}

// toLua converts a Go value to Lua; nil becomes null, since Kong's
// validators see insert-processed data where optional fields hold ngx.null.
func toLua(L *glua.LState, null glua.LValue, v any) glua.LValue {
	switch x := v.(type) {
	case nil:
		return null
	case string:
		return glua.LString(x)
	case float64:
		return glua.LNumber(x)
	case bool:
		return glua.LBool(x)
	case []any:
		t := L.CreateTable(len(x), 0)
		for _, e := range x {
			t.Append(toLua(L, null, e))
		}
		return t
	case map[string]any:
		t := L.CreateTable(0, len(x))
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.RawSetString(k, toLua(L, null, x[k]))
		}
		return t
	}
	return glua.LNil
}

// luaString is tostring without metamethods, and "" for nil.
func luaString(v glua.LValue) string {
	if v == glua.LNil {
		return ""
	}
	if n, ok := v.(glua.LNumber); ok {
		return luanum.Format(float64(n))
	}
	return v.String()
}
