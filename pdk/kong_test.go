package pdk

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	glua "github.com/yuin/gopher-lua"
)

// TestKongSurface checks the kong.* functions beyond client and log in
// each stream phase: result, or the error Kong raises.
func TestKongSurface(t *testing.T) {
	tests := []struct {
		name  string
		phase Phase
		code  string
		want  string // result, or "error: <substring>"
	}{
		{"table.new", PhasePreread, "local t = kong.table.new(4, 2); return type(t) .. #t", "table0"},
		{"table.clear", PhaseLog, "local t = {1, a = 2}; local same = t; kong.table.clear(t); return tostring(next(t)) .. tostring(same == t)", "niltrue"},
		{"table.merge", PhaseCertificate, "local m = kong.table.merge({a = 1, b = 1}, {b = 2}); return m.a .. m.b .. kong.table.merge(nil, {c = 3}).c", "123"},
		{"ip.is_trusted", PhasePreread, "return tostring(kong.ip.is_trusted('10.1.2.3')) .. tostring(kong.ip.is_trusted('192.0.2.1')) .. tostring(kong.ip.is_trusted('nope'))", "truefalsefalse"},
		{"plugin.get_id", PhasePreread, "return kong.plugin.get_id()", "5b3a4f52-0000-4000-8000-000000000001"},
		{"router.get_route in log", PhaseLog, "local r = kong.router.get_route(); return r.name .. tostring(r == kong.router.get_route()) .. kong.router.get_service().name", "r1trues1"},
		{"router.get_route in preread", PhasePreread, "kong.router.get_route()", "error: function cannot be called in preread phase (only in: access, response, header_filter, body_filter, log)"},
		{"node.get_hostname", PhaseLog, "return type(kong.node.get_hostname())", "string"},
		{"node.get_memory_stats", PhaseLog, "local s = kong.node.get_memory_stats(); return s.lua_shared_dicts.stream_kong.capacity .. ',' .. #s.workers_lua_vms", "1048576,0"},
		{"node.get_memory_stats unit", PhaseLog, "return kong.node.get_memory_stats('m', 1).lua_shared_dicts.stream_kong.capacity", "1.0 MiB"},
		{"node.get_memory_stats bad unit", PhaseLog, "kong.node.get_memory_stats('x')", "error: invalid unit 'x' (expected 'k/K', 'm/M', or 'g/G')"},
		{"request.get_port", PhaseCertificate, "return kong.request.get_port() + 1", "9001"},
		{"request.get_start_time in preread", PhasePreread, "kong.request.get_start_time()", "error: function cannot be called in preread phase"},
		{"request.get_start_time", PhaseLog, "return kong.request.get_start_time()", "1700000000000"},
		{"ngx.req.start_time", PhasePreread, "return ngx.req.start_time()", "1700000000"},
		{"response.get_status", PhaseLog, "return kong.response.get_status()", "403"},
		{"response.get_source", PhaseLog, "return kong.response.get_source() .. kong.response.get_source({KONG_PROXIED = true})", "errorservice"},
		{"response.get_source in preread", PhasePreread, "kong.response.get_source()", "error: function cannot be called in preread phase"},
		{"client.get_consumer", PhaseLog, "ngx.ctx.authenticated_consumer = {id = 'c'}; return kong.client.get_consumer().id .. tostring(kong.client.get_credential())", "cnil"},
		{"service.set_target", PhasePreread, "kong.service.set_target('example.test', 8080)", ""},
		{"service.set_target in log", PhaseLog, "kong.service.set_target('a', 1)", "error: function cannot be called in log phase (only in: rewrite, access, balancer, preread)"},
		{"service.set_target bad host", PhasePreread, "kong.service.set_target(1, 1)", "error: host must be a string"},
		{"service.set_target bad port", PhasePreread, "kong.service.set_target('a', 1.5)", "error: port must be an integer"},
		{"service.set_target port range", PhasePreread, "kong.service.set_target('a', 70000)", "error: port must be an integer between 0 and 65535: given 70000"},
		{"service.set_upstream", PhasePreread, "return tostring(kong.service.set_upstream('up'))", "true"},
		{"service.set_upstream unknown", PhasePreread, "local ok, err = kong.service.set_upstream('nope'); return tostring(ok) .. ' ' .. err", "nil could not find an Upstream named 'nope'"},
		{"service.set_tls_verify", PhasePreread, "return tostring(kong.service.set_tls_verify(true))", "true"},
		{"service.set_tls_verify bad", PhasePreread, "kong.service.set_tls_verify('yes')", "error: argument must be a boolean"},
		{"service.set_tls_verify_depth", PhasePreread, "return tostring(kong.service.set_tls_verify_depth(2))", "true"},
		{"service.set_tls_verify_depth bad", PhasePreread, "kong.service.set_tls_verify_depth('2')", "error: argument must be a number"},
		{"service.set_tls_cert_key bad chain", PhasePreread, "kong.service.set_tls_cert_key('pem', 'key')", "error: chain must be a parsed cdata object"},
		{"service.set_tls_cert_key in log", PhaseLog, "kong.service.set_tls_cert_key()", "error: function cannot be called in log phase (only in: rewrite, access, balancer, preread)"},
		{"service.set_tls_verify_store bad", PhasePreread, "kong.service.set_tls_verify_store({})", "error: argument must be a resty.openssl.x509.store object"},
		{"service.request.disable_tls", PhasePreread, "return tostring(kong.service.request.disable_tls())", "true"},
		{"service.response.get_status", PhaseLog, "return tostring(kong.service.response.get_status())", "nil"},
		{"ngx.status", PhaseLog, "return ngx.status", "403"},
		{"telemetry.log", PhaseLog, "local ok, err = kong.telemetry.log('p', {}, 'result'); return tostring(ok) .. ' ' .. err:sub(1, 29)", "nil Telemetry logging is disabled"},
		{"telemetry.log bad", PhaseLog, "local ok, err = kong.telemetry.log('p', 1, 'x'); return err", "plugin_config must be a table"},
		{"ngx.status write", PhaseLog, "ngx.status = 200", "error: ngx.status is read-only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.phase, Options{
				TrustedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")},
				Shared:     NewSharedDicts(map[string]int64{"stream_kong": 1 << 20}, nil),
			})
			e.st.PluginID = "5b3a4f52-0000-4000-8000-000000000001"
			e.sess.vars["server_port"] = "9000"
			e.sess.route = map[string]any{"name": "r1"}
			e.sess.service = map[string]any{"name": "s1"}
			e.sess.upstreams = []string{"up"}
			e.sess.status = 403
			e.sess.record = &LogRecord{StartedAt: 1700000000000}
			if want, isErr := strings.CutPrefix(tt.want, "error: "); isErr {
				wantLuaError(t, e.vm, tt.code, want)
				return
			}
			if got := runString(t, e.vm, tt.code); got != tt.want {
				t.Fatalf("%s = %q; want %q", tt.code, got, tt.want)
			}
		})
	}
}

