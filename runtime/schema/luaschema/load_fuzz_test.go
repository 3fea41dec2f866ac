package luaschema

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	glua "github.com/yuin/gopher-lua"

	"github.com/gong-proxy/gong/lua"
)

// FuzzLoad loads arbitrary schema tables, written as JSON (arrays become
// sequences; a string "typedefs.<name>" stands for that entry of
// kong.db.schema.typedefs), and validates an arbitrary config against
// those that load: Load returns a schema or an error naming the plugin,
// and neither step panics.
func FuzzLoad(f *testing.F) {
	for _, s := range [][2]string{
		{`{"name":"x","fields":[{"protocols":"typedefs.protocols"},{"config":{"type":"record","fields":[{"host":"typedefs.host"},{"port":"typedefs.port"},{"n":{"type":"number","default":1,"between":[0,10]}}]}}]}`,
			`{"config":{"host":"a.b","port":1,"n":11}}`},
		{`{"name":"x","fields":[{"config":{"type":"record","fields":[{"a":{"type":"array","elements":{"type":"string","one_of":["p","q"]}}},{"m":{"type":"map","keys":{"type":"string"},"values":{"type":"integer"}}}],"entity_checks":[{"at_least_one_of":["a","m"]}]}}]}`,
			`{"config":{"a":["p","z"],"m":{"k":1.5}}}`},
		{`{"name":"x","fields":[{"config":{"type":"record","fields":[{"s":{"type":"set","elements":{"type":"string","match":"^%w+$"}}},{"r":{"type":"string","len_min":2,"starts_with":"a"}}]}}],"shorthand_fields":[{"old":{"type":"string"}}]}`,
			`{"config":{"s":["a","a"],"r":"b"}}`},
		{`{"name":"x","fields":[{"config":{"type":"foreign"}}]}`, `{}`},
	} {
		f.Add(s[0], s[1])
	}
	b, err := lua.NewBundle(map[string]string{"typedefs": `return require "kong.db.schema.typedefs"`}, lua.GoModules(Modules()))
	if err != nil {
		f.Fatal(err)
	}
	vm, err := lua.NewVM(b, lua.PoolOptions{})
	if err != nil {
		f.Fatal(err)
	}
	defer vm.Close()
	td, err := vm.Require(context.Background(), "typedefs")
	if err != nil {
		f.Fatal(err)
	}
	typedefs := td.(*glua.LTable)
	f.Fuzz(func(t *testing.T, schemaJSON, configJSON string) {
		var def map[string]any
		if json.Unmarshal([]byte(schemaJSON), &def) != nil {
			return
		}
		s, err := Load(vm, "x", luaValue(vm.L, typedefs, def).(*glua.LTable))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "plugin 'x' schema: ") {
				t.Fatalf("error without the plugin's name: %v", err)
			}
			return
		}
		var config map[string]any
		if json.Unmarshal([]byte(configJSON), &config) != nil {
			return
		}
		s.Validate(vm, config)
	})
}

// luaValue builds the Lua value of decoded JSON.
func luaValue(L *glua.LState, typedefs *glua.LTable, v any) glua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, luaValue(L, typedefs, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(luaValue(L, typedefs, e))
		}
		return t
	case string:
		if name, ok := strings.CutPrefix(x, "typedefs."); ok {
			if d := typedefs.RawGetString(name); d != glua.LNil {
				return d
			}
		}
		return glua.LString(x)
	case float64:
		return glua.LNumber(x)
	case bool:
		return glua.LBool(x)
	}
	return glua.LNil
}
