package pdk

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	glua "github.com/yuin/gopher-lua"
)

var update = flag.Bool("update", false, "rewrite testdata/surface.golden")

func TestPhaseCheck(t *testing.T) {
	tests := []struct {
		name  string
		phase Phase
		code  string
		want  string
	}{
		{"serialize in preread", PhasePreread, "kong.log.serialize()",
			"handler:1: function cannot be called in preread phase (only in: log)"},
		{"get_ip in init_worker", PhaseInitWorker, "kong.client.get_ip()",
			"function cannot be called in init_worker phase (can be called in any phases except: init_worker)"},
		{"set_serialize_value in certificate", PhaseCertificate, "kong.log.set_serialize_value('a', 1)",
			"function cannot be called in certificate phase (only in: rewrite, access, response, header_filter, body_filter, log)"},
		{"get_protocol in preread", PhasePreread, "kong.client.get_protocol()",
			"function cannot be called in preread phase (only in: access, response, header_filter, body_filter, log)"},
		{"no phase", 0, "kong.log.serialize()", "no phase in ngx.ctx.KONG_PHASE, (need one of log)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.phase, Options{})
			if tt.phase == 0 {
				e.b.State = nil
			}
			wantLuaError(t, e.vm, tt.code, tt.want)
		})
	}
}

func TestPhaseSetNames(t *testing.T) {
	s := Phases(PhaseLog, PhaseInitWorker, PhasePreread)
	if got := s.String(); got != "init_worker, log, preread" {
		t.Fatalf("String() = %q; want %q", got, "init_worker, log, preread")
	}
	if Phase(3).String() != "'unknown phase'" {
		t.Fatalf("Phase(3).String() = %q", Phase(3).String())
	}
}

func TestClient(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
		code string
		want string
	}{
		{"ip direct peer", map[string]string{"remote_addr": "10.0.0.1", "realip_remote_addr": "192.0.2.9"},
			"return kong.client.get_ip()", "192.0.2.9"},
		{"ip without realip", map[string]string{"remote_addr": "10.0.0.1"}, "return kong.client.get_ip()", "10.0.0.1"},
		{"ip plain behind a trusted proxy", map[string]string{"remote_addr": "10.0.0.1", "realip_remote_addr": "192.0.2.9"},
			"return kong.client.get_ip()", "192.0.2.9"},
		{"ip tls terminated", map[string]string{"remote_addr": "10.0.0.1", "realip_remote_addr": "unix:", "ssl_protocol": "TLSv1.3"},
			"return kong.client.get_ip()", "10.0.0.1"},
		{"ip passthrough", map[string]string{"remote_addr": "10.0.0.1", "realip_remote_addr": "unix:", "kong_tls_passthrough_block": "1"},
			"return kong.client.get_ip()", "10.0.0.1"},
		{"forwarded ip", map[string]string{"remote_addr": "10.0.0.1", "realip_remote_addr": "192.0.2.9"},
			"return kong.client.get_forwarded_ip()", "10.0.0.1"},
		{"port", map[string]string{"remote_port": "4000", "realip_remote_port": "5000"},
			"local p = kong.client.get_port(); return type(p) .. p", "number5000"},
		{"forwarded port", map[string]string{"remote_port": "4000", "realip_remote_port": "5000"},
			"return kong.client.get_forwarded_port()", "4000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, PhasePreread, Options{})
			e.sess.vars = tt.vars
			if got := runString(t, e.vm, tt.code); got != tt.want {
				t.Fatalf("%s = %q; want %q", tt.code, got, tt.want)
			}
		})
	}
}

func TestClientGetProtocol(t *testing.T) {
	e := newEnv(t, PhaseLog, Options{})
	if got := runString(t, e.vm, "local p, err = kong.client.get_protocol(); return tostring(p) .. ',' .. err"); got != "nil,No active route found" {
		t.Fatalf("get_protocol() = %q", got)
	}
	e.sess.protocol = "tls"
	if got := runString(t, e.vm, "return kong.client.get_protocol()"); got != "tls" {
		t.Fatalf("get_protocol() = %q; want tls", got)
	}
}

