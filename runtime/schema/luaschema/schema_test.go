package luaschema

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"

	glua "github.com/yuin/gopher-lua"

	"github.com/gong-proxy/gong/lua"
	"github.com/gong-proxy/gong/runtime/schema"
)

// load compiles testdata/<file>.lua as a plugin schema module with the Go
// modules, requires it on a fresh VM and loads it.
func load(t *testing.T, file string) (*lua.VM, *Schema) {
	t.Helper()
	src, err := os.ReadFile("testdata/" + file + ".lua")
	if err != nil {
		t.Fatal(err)
	}
	return loadSource(t, file, src)
}

// loadBundled loads the schema of one of gong's bundled plugins.
func loadBundled(t *testing.T, name string) (*lua.VM, *Schema) {
	t.Helper()
	src, err := fs.ReadFile(lua.Lib, "lib/kong/plugins/"+name+"/schema.lua")
	if err != nil {
		t.Fatal(err)
	}
	return loadSource(t, name, src)
}

func loadSource(t *testing.T, file string, src []byte) (*lua.VM, *Schema) {
	t.Helper()
	mod := "kong.plugins." + file + ".schema"
	b, err := lua.NewBundle(map[string]string{mod: string(src)}, lua.GoModules(Modules()))
	if err != nil {
		t.Fatal(err)
	}
	vm, err := lua.NewVM(b, lua.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Close)
	v, err := vm.Require(context.Background(), mod)
	if err != nil {
		t.Fatal(err)
	}
	tbl, ok := v.(*glua.LTable)
	if !ok {
		t.Fatalf("schema module returned %s", v.Type())
	}
	s, err := Load(vm, file, tbl)
	if err != nil {
		t.Fatal(err)
	}
	return vm, s
}

