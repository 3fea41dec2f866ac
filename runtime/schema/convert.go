package schema

import (
	"fmt"
	"math"
	"sort"
	"strconv"

	glua "github.com/yuin/gopher-lua"

	"github.com/gong-proxy/gong/lua"
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
// prints them), null becomes nil.
func (ld *loader) toGo(v glua.LValue) (any, error) {
	return toGo(v, ld.null, 0)
}

func toGo(v glua.LValue, isNull func(glua.LValue) bool, depth int) (any, error) {
	if depth > 100 {
		return nil, fmt.Errorf("table nested too deeply")
	}
	if isNull(v) {
		return nil, nil
	}
	switch x := v.(type) {
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
				e, err := toGo(x.RawGetInt(i), isNull, depth+1)
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
			if e, err = toGo(val, isNull, depth+1); err == nil {
				out[luaString(k)] = e
			}
		})
		return out, err
	}
	return nil, fmt.Errorf("cannot convert a %s", v.Type())
}

// jsonable converts a Lua value to JSON values as toGo does, leaving out
// what JSON cannot hold (functions, userdata) instead of failing.
func jsonable(v glua.LValue, isNull func(glua.LValue) bool, depth int) any {
	t, ok := v.(*glua.LTable)
	if !ok || depth > 100 {
		out, _ := toGo(v, isNull, depth)
		return out
	}
	if n := t.Len(); n > 0 && isSequence(t, n) {
		out := make([]any, 0, n)
		for i := 1; i <= n; i++ {
			if e := t.RawGetInt(i); !isFunc(e) {
				out = append(out, jsonable(e, isNull, depth+1))
			}
		}
		return out
	}
	out := map[string]any{}
	t.ForEach(func(k, e glua.LValue) {
		if !isFunc(e) {
			out[luaString(k)] = jsonable(e, isNull, depth+1)
		}
	})
	return out
}

func isFunc(v glua.LValue) bool {
	_, ok := v.(*glua.LFunction)
	return ok
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

// normalize deep-copies a decoded config into the value domain: every Go
// number becomes float64, maps with non-string keys are rejected later as
// they cannot occur in JSON.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case uint:
		return float64(x)
	case uint64:
		return float64(x)
	case uint32:
		return float64(x)
	case float32:
		return float64(x)
	}
	return v
}

// deepCopy copies maps and slices of the value domain.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

// tostring renders a value as Lua's tostring does for messages.
func tostring(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case float64:
		return lua.FormatNumber(x)
	case bool:
		return strconv.FormatBool(x)
	}
	return "table"
}