func TestLog(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{LogLevel: LevelInfo})
	runLua(t, e.vm, "kong.log.err('boom ', 1.5, ' ', true)\nkong.log.debug('hidden')\nkong.log('called')\nkong.log.inspect({a = 1, 'x'}, 'y')")
	want := []logLine{
		{LevelErr, "[kong] handler:1 [my-plugin] boom 1.5 true"},
		{LevelNotice, "[kong] handler:3 [my-plugin] called"},
		{LevelNotice, `[kong] handler:4 [my-plugin] { "x", a = 1 } "y"`},
	}
	if fmt.Sprint(e.log.lines) != fmt.Sprint(want) {
		t.Fatalf("lines = %v; want %v", e.log.lines, want)
	}
	e.log.lines = nil
	e.st.Plugin = ""
	runLua(t, e.vm, "kong.log.inspect.off(); kong.log.inspect('x'); kong.log.warn('core')")
	if len(e.log.lines) != 1 || e.log.lines[0].line != "[kong] handler:1 core" {
		t.Fatalf("lines = %v; want one core warn line", e.log.lines)
	}
}

func TestLogLevelFromConfiguration(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{Configuration: Configuration{"log_level": "err"}})
	runLua(t, e.vm, "kong.log.warn('dropped'); kong.log.crit('kept'); ngx.log(ngx.WARN, 'dropped'); ngx.log(ngx.ERR, 'n=', 2, ' ', nil, ' ', ngx.null)")
	want := []logLine{{LevelCrit, "[kong] handler:1 [my-plugin] kept"}, {LevelErr, "[lua] handler:1: n=2 nil null"}}
	if fmt.Sprint(e.log.lines) != fmt.Sprint(want) {
		t.Fatalf("lines = %v; want %v", e.log.lines, want)
	}
}

// TestPrint checks print goes to the error log at notice level, as
// OpenResty's does, with the calling function's name.
func TestPrint(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	runLua(t, e.vm, "local function greet() print('hi ', 1.5, ' ', true) end\ngreet()")
	want := []logLine{{LevelNotice, "[lua] handler:1: greet(): hi 1.5 true"}}
	if fmt.Sprint(e.log.lines) != fmt.Sprint(want) {
		t.Fatalf("lines = %v; want %v", e.log.lines, want)
	}
	wantLuaError(t, e.vm, "print({})", "bad argument #1 to 'log' (expected table to have __tostring metamethod)")
}

func TestStateLoggerWins(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	own := &fakeLogger{}
	e.st.Log = own
	runLua(t, e.vm, "kong.log.err('x')")
	if len(own.lines) != 1 || len(e.log.lines) != 0 {
		t.Fatalf("state logger got %d lines, default %d; want 1, 0", len(own.lines), len(e.log.lines))
	}
}

func TestSerialize(t *testing.T) {
	e := newEnv(t, PhaseLog, Options{})
	e.sess.record = &LogRecord{Status: 200, Received: 5, ClientIP: "127.0.0.1", Tries: []BalancerTry{}}
	got := runString(t, e.vm, `
		kong.log.set_serialize_value("my.new\\.value", 4)
		kong.log.set_serialize_value("session.status", 500, {mode = "add"})
		kong.log.set_serialize_value("session.tls", 7, {mode = "replace"})
		kong.log.set_serialize_value("session.received", 9, {mode = "replace"})
		kong.log.set_serialize_value("missing.path", 1, {mode = "replace"})
		local r = kong.log.serialize()
		local cjson = require "cjson"
		return table.concat({r.client_ip, r.session.status, tostring(r.session.tls), r.session.received,
			r.my["new.value"], tostring(r.missing), cjson.encode(r.tries)}, ",")`)
	if want := "127.0.0.1,200,nil,9,4,nil,[]"; got != want {
		t.Fatalf("serialize = %q; want %q", got, want)
	}
}

func TestSetSerializeValueErrors(t *testing.T) {
	e := newEnv(t, PhaseLog, Options{})
	e.sess.record = &LogRecord{ClientIP: "127.0.0.1"}
	wantLuaError(t, e.vm, "kong.log.set_serialize_value(1, 1)", "key must be a string")
	wantLuaError(t, e.vm, "kong.log.set_serialize_value('a', 1, {mode = 'x'})", "mode must be 'set', 'add' or 'replace'")
	wantLuaError(t, e.vm, "kong.log.set_serialize_value('client_ip.x', 1); kong.log.serialize()",
		"The key 'client_ip.x' could not be used as a serialize value. Subkey 'client_ip' is not a table. It's 127.0.0.1")
	e.st.serializeValues = nil
	wantLuaError(t, e.vm, "kong.log.set_serialize_value('f', print); kong.log.serialize()", "value must be nil, a number, string, boolean")
}