// decode parses a JSON config as the declarative loader would.
func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkErrors validates each config and compares the errors, as JSON
// (null for none), with want.
func checkErrors(t *testing.T, vm *lua.VM, s *Schema, tests []struct{ config, want string }) {
	t.Helper()
	for _, tt := range tests {
		_, errs := s.Validate(vm, decode(t, tt.config))
		var got any
		if len(errs) > 0 {
			got = errs
		}
		if js(got) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.config, js(got), tt.want)
		}
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestValidators(t *testing.T) {
	vm, s := load(t, "kitchen")
	tests := []struct {
		config, want string
	}{
		{`{"str": 1}`, `{"str":"expected a string"}`},
		{`{"str": ""}`, `{"str":"length must be at least 1"}`},
		{`{"num": "1"}`, `{"num":"expected a number"}`},
		{`{"num": 11}`, `{"num":"value should be between 1 and 10"}`},
		{`{"int": 1.5}`, `{"int":"expected an integer"}`},
		{`{"bool": "yes"}`, `{"bool":"expected a boolean"}`},
		{`{"arr": "x"}`, `{"arr":"expected an array"}`},
		{`{"arr": []}`, `{"arr":"length must be at least 1"}`},
		{`{"arr": ["ok", "toolong", 3]}`, `{"arr":{"2":"length must be at most 3","3":"expected a string"}}`},
		{`{"set": {"a": 1}}`, `{"set":"expected a set"}`},
		{`{"map": []}`, `null`},
		{`{"map": 3}`, `{"map":"expected a map"}`},
		{`{"map": {"k": 1.5}}`, `{"map":"expected an integer"}`},
		{`{"rec": 3}`, `{"rec":"expected a record"}`},
		{`{"rec": {"inner": 3, "zz": 1}}`, `{"rec":{"inner":"expected a string","zz":"unknown field"}}`},
		{`{"rec": {"deep": {"d": "x"}}}`, `{"rec":{"deep":{"d":"expected an integer"}}}`},
		{`{"one": "c"}`, `{"one":"expected one of: a, b"}`},
		{`{"notone": "y"}`, `{"notone":"must not be one of: x, y"}`},
		{`{"gt": 5}`, `{"gt":"value must be greater than 5"}`},
		{`{"leneq": "abc"}`, `{"leneq":"length must be 2"}`},
		{`{"match": "12a"}`, `{"match":"invalid value: 12a"}`},
		{`{"notmatch": "a b"}`, `{"notmatch":"invalid value: a b"}`},
		{`{"matchall": "abc"}`, `{"matchall":"must end with z"}`},
		{`{"matchany": "z"}`, `{"matchany":"x or y"}`},
		{`{"matchnone": "so bad"}`, `{"matchnone":"no bad"}`},
		{`{"starts": "x"}`, `{"starts":"should start with: /"}`},
		{`{"re": "a("}`, `{"re":"not a valid regex: a("}`},
		{`{"id": "nope"}`, `{"id":"expected a valid UUID"}`},
		{`{"id": "6B9AF4D4-9A4E-4E33-8B0C-0C2F7A5D1E11"}`, `null`},
		{`{"eq": "other"}`, `{"eq":"value must be fixed"}`},
		{`{"ne": "no"}`, `{"ne":"value must not be no"}`},
		{`{"custom": "bad"}`, `{"custom":"custom says no: bad"}`},
		{`{"custom": "ok"}`, `null`},
		{`{"override": 3}`, `{"override":"pick one or two"}`},
		{`{"contains": ["a"]}`, `{"contains":"expected to contain: must"}`},
		{`{"unknown": 1}`, `{"unknown":"unknown field"}`},
		{`{"metrics": [{"name": "a", "stat_type": "counter"}]}`,
			`{"metrics":{"1":{"@entity":["failed conditional validation given value of field 'stat_type'"],"sample_rate":"required field missing"}}}`},
		{`{"metrics": [{"name": "a", "stat_type": "timer"}]}`, `null`},
		{`{"metrics": [{"stat_type": "timer"}]}`, `{"metrics":{"1":{"name":"required field missing"}}}`},
		{`{"c": "x"}`, `{"@entity":["all or none of these fields must be set: 'c', 'd'"]}`},
		{`{"str": "x", "one": "a"}`, `{"@entity":["only one or none of these fields must be set: 'str', 'one'"]}`},
		{`{"a": "x", "c": "x", "d": "y"}`, `{"@entity":["values of these fields must be distinct: 'a', 'c'"]}`},
		{`{"gt": 6, "leneq": "ab"}`, `{"@entity":["these sets are mutually exclusive: ('gt'), ('leneq')"]}`},
		{`{"int": 13}`, `{"@entity":["unlucky"]}`},
		{`{"port": 70000}`, `{"port":"value should be between 0 and 65535"}`},
		{`{"host": "example.com:80"}`, `{"host":"must not have a port"}`},
		{`{"host": "exa mple"}`, `{"host":"invalid value: exa mple"}`},
		{`{"host": "10.0.0.1"}`, `null`},
		{`{"url": "example.com"}`, `{"url":"missing host in url"}`},
		{`{"url": "http://example.com/x"}`, `null`},
		{`{"header": "a b"}`, `{"header":"bad header name 'a b', allowed characters are A-Z, a-z, 0-9, '_', and '-'"}`},
		{`{"path": "/a//b"}`, `{"path":"must not have empty segments"}`},
		{`{"path": "a"}`, `{"path":"should start with: /"}`},
		{`{"version": "x.1"}`, `{"version":"invalid version number: must be in format of X.Y.Z"}`},
		{`{"version": "1..2"}`, `{"version":"must not have empty version segments"}`},
		{`{"ip": "1.2.3"}`, `{"ip":"not an ip address: 1.2.3"}`},
		{`{"ip": "::1"}`, `null`},
		{`{"sni": "1.2.3.4"}`, `{"sni":"must not be an IP"}`},
		{`{"whost": "a.*.c"}`, `{"whost":"wildcard must be leftmost or rightmost character"}`},
		{`{"whost": "*.example.com"}`, `null`},
		{`{"pname": "a b"}`, `{"pname":"invalid value 'a b': it must only contain alphanumeric and '., -, _, ~' characters"}`},
		{`{"tags": ["a,b"]}`, "{\"tags\":{\"1\":\"invalid tag 'a,b': expected printable ascii (except `,` and `/`) or valid utf-8 sequences\"}}"},
		{`{"cidr4": "::1"}`, `{"cidr4":"invalid ipv4 cidr range: '::1'"}`},
		{`{"timeout": -1}`, `{"timeout":"value should be between 0 and 2147483646"}`},
		{`{"str": null, "one": null}`, `null`},
	}
	checkErrors(t, vm, s, tests)
}

