package luaschema

import (
	"context"
	"fmt"
	"time"

	glua "github.com/yuin/gopher-lua"

	"github.com/gong-proxy/gong/lua"
	"github.com/gong-proxy/gong/runtime/schema"
)

// callTimeout bounds each Lua function a validation calls (custom
// validators, entity checks, shorthand funcs).
const callTimeout = 5 * time.Second

// Schema is a plugin schema read from its schema.lua on a VM. Its Lua
// functions (custom validators, entity checks, shorthand funcs) run on
// that VM, so Validate must be given it.
type Schema struct {
	*schema.Schema
}

// Load turns the table a plugin's schema.lua returns into a Schema. Errors
// name the plugin and the offending field ("plugin 'x' schema: field
// 'config.y': unknown type 'z'").
func Load(vm *lua.VM, name string, tbl *glua.LTable) (*Schema, error) {
	if tbl == nil {
		return nil, fmt.Errorf("plugin '%s' schema: expected a table", name)
	}
	// Lua functions in the definition become schema.Func calls on vm.
	def, err := toGo(tbl, nullTest(vm.L), func(f *glua.LFunction) any { return luaFunc(vm, f) }, 0)
	if err != nil {
		return nil, fmt.Errorf("plugin '%s' schema: %w", name, err)
	}
	m, _ := def.(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	s, err := schema.Define(name, m)
	if err != nil {
		return nil, err
	}
	return &Schema{s}, nil
}

// Validate checks a plugin entity's config (schema.Schema.Validate); vm
// must be the VM the schema was loaded on, which runs its Lua functions.
func (s *Schema) Validate(vm *lua.VM, config map[string]any) (filled map[string]any, errs map[string]any) {
	return s.Schema.Validate(config)
}

// luaFunc makes a Lua function of a schema callable from the schema
// engine: arguments go to Lua with nil as null, results come back as Go
// values.
func luaFunc(vm *lua.VM, fn *glua.LFunction) schema.Func {
	return func(args ...any) ([]any, error) {
		null := nullValue(vm.L)
		in := make([]glua.LValue, len(args))
		for i, a := range args {
			in[i] = toLua(vm.L, null, a)
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		res, err := vm.Call(ctx, fn, in...)
		if err != nil {
			return nil, err
		}
		isNull := func(x glua.LValue) bool { return x == null }
		out := make([]any, len(res))
		for i, r := range res {
			if out[i], err = toGo(r, isNull, nil, 0); err != nil {
				out[i] = luaString(r) // a function or userdata: its name
			}
		}
		return out, nil
	}
}