// TestServiceChanges checks what the runtime reads after preread.
func TestServiceChanges(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	runLua(t, e.vm, "kong.service.set_target('10.0.0.9', 7000); kong.service.set_tls_verify(false); kong.service.set_tls_verify_depth(3)")
	ch := e.st.Upstream
	if ch.Host != "10.0.0.9" || ch.Port != 7000 || ch.TLSVerify == nil || *ch.TLSVerify || ch.TLSVerifyDepth == nil || *ch.TLSVerifyDepth != 3 {
		t.Fatalf("Upstream = %+v", ch)
	}
}

func TestIsTrustedAll(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{TrustedIPs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}})
	if got := runString(t, e.vm, "return tostring(kong.ip.is_trusted('anything'))"); got != "true" {
		t.Fatalf("is_trusted with everything trusted = %s", got)
	}
	e = newEnv(t, PhasePreread, Options{})
	if got := runString(t, e.vm, "return tostring(kong.ip.is_trusted('127.0.0.1'))"); got != "false" {
		t.Fatalf("is_trusted without trusted_ips = %s", got)
	}
}

// TestMemoryStatsLuaVMs: workers_lua_vms is the process's entry, with the
// memory Options.LuaVMsBytes reports in the unit asked.
func TestMemoryStatsLuaVMs(t *testing.T) {
	e := newEnv(t, PhaseLog, Options{LuaVMsBytes: func() uint64 { return 3 << 20 }})
	got := runString(t, e.vm, `local vms = kong.node.get_memory_stats("m").workers_lua_vms
		return #vms .. " " .. vms[1].pid .. " " .. vms[1].http_allocated_gc .. " " .. kong.node.get_memory_stats().workers_lua_vms[1].http_allocated_gc`)
	if want := fmt.Sprintf("1 %d 3.00 MiB %d", os.Getpid(), 3<<20); got != want {
		t.Fatalf("workers_lua_vms = %q; want %q", got, want)
	}
}