func TestDefaultsAndShorthands(t *testing.T) {
	vm, s := load(t, "kitchen")
	filled, errs := s.Validate(vm, decode(t, `{"old_name": "via-shorthand", "old_nested": "v", "set": ["a", "b", "a"], "int": 3}`))
	if errs != nil {
		t.Fatal(js(errs))
	}
	want := `{"bool":true,"eq":"fixed","int":3,"port":514,"rec":{"deep":{"d":7},"inner":"v"},"set":["a","b"],"str":"via-shorthand"}`
	if js(filled) != want {
		t.Errorf("filled:\n got %s\nwant %s", js(filled), want)
	}
	_, errs = s.Validate(vm, decode(t, `{"old_name": 3}`))
	if js(errs) != `{"old_name":"expected a string"}` {
		t.Errorf("shorthand type error: %s", js(errs))
	}
}

func TestRealShapedSchemas(t *testing.T) {
	vm, ipr := loadBundled(t, "ip-restriction")
	if got := ipr.Protocols(); !reflect.DeepEqual(got, []string{"http", "https", "tcp", "tls", "grpc", "grpcs"}) {
		t.Errorf("protocols %v", got)
	}
	if ipr.NoConsumer() || ipr.NoRoute() || ipr.NoService() {
		t.Error("ip-restriction forbids nothing")
	}
	tests := []struct{ config, filled, errs string }{
		{`{}`, `null`, `{"@entity":["at least one of these fields must be non-empty: 'config.allow', 'config.deny'"]}`},
		{`{"allow": []}`, `null`, `{"@entity":["at least one of these fields must be non-empty: 'config.allow', 'config.deny'"]}`},
		{`{"allow": ["10.0.0.0/8", "::1", "1.2.3.4/33"]}`, `null`, `{"allow":{"3":"invalid ip or cidr range: '1.2.3.4/33'"}}`},
		{`{"deny": ["10.0.0.0/8"], "status": 401}`, `{"deny":["10.0.0.0/8"],"status":401}`, `null`},
	}
	for _, tt := range tests {
		filled, errs := ipr.Validate(vm, decode(t, tt.config))
		var e any
		if len(errs) > 0 {
			e = errs
		}
		if js(filled) != tt.filled || js(e) != tt.errs {
			t.Errorf("%s: got %s / %s, want %s / %s", tt.config, js(filled), js(e), tt.filled, tt.errs)
		}
	}

	vm, tcp := load(t, "tcp_log")
	if !tcp.NoConsumer() || tcp.NoRoute() {
		t.Error("tcp-log: no_consumer only")
	}
	if got := tcp.Protocols(); !reflect.DeepEqual(got, schema.HTTPProtocols()) {
		t.Errorf("tcp-log protocols %v", got)
	}
	filled, errs := tcp.Validate(vm, decode(t, `{"host": "logs.example", "port": 9000}`))
	want := `{"host":"logs.example","keepalive":60000,"port":9000,"queue":{"concurrency_limit":1,"initial_retry_delay":0.01,"max_batch_size":1,"max_coalescing_delay":1,"max_entries":10000,"max_retry_delay":60,"max_retry_time":60},"timeout":10000,"tls":false}`
	if errs != nil || js(filled) != want {
		t.Errorf("tcp-log defaults:\n got %s %s\nwant %s", js(filled), js(errs), want)
	}
	_, errs = tcp.Validate(vm, decode(t, `{"port": 9000, "custom_fields_by_lua": {"x": "return ("}}`))
	if errs["host"] != "required field missing" || !strings.HasPrefix(js(errs["custom_fields_by_lua"]), `"Error parsing function`) {
		t.Errorf("tcp-log errors: %s", js(errs))
	}
}

func TestEntityChecks(t *testing.T) {
	vm, s := load(t, "checks")
	tests := []struct{ config, want string }{
		{`{"a": "1", "b": "2", "x": "x"}`, `{"@entity":["exactly one of these fields must be non-empty: 'a', 'b'"]}`},
		{`{"a": "1"}`, `{"@entity":["at least one of these fields must be non-empty: 'x', 'y'"]}`},
		{`{"a": "1", "mode": "other"}`, `null`},
		{`{"b": "1", "y": "y"}`, `null`},
	}
	checkErrors(t, vm, s, tests)
}

func TestLoadErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{`return { name = "x", fields = { { config = { type = "record", fields = { { y = { type = "z" } } } } } } }`,
			"plugin 'x' schema: field 'config.y': unknown type 'z'"},
		{`return { name = "x", fields = { { other = { type = "string" } } } }`,
			"plugin 'x' schema: field 'other': cannot create a new field"},
		{`return { name = "x", fields = {}, extra = 1 }`, "plugin 'x' schema: unknown field 'extra'"},
		{`return { name = "x", fields = { { config = { type = "record", fields = { { y = { type = "boolean", one_of = { true } } } } } } } }`,
			"plugin 'x' schema: field 'config.y': field of type 'boolean' cannot have attribute 'one_of'"},
		{`return { name = "x", fields = { { config = { type = "record", fields = { { y = { type = "array" } } } } } } }`,
			"plugin 'x' schema: field 'config.y': missing attribute elements"},
		{`local t = require "kong.db.schema.typedefs"; return t.nope`, "schema typedef error: definition nope does not exist"},
	}
	for _, tt := range tests {
		b, err := lua.NewBundle(map[string]string{"s": tt.src}, lua.GoModules(Modules()))
		if err != nil {
			t.Fatal(err)
		}
		vm, err := lua.NewVM(b, lua.PoolOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := vm.Require(context.Background(), "s")
		if err == nil {
			tbl, _ := v.(*glua.LTable)
			_, err = Load(vm, "x", tbl)
		}
		vm.Close()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("got %v, want %q", err, tt.want)
		}
	}
}

func TestDefineAndTypedefCall(t *testing.T) {
	src := `
local Schema = require "kong.db.schema"
local typedefs = require "kong.db.schema.typedefs"
local p = typedefs.port { default = 514 }
local d = Schema.define { type = "string", len_max = 3 }
local o = d { required = true }
return p.type .. " " .. p.default .. " " .. p.between[2] .. " " .. o.type .. " " .. o.len_max .. " " .. tostring(o.required)`
	b, err := lua.NewBundle(map[string]string{"s": src}, lua.GoModules(Modules()))
	if err != nil {
		t.Fatal(err)
	}
	vm, err := lua.NewVM(b, lua.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	v, err := vm.Require(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	if v.String() != "integer 514 65535 string 3 true" {
		t.Errorf("got %q", v.String())
	}
}

// TestPropagationTypedef validates a tracing plugin's propagation record
// shaped as zipkin's: the default filled, formats checked.
func TestPropagationTypedef(t *testing.T) {
	vm, s := loadSource(t, "tracer", []byte(`
local typedefs = require "kong.db.schema.typedefs"
return { name = "tracer", fields = { { config = { type = "record", fields = {
  { propagation = typedefs.propagation { default = { default_format = "b3" } } },
} } } } }`))
	tests := []struct{ config, filled, errs string }{
		{`{}`, `{"propagation":{"default_format":"b3"}}`, `null`},
		{`{"propagation": {"default_format": "w3c", "extract": ["b3", "datadog"], "inject": ["preserve", "b3-single"], "clear": ["x-trace"]}}`,
			`{"propagation":{"clear":["x-trace"],"default_format":"w3c","extract":["b3","datadog"],"inject":["preserve","b3-single"]}}`, `null`},
		{`{"propagation": {"default_format": "b3", "extract": ["b3-single"]}}`, `null`,
			`{"propagation":{"extract":{"1":"expected one of: b3, w3c, jaeger, ot, aws, datadog, gcp, instana"}}}`},
	}
	for _, tt := range tests {
		filled, errs := s.Validate(vm, decode(t, tt.config))
		var e any
		if len(errs) > 0 {
			e = errs
		}
		if js(filled) != tt.filled || js(e) != tt.errs {
			t.Errorf("%s: got %s / %s, want %s / %s", tt.config, js(filled), js(e), tt.filled, tt.errs)
		}
	}
}