func TestCtxPersists(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	if !e.st.CtxEmpty() {
		t.Fatal("CtxEmpty() = false on a new State")
	}
	runLua(t, e.vm, "kong.ctx.shared.a = 1; kong.ctx.plugin.b = 2; ngx.ctx.c = 3")
	if e.st.CtxEmpty() {
		t.Fatal("CtxEmpty() = true after writes")
	}
	e.st.Phase = PhaseLog
	if got := runString(t, e.vm, "return kong.ctx.shared.a .. kong.ctx.plugin.b .. ngx.ctx.c"); got != "123" {
		t.Fatalf("ctx in log = %q; want 123", got)
	}
	e.st.Plugin = "other"
	if got := runString(t, e.vm, "return tostring(kong.ctx.plugin.b) .. kong.ctx.shared.a"); got != "nil1" {
		t.Fatalf("other plugin ctx = %q; want nil1", got)
	}
	e.b.State = nil
	if got := runString(t, e.vm, "return tostring(kong.ctx.shared) .. tostring(ngx.ctx)"); got != "nilnil" {
		t.Fatalf("unbound ctx = %q; want nilnil", got)
	}
	empty := &State{Phase: PhasePreread}
	e.b.State = empty
	runLua(t, e.vm, "local _ = kong.ctx.shared, kong.ctx.plugin, ngx.ctx")
	if !empty.CtxEmpty() {
		t.Fatal("CtxEmpty() = false after reads only")
	}
}

// TestBalancerDataKeepsNoVM: ngx.ctx.balancer_data alone does not keep a
// connection on its VM, a value a plugin left beside it does, and in log
// the table is updated in place, with its tries as serialize's.
func TestBalancerDataKeepsNoVM(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	e.st.SetBalancerData(e.vm.L, BalancerData{Host: "pool"})
	if got := runString(t, e.vm, "return ngx.ctx.balancer_data.host .. #ngx.ctx.balancer_data.tries"); got != "pool0" {
		t.Fatalf("balancer_data in preread = %q; want pool0", got)
	}
	runLua(t, e.vm, "kong.service.set_target('example.test', 8000)")
	if got := runString(t, e.vm, "return ngx.ctx.balancer_data.host .. ngx.ctx.balancer_data.port"); got != "example.test8000" {
		t.Fatalf("balancer_data after set_target = %q; want example.test8000", got)
	}
	e.st.DropBalancerData()
	if !e.st.CtxEmpty() {
		t.Fatal("CtxEmpty() = false with only balancer_data set")
	}

	e.st.SetBalancerData(e.vm.L, BalancerData{Host: "pool"})
	runLua(t, e.vm, "kong.ctx.shared.bd = ngx.ctx.balancer_data")
	e.st.DropBalancerData()
	if e.st.CtxEmpty() {
		t.Fatal("CtxEmpty() = true with a plugin value beside balancer_data")
	}
	e.st.Phase = PhaseLog
	e.st.SetBalancerData(e.vm.L, BalancerData{Host: "pool", Tries: []BalancerTry{{IP: "127.0.0.1", Port: 9000}}})
	got := runString(t, e.vm, `local bd = ngx.ctx.balancer_data
		return tostring(bd == kong.ctx.shared.bd) .. bd.try_count .. bd.tries[1].port .. tostring(kong.log.serialize().tries == bd.tries)`)
	if got != "true19000true" {
		t.Fatalf("balancer_data in log = %q; want the same table with the try, and serialize's tries the same", got)
	}
}