func TestLogDeprecation(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	runLua(t, e.vm, "kong.log.deprecation('old thing', {after = '3.0', removal = '4.0'})\nkong.log.deprecation.write('w')")
	want := []string{
		"[kong] handler:1 [my-plugin] old thing (deprecated after 3.0, scheduled for removal in 4.0)",
		"[kong] handler:2 [my-plugin] w",
	}
	if len(e.log.lines) != 2 || e.log.lines[0].line != want[0] || e.log.lines[1].line != want[1] || e.log.lines[0].level != LevelWarn {
		t.Fatalf("lines = %v; want %q at warn", e.log.lines, want)
	}
}

func TestCache(t *testing.T) {
	c := NewCache(0, 0, time.Second, nil)
	e1 := newEnv(t, PhasePreread, Options{Cache: c})
	e2 := newEnv(t, PhaseLog, Options{Cache: c})
	steps := []struct {
		e    *env
		code string
		want string
	}{
		{e1, "return tostring(kong.cache:probe('k'))", "nil"},
		{e1, "local v, err, hit = kong.cache:get('k', nil, function(a) return {n = a} end, 7); return v.n .. tostring(err) .. hit", "7nil3"},
		{e2, "local v, err, hit = kong.cache:get('k', nil, function() error('not called') end); return v.n .. hit", "71"},
		{e2, "local ttl, err, v = kong.cache:probe('k'); return ttl .. tostring(err) .. v.n", "0nil7"},
		{e1, "local v, err = kong.cache:get('boom', nil, function() error('bad') end); return tostring(v) .. ' ' .. err",
			"nil failed to get from node cache: callback threw an error: handler:1: bad"},
		{e1, "local v, err = kong.cache:get('e', nil, function() return nil, 'db down' end); return tostring(v) .. ' ' .. err",
			"nil failed to get from node cache: db down"},
		{e1, "local n = 0; local cb = function() n = n + 1 end; kong.cache:get('neg', nil, cb); kong.cache:get('neg', nil, cb); return n", "1"},
		{e1, "local n = 0; local cb = function() n = n + 1; return 1, nil, -1 end; kong.cache:get('nc', nil, cb); kong.cache:get('nc', nil, cb); return n", "2"},
		{e2, "kong.cache:invalidate('k'); return tostring(kong.cache:probe('k'))", "nil"},
		{e1, "local v, err, hit = kong.cache:get('k'); return tostring(v) .. tostring(err) .. hit", "nilnil-1"},
	}
	for _, s := range steps {
		if got := runString(t, s.e.vm, s.code); got != s.want {
			t.Errorf("%s = %q; want %q", s.code, got, s.want)
		}
	}
	wantLuaError(t, e1.vm, "kong.cache:get(1)", "key must be a string")
	wantLuaError(t, e1.vm, "kong.cache:get('k', nil, 'cb')", "callback must be a function")
}

// TestPhaseContracts calls every registered kong.* function in each
// stream phase: where its contract refuses the phase, the call raises
// Kong's phase error; elsewhere it raises no phase error (it may still
// reject the missing arguments).
func TestPhaseContracts(t *testing.T) {
	for _, phase := range []Phase{PhaseCertificate, PhasePreread, PhaseLog} {
		e := newEnv(t, phase, Options{Shared: NewSharedDicts(nil, nil)})
		for _, ns := range (&pdk{}).namespaces() {
			for _, f := range ns.funcs {
				name := "kong." + ns.name + "." + f.Name
				_, err := callLua(t, e.vm, "return "+name+"()")
				allowed := f.Check.set == 0 || f.Check.set.Has(phase) != f.Check.except
				phaseErr := err != nil && strings.Contains(err.Error(), "function cannot be called in "+phase.String()+" phase")
				if allowed && phaseErr {
					t.Errorf("%s in %s: %v; want no phase error", name, phase, err)
				}
				if !allowed && !phaseErr {
					t.Errorf("%s in %s: %v; want the phase error", name, phase, err)
				}
			}
		}
	}
}

