package runloop

import (
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	glua "github.com/yuin/gopher-lua"

	"github.com/gong-proxy/gong/lua"
	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
)

func TestCollectScopingAndOrder(t *testing.T) {
	ptr := func(s string) *string { return &s }
	plugin := func(name string, route, service *string, protocols ...string) *declarative.Plugin {
		if len(protocols) == 0 {
			protocols = []string{"tcp"}
		}
		return &declarative.Plugin{Name: name, Route: route, Service: service, Enabled: true, Protocols: protocols,
			Config: map[string]any{"scope": name + ":" + derefOr(route, "-") + ":" + derefOr(service, "-")}}
	}
	ps := &Plugins{priority: map[string]int{"a": 10, "b": 20, "c": 10, "d": 5}}
	plugins := []*declarative.Plugin{
		plugin("a", nil, nil),             // global
		plugin("a", nil, ptr("s1")),       // service
		plugin("a", ptr("r1"), nil),       // route
		plugin("a", ptr("r1"), ptr("s1")), // route + service: wins for r1/s1
		plugin("b", nil, ptr("s1")),
		plugin("c", nil, nil),
		plugin("d", nil, nil, "http"), // not a stream protocol
		{Name: "d", Enabled: false, Protocols: []string{"tcp"}},
		{Name: "d", Consumer: ptr("u1"), Enabled: true, Protocols: []string{"tcp"}}, // no consumer in stream
	}
	tests := []struct {
		route, service string
		want           string
	}{
		{"r1", "s1", "b:-:s1 c:-:- a:r1:s1"},
		{"r1", "s2", "c:-:- a:r1:-"},
		{"r2", "s1", "b:-:s1 c:-:- a:-:s1"},
		{"", "", "c:-:- a:-:-"},
	}
	for _, tt := range tests {
		var got []string
		for _, r := range ps.collect(plugins, tt.route, tt.service) {
			got = append(got, r.conf.cur.Load().conf["scope"].(string))
		}
		// b (20) first; a and c (10) by name descending: c before a.
		if strings.Join(got, " ") != tt.want {
			t.Errorf("collect(route %q, service %q) = %v; want %s", tt.route, tt.service, got, tt.want)
		}
	}
}

// TestConfTableKeptPerVM: a plugin instance's handlers get the same conf
// table on every call on a VM, as Kong's do; another instance gets its own.
func TestConfTableKeptPerVM(t *testing.T) {
	b, err := lua.NewBundle(nil)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := lua.NewVM(b, lua.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	r1 := pluginRun{name: "p", id: "id-1", conf: newHandlerConf(map[string]any{"k": "v"})}
	r2 := pluginRun{name: "p", id: "id-2", conf: newHandlerConf(map[string]any{"k": "v"})}
	first := confTable(vm, r1)
	if confTable(vm, r1) != first {
		t.Error("a second call made a new conf table")
	}
	if confTable(vm, r2) == first {
		t.Error("two instances share a conf table")
	}
}

// TestConfTableRefreshedInPlace: a replaced config (a rotated secret)
// reaches the same conf table, whose other fields, including those a
// handler wrote, are kept.
func TestConfTableRefreshedInPlace(t *testing.T) {
	b, err := lua.NewBundle(nil)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := lua.NewVM(b, lua.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	ps := &Plugins{handlerConfs: map[string]*handlerConf{"id-1": newHandlerConf(map[string]any{"token": "old", "n": 1.0})}}
	r := pluginRun{name: "p", id: "id-1", conf: ps.handlerConfs["id-1"]}
	first := confTable(vm, r).(*glua.LTable)
	first.RawSetString("cached", glua.LString("by the handler"))
	ps.SetHandlerConfig("id-1", map[string]any{"token": "new", "n": 1.0})
	ps.SetHandlerConfig("unknown", map[string]any{"token": "x"})
	got := confTable(vm, r).(*glua.LTable)
	if got != first {
		t.Fatal("a replaced config made a new conf table")
	}
	if v := got.RawGetString("token").String(); v != "new" {
		t.Errorf("token = %q after SetHandlerConfig; want new", v)
	}
	if v := got.RawGetString("cached").String(); v != "by the handler" {
		t.Errorf("a field the handler set was lost: %q", v)
	}
	got.RawSetString("token", glua.LString("written by the handler"))
	if v := confTable(vm, r).(*glua.LTable).RawGetString("token").String(); v != "written by the handler" {
		t.Errorf("the table was refreshed again without a new config: token = %q", v)
	}
}

// TestFailedPluginLoadLeavesNothing: a plugin set whose schema fails to
// load, as in a bad reload, closes what it had started (the VM pool's
// goroutine), so repeated bad reloads do not pile them up.
func TestFailedPluginLoadLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "kong", "plugins", "broken")
	if err := os.MkdirAll(plugin, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(plugin, "handler.lua"), []byte("return { PRIORITY = 1, VERSION = '1' }\n"), 0o644)
	os.WriteFile(filepath.Join(plugin, "schema.lua"), []byte("error('broken schema')\n"), 0o644)
	confPath := filepath.Join(dir, "kong.conf")
	os.WriteFile(confPath, []byte("prefix = "+dir+"\nplugins = broken\nlua_package_path = "+dir+"/?.lua\n"), 0o644)
	c, _, err := conf.Load(conf.Options{Path: confPath, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	before := goruntime.NumGoroutine()
	for range 20 {
		if _, err := Load(c, Host{}); err == nil || !strings.Contains(err.Error(), "broken schema") {
			t.Fatalf("loadPlugins = %v; want the schema's error", err)
		}
	}
	if after := goruntime.NumGoroutine(); after > before+2 {
		t.Errorf("%d goroutines after 20 failed loads, %d before", after, before)
	}
}