func TestResponseExit(t *testing.T) {
	tests := []struct {
		name     string
		code     string
		want     fakeExit
		wantLog  string
		yielded  bool
		wantFail string
	}{
		{name: "string body sent", code: "return kong.response.exit(200, 'hi')", want: fakeExit{200, []byte("hi")}},
		{name: "table body json", code: "return kong.response.exit(200, {a = '/'})", want: fakeExit{200, []byte(`{"a":"\/"}`)}},
		{name: "error body logged", code: "return kong.response.exit(403, 'no')", want: fakeExit{403, nil},
			wantLog: "[kong] handler:1 [my-plugin] unable to proxy stream connection, status: 403, err: no"},
		{name: "no body", code: "kong.response.exit(503); error('not reached')", want: fakeExit{503, nil}},
		{name: "nested call yields", code: "local function f() return kong.response.exit(200) end f(); error('not reached')", want: fakeExit{200, nil}},
		{name: "ngx.exit", code: "ngx.exit(400); error('not reached')", want: fakeExit{400, nil}},
		{name: "bad code", code: "kong.response.exit(404)", wantFail: "unacceptable code, only 200, 400, 403, 500, 502 and 503 are accepted"},
		{name: "code type", code: "kong.response.exit('200')", wantFail: "code must be a number"},
		{name: "body type", code: "kong.response.exit(200, true)", wantFail: "body must be a nil, string or table"},
		{name: "body encode", code: "kong.response.exit(200, {f = print})", wantFail: "invalid body: Cannot serialise function: type not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, PhasePreread, Options{})
			fn, err := e.vm.L.Load(strings.NewReader(tt.code), "handler")
			if err != nil {
				t.Fatal(err)
			}
			yielded, _, err := e.vm.Run(t.Context(), fn)
			if tt.wantFail != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantFail) {
					t.Fatalf("Run(%q) err = %v; want %q", tt.code, err, tt.wantFail)
				}
				return
			}
			// Run reports the yield also for a Go function in tail-call
			// position ("return kong.response.exit(...)"): the handler is
			// not the coroutine's first function (lua.VM.Run's run loop).
			if err != nil || !yielded {
				t.Fatalf("Run(%q) = %v, %v", tt.code, yielded, err)
			}
			if len(e.sess.exits) != 1 || e.sess.exits[0].status != tt.want.status || !bytes.Equal(e.sess.exits[0].body, tt.want.body) {
				t.Fatalf("exits = %v; want %v", e.sess.exits, tt.want)
			}
			if tt.wantLog != "" && (len(e.log.lines) != 1 || e.log.lines[0].line != tt.wantLog) {
				t.Fatalf("log = %v; want %q", e.log.lines, tt.wantLog)
			}
		})
	}
}

func TestResponseExitInLog(t *testing.T) {
	e := newEnv(t, PhaseLog, Options{})
	wantLuaError(t, e.vm, "kong.response.exit(200)", "API disabled in the context of log_by_lua*")
}

func TestConfiguration(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{Configuration: Configuration{
		"role": "traditional", "pg_password": "secret", "trusted_ips": []string{"0.0.0.0/0"}, "node_id": "abc",
	}, Sensitive: func(k string) bool { return k == "pg_password" }})
	got := runString(t, e.vm, `local c = kong.configuration
		local r = c.remove_sensitive()
		return table.concat({c.role, c.pg_password, r.pg_password, c.trusted_ips[1], kong.node.get_id(),
			kong.version, kong.version_num, kong.nginx.get_subsystem()}, ",")`)
	if want := "traditional,secret,******,0.0.0.0/0,abc,3.10.0,30010000,stream"; got != want {
		t.Fatalf("configuration = %q; want %q", got, want)
	}
	wantLuaError(t, e.vm, "kong.configuration.role = 'x'", "cannot write to configuration")
}

func TestVersionNum(t *testing.T) {
	for v, want := range map[string]float64{"3.10.0": 30010000, "3.9.1": 3009001} {
		if got := versionNum(v); got != want {
			t.Errorf("versionNum(%q) = %v; want %v", v, got, want)
		}
	}
}

func TestNgx(t *testing.T) {
	now := time.Date(2024, 7, 1, 12, 30, 45, 123456789, time.UTC)
	e := newEnv(t, PhasePreread, Options{Now: func() time.Time { return now }})
	e.sess.vars = map[string]string{"server_port": "19000"}
	tests := []struct{ code, want string }{
		{"return ngx.var.server_port", "19000"},
		{"return ngx.var.SERVER_PORT", "19000"},
		{"return tostring(ngx.var.nope)", "nil"},
		{"return ngx.now()", "1719837045.123"},
		{"return ngx.time()", "1719837045"},
		{"return ngx.utctime()", "2024-07-01 12:30:45"},
		{"return ngx.config.subsystem", "stream"},
		{"return ngx.get_phase()", "preread"},
		{"return ngx.ERR .. ngx.DEBUG .. ngx.OK .. ngx.ERROR", "480-1"},
		{"return tostring(ngx.null == require('cjson').null)", "true"},
	}
	checkLua(t, e.vm, tests)
	wantLuaError(t, e.vm, "ngx.var.server_port = '1'", `variable "server_port" not found for writing`)
	e.b.State = nil
	wantLuaError(t, e.vm, "return ngx.var.server_port", "no request found")
	if got := runString(t, e.vm, "return ngx.get_phase()"); got != "init" {
		t.Errorf("get_phase() unbound = %q; want init", got)
	}
}

func TestNgxNowAdvances(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	got := runString(t, e.vm, "local a = ngx.now(); local b = ngx.now(); return tostring(b >= a and math.abs(a - os.time()) < 2)")
	if got != "true" {
		t.Fatalf("ngx.now() monotonic and near os.time() = %s", got)
	}
}