// TestExitInCertificate: ngx.exit records its code in the certificate
// phase (the runtime aborts the handshake unless it is ngx.OK), and
// kong.response.exit, which must send a body, is refused there.
func TestExitInCertificate(t *testing.T) {
	e := newEnv(t, PhaseCertificate, Options{})
	callLua(t, e.vm, "ngx.exit(ngx.ERROR)") // yields: the test calls outside a coroutine
	if len(e.sess.exits) != 1 || e.sess.exits[0].status != 500 {
		t.Fatalf("exits = %v; want one with status 500", e.sess.exits)
	}
	wantLuaError(t, e.vm, "kong.response.exit(200)", "API disabled in the context of ssl_certificate_by_lua*")
}

func TestNginxGetStatistics(t *testing.T) {
	e := newEnv(t, PhaseLog, Options{Statistics: func() Statistics { return Statistics{Active: 3, Accepted: 10} }})
	got := runString(t, e.vm, "local s = kong.nginx.get_statistics(); return s.connections_active .. s.connections_accepted .. s.connections_handled .. s.total_requests")
	if got != "310100" {
		t.Fatalf("statistics = %q; want active 3, accepted and handled 10, requests 0", got)
	}
}

func TestVault(t *testing.T) {
	t.Setenv("GONG_TEST_SECRET", "s3cret")
	t.Setenv("APP_CREDS", `{"user": "u1"}`)
	e := newEnv(t, PhasePreread, Options{})
	tests := []struct{ code, want string }{
		{"return tostring(kong.vault.is_reference('{vault://env/x}')) .. tostring(kong.vault.is_reference('vault://env/x'))", "truefalse"},
		{"local r = kong.vault.parse_reference('{vault://env/app/creds/user?prefix=x#3}'); return r.name .. r.resource .. r.key .. r.config.prefix .. r.version", "envapp/credsuserx3"},
		{"local r, err = kong.vault.parse_reference('nope'); return tostring(r) .. ' ' .. err", "nil not a reference [nope]"},
		{"return kong.vault.get('{vault://env/gong-test-secret}')", "s3cret"},
		{"return kong.vault.get('{vault://env/creds/user?prefix=app_}')", "u1"},
		{"local v, err = kong.vault.get('{vault://env/gong-absent}'); return tostring(v) .. ' ' .. err",
			"nil could not get value from external vault (no value found (gong-absent)) [{vault://env/gong-absent}]"},
		{"local v, err = kong.vault.get('{vault://aws/x}'); return err", "vault not found (aws) [{vault://aws/x}]"},
		{"return kong.vault.try(function(o) return o.a, 2 end, {a = 1})", "1"},
	}
	checkLua(t, e.vm, tests)
}

// TestCacheConcurrentMiss: while one VM's callback fills a key, a second
// VM missing the same key waits and gets that value; its own callback
// never runs.
func TestCacheConcurrentMiss(t *testing.T) {
	c := NewCache(0, 0, 0, nil)
	e1 := newEnv(t, PhasePreread, Options{Cache: c})
	e2 := newEnv(t, PhasePreread, Options{Cache: c})
	release := make(chan struct{})
	e1.vm.L.SetGlobal("block", e1.vm.L.NewFunction(func(*glua.LState) int { <-release; return 0 }))
	first := make(chan string)
	go func() {
		res, err := callLua(t, e1.vm, "return (kong.cache:get('k', nil, function() block(); return 'filled' end))")
		if err != nil {
			first <- err.Error()
			return
		}
		first <- res[0].String()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		_, busy := c.inflight["k"]
		c.mu.Unlock()
		if busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first callback never started")
		}
		time.Sleep(time.Millisecond)
	}
	second := make(chan string)
	go func() {
		res, err := callLua(t, e2.vm, "local v, err, hit = kong.cache:get('k', nil, function() return 'second' end); return v .. hit")
		if err != nil {
			second <- err.Error()
			return
		}
		second <- res[0].String()
	}()
	close(release)
	if got := <-first; got != "filled" {
		t.Errorf("first get = %q", got)
	}
	if got := <-second; got != "filled1" {
		t.Errorf("second get = %q; want the first callback's value from the cache", got)
	}
}