// surface lists every kong.* name: the registered functions in Kong's
// order with their phase contract, then the other fields.
func surface(t *testing.T, e *env) string {
	var b strings.Builder
	p := &pdk{}
	seen := map[string]bool{}
	for _, ns := range p.namespaces() {
		seen["kong."+ns.name] = true
		for _, f := range ns.funcs {
			name := "kong." + ns.name + "." + f.Name
			seen[name] = true
			fmt.Fprintf(&b, "%-36s %s\n", name, f.Check)
		}
	}
	var others []string
	kong := e.vm.L.GetGlobal("kong").(*glua.LTable)
	kong.ForEach(func(k, v glua.LValue) {
		name := "kong." + k.String()
		if t, ok := v.(*glua.LTable); ok && k.String() != "configuration" && k.String() != "ctx" {
			t.ForEach(func(k2, _ glua.LValue) {
				if n := name + "." + k2.String(); !seen[n] {
					others = append(others, n)
				}
			})
			return
		}
		others = append(others, name)
	})
	others = append(others, "kong.ctx.shared", "kong.ctx.plugin")
	sort.Strings(others)
	for _, n := range others {
		fmt.Fprintf(&b, "%-36s %s\n", n, "any")
	}
	// ngx.* has no phase checks of Kong's; ctx and status are read
	// through ngx's metatable, the dictionaries' methods through theirs.
	ngxNames := []string{"ngx.ctx", "ngx.status"}
	for name := range shdictMethods {
		ngxNames = append(ngxNames, "ngx.shared.DICT:"+name)
	}
	ngx := e.vm.L.GetGlobal("ngx").(*glua.LTable)
	ngx.ForEach(func(k, v glua.LValue) {
		name := "ngx." + k.String()
		if t, ok := v.(*glua.LTable); ok && k.String() != "shared" {
			t.ForEach(func(k2, _ glua.LValue) { ngxNames = append(ngxNames, name+"."+k2.String()) })
			if k.String() != "var" {
				return
			}
		}
		ngxNames = append(ngxNames, name)
	})
	sort.Strings(ngxNames)
	for _, n := range ngxNames {
		fmt.Fprintf(&b, "%s\n", n)
	}
	return b.String()
}

func TestSurfaceGolden(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	got := surface(t, e)
	path := filepath.Join("testdata", "surface.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Fatalf("surface differs from %s (run with -update and review):\n%s", path, got)
	}
}

func TestIPMatcher(t *testing.T) {
	L := glua.NewState()
	defer L.Close()
	L.PreloadModule("resty.ipmatcher", openIPMatcher)
	err := L.DoString(`
		local ipmatcher = require "resty.ipmatcher"
		local m = assert(ipmatcher.new({ "10.0.0.0/8", "192.168.1.1", "2001:db8::/32" }))
		assert(m:match("10.1.2.3") == true, "cidr v4")
		assert(m:match("192.168.1.1") == true, "single ip")
		assert(m:match("192.168.1.2") == false, "outside")
		assert(m:match("2001:db8::5") == true, "cidr v6")
		local ok, err = m:match("nope")
		assert(ok == false and err == "invalid ip address: nope", "bad address")
		local bad, err2 = ipmatcher.new({ "10.0.0.0/8", "x.y" })
		assert(bad == nil and err2 == "invalid ip address: x.y", "bad list")
	`)
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkLogSerialize builds a stream log record as a log plugin does
// on every connection, with one set_serialize_value entry.
func BenchmarkLogSerialize(b *testing.B) {
	vm := newVM(b, nil)
	bind := &Binding{}
	Open(vm.L, bind, Options{})
	sess := &fakeSession{record: &LogRecord{
		Received: 64, Sent: 64, Status: 200, ServerPort: 9000,
		UpstreamReceived: 64, UpstreamSent: 64,
		SessionLatency: 3,
		ClientIP:       "127.0.0.1",
		StartedAt:      1700000000000,
		Tries:          []BalancerTry{{IP: "127.0.0.1", Port: 7000}},
		Route:          map[string]any{"id": "r", "name": "r", "protocols": []any{"tcp"}, "destinations": []any{map[string]any{"port": 9000}}},
		Service:        map[string]any{"id": "s", "name": "s", "host": "127.0.0.1", "port": 7000, "protocol": "tcp"},
	}}
	fn, err := vm.L.Load(strings.NewReader("kong.log.set_serialize_value('tag', 'x'); return kong.log.serialize()"), "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		bind.State = &State{Phase: PhaseLog, Session: sess}
		if _, err := vm.Call(context.Background(), fn); err != nil {
			b.Fatal(err)
		}
	}
}
