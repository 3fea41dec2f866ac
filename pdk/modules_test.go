package pdk

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestModules(t *testing.T) {
	e := newLibEnv(t, PhasePreread, Options{})
	tests := []struct{ code, want string }{
		{`return require("resty.string").to_hex("\1\171")`, "01ab"},
		{`return #require("resty.random").bytes(16)`, "16"},
		{`local r = require("kong.tools.rand"); return #r.get_rand_bytes(8) .. " " .. tostring(r.random_string():match("^%w+$") ~= nil) .. #r.random_string()`, "8 true32"},
		{`local u = require("kong.tools.uuid"); local id = u.uuid(); return tostring(u.is_valid_uuid(id)) .. id:sub(15, 15) .. tostring(u.is_valid_uuid("nope"))`, "true4false"},
		{`local lru = require("resty.lrucache"); local c = lru.new(2); local k = {}
		  c:set("a", 1); c:set(k, "tbl"); c:get("a"); c:set("b", 2)
		  return tostring(c:get(k)) .. c:get("a") .. c:get("b") .. c:count() .. c:capacity()`, "nil1222"},
		{`local c = require("resty.lrucache").new(4); c:set("x", 1, 1e-9, 9)
		  local v, stale, flags = c:get("x"); return tostring(v) .. stale .. flags .. tostring(c:delete("x")) .. tostring(c:delete("x"))`, "nil19truefalse"},
		{`local ok, err = require("resty.lrucache").new(0); return tostring(ok) .. err`, "nilsize too small"},
		{`local ip = require("kong.tools.ip"); return tostring(ip.is_valid_ip("::1")) .. tostring(ip.is_valid_cidr("10.0.0.0/8")) .. tostring(ip.is_valid_ipv4("::1")) .. ip.hostname_type("example.com") .. ip.hostname_type("[::1]:80")`, "truetruefalsenameipv6"},
		{`local n = require("kong.tools.ip").normalize_ip("[::1]:8080"); return n.type .. n.host .. n.port .. require("kong.tools.ip").format_host("::1", 80)`, "ipv6::18080[::1]:80"},
		{`local s = require("kong.tools.string"); local t, n = s.splitn("a.b.c", ".", 2); return t[1] .. "|" .. t[2] .. n .. s.strip("  x ") .. s.replace_dashes("a-b") .. s.bytes_to_str(1536, "k")`, "a|b.c2xa_b1.50 KiB"},
		{`local s = require("kong.tools.string"); return table.concat(s.split("a b  c"), ",") .. tostring(s.validate_utf8("\255"))`, "a,b,cfalse"},
		{`local t = require("kong.tools.table"); local c = t.deep_copy({a = {b = 1}}); return c.a.b .. tostring(t.is_array({1, 2})) .. tostring(t.is_array({a = 1})) .. #t.concat({1}, {2, 3}) .. t.table_path({a = {b = "x"}}, {"a", "b"})`, "1truefalse3x"},
		{`return require("kong.tools.utils").uuid ~= nil and require("kong.tools.utils").split_once("a:b", ":")`, "a"},
		{`local m = require("kong.meta"); return m.version .. m._VERSION_TABLE.minor .. m._SERVER_TOKENS`, "3.10.010kong/3.10.0"},
		{`local c = require("kong.constants"); return tostring(c.BUNDLED_PLUGINS["pre-function"]) .. c.PROTOCOLS_WITH_SUBSYSTEM.tls .. c.LOG_LEVELS[ngx.ERR] .. c.CJSON_MAX_PRECISION`, "truestreamerror16"},
		{`local m = assert(require("resty.ipmatcher").new({"10.0.0.0/8", "::1"}))
		  local bad, err = m:match_bin("\1\2\3")
		  return tostring(m:match_bin("\10\1\2\3")) .. tostring(m:match_bin("\11\1\2\3")) ..
		    tostring(m:match_bin(("\0"):rep(15) .. "\1")) .. tostring(bad) .. " " .. err`, "truefalsetruefalse invalid binary ip address"},
		{`local s = require("kong.tools.string"); local ok, err = pcall(s.bytes_to_str, 1, "x")
		  return s.bytes_to_str(1536) .. "," .. s.bytes_to_str(3 * 2^20, "M", 0) .. "," .. err`, "1536,3 MiB,handler:1: invalid unit 'x' (expected 'k/K', 'm/M', or 'g/G')"},
		{`local p = require("kong.observability.tracing.propagation")
		  return p.get_plugin_params({propagation = {default_format = "w3c"}}).default_format .. tostring(p.extract(p.get_plugin_params({})))`, "w3cnil"},
		{`local ws = require("kong.workspaces"); return ws.get_workspace_name() .. " " .. ws.get_workspace_id()`, "default 0dc6f45b-8f8d-40d2-a504-473544ee190b"},
	}
	for _, tt := range tests {
		if got := runString(t, e.vm, tt.code); got != tt.want {
			t.Errorf("%s\n got %q\nwant %q", tt.code, got, tt.want)
		}
	}
}

// TestSandbox runs untrusted code under each untrusted_lua mode.
func TestSandbox(t *testing.T) {
	tests := []struct {
		name string
		conf Configuration
		code string
		want string // result, or "error: <substring>"
	}{
		{"sandbox default", nil, `return require("kong.tools.sandbox").sandbox("return type(os.execute), type(io.open), type(string.dump), type(os.time), math.max(1, 2)")()`, "nil"},
		{"sandbox reaches kong and ngx", nil, `return require("kong.tools.sandbox").sandbox("return kong.version .. ngx.config.subsystem")()`, "3.10.0stream"},

		{"sandbox globals private", nil, `require("kong.tools.sandbox").sandbox("x_leak = 1")(); return tostring(x_leak)`, "nil"},
		{"sandbox require denied", nil, `require("kong.tools.sandbox").sandbox("return require('cjson')")()`, "error: require 'cjson' not allowed within sandbox"},
		{"sandbox require allowed", Configuration{"untrusted_lua_sandbox_requires": "cjson, resty.string"},
			`return require("kong.tools.sandbox").sandbox("return require('cjson').encode({1})")()`, "[1]"},
		{"sandbox environment", Configuration{"untrusted_lua_sandbox_environment": "os.getenv"},
			`return require("kong.tools.sandbox").sandbox("return type(os.getenv) .. type(os.execute)")()`, "functionnil"},
		{"sandbox env argument", nil, `return require("kong.tools.sandbox").sandbox("return greeting", {env = {greeting = "hi"}})()`, "hi"},
		{"sandbox syntax error", nil, `require("kong.tools.sandbox").sandbox("return +")`, "error: syntax error"},
		{"on reads globals", Configuration{"untrusted_lua": "on"}, `return require("kong.tools.sandbox").sandbox("y_private = 1; return type(os.execute)")() .. tostring(y_private)`, "functionnil"},
		{"off refuses", Configuration{"untrusted_lua": "off"}, `require("kong.tools.sandbox").sandbox("return 1")`,
			"error: loading of untrusted Lua code disabled because 'untrusted_lua' config option is set to 'off'"},
		{"validate_function", nil, `local fn = require("kong.tools.sandbox").validate_function("return function() return 7 end"); return fn()`, "7"},
		{"validate_function not a function", nil, `local ok, err = require("kong.tools.sandbox").validate_function("return 1"); return tostring(ok) .. " " .. err`,
			"false Bad return value from function, expected function type, got number"},
		{"validate_safe does not run", nil, `return tostring(require("kong.tools.sandbox").validate_safe("error('ran')"))`, "true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLibEnv(t, PhaseLog, Options{Configuration: tt.conf})
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

// TestFFIAppend appends to a file as Kong's file-log does: raw open(2)
// flags from lua_system_constants, ffi.C.open/write/close, and errno with
// strerror when the open fails.
func TestFFIAppend(t *testing.T) {
	e := newLibEnv(t, PhaseLog, Options{})
	path := filepath.Join(t.TempDir(), "out.log")
	code := fmt.Sprintf(`
		local ffi = require "ffi"
		local sc = require "lua_system_constants"
		local flags = bit.bor(sc.O_WRONLY(), sc.O_CREAT(), sc.O_APPEND())
		local mode = ffi.new("int", bit.bor(sc.S_IRUSR(), sc.S_IWUSR(), sc.S_IRGRP(), sc.S_IROTH()))
		local out = {}
		for _, line in ipairs({"one\n", "two\n"}) do
		  local fd = ffi.C.open(%q, flags, mode)
		  out[#out + 1] = ffi.C.write(fd, line, #line)
		  ffi.C.close(fd)
		end
		local bad = ffi.C.open(%q, flags, mode)
		out[#out + 1] = bad .. " " .. ffi.string(ffi.C.strerror(ffi.errno()))
		return table.concat(out, ",")`, path, filepath.Join(path, "nope"))
	if got, want := runString(t, e.vm, code), "4,4,-1 not a directory"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
	data, err := os.ReadFile(path)
	if err != nil || string(data) != "one\ntwo\n" {
		t.Errorf("file holds %q, %v", data, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm()&0o711 != 0o600 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}
	wantLuaError(t, e.vm, `require("ffi").C.getpid()`, "missing declaration for symbol 'getpid'")
}

// TestUpstreamTLSObjects parses what set_tls_cert_key and
// set_tls_verify_store take, and hands them over in preread.
func TestUpstreamTLSObjects(t *testing.T) {
	e := newLibEnv(t, PhasePreread, Options{})
	cert, key := selfSigned(t)
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bundle, []byte(cert), 0o600); err != nil {
		t.Fatal(err)
	}
	code := fmt.Sprintf(`
		local ssl = require "ngx.ssl"
		local chain = assert(ssl.parse_pem_cert(%[1]q))
		local key = assert(ssl.parse_pem_priv_key(%[2]q))
		local _, cert_err = ssl.parse_pem_cert("junk")
		local _, key_err = ssl.parse_pem_priv_key(%[1]q)
		local store = require("resty.openssl.x509.store").new()
		assert(store:add(assert(require("resty.openssl.x509").new(%[1]q))))
		assert(store:load_file(%[3]q))
		local _, load_err = store:load_file("/nonexistent")
		return tostring(kong.service.set_tls_cert_key(chain, key)) .. " " ..
		  tostring(kong.service.set_tls_verify_store(store)) .. " " .. cert_err .. " " .. key_err .. " " .. tostring(load_err ~= nil)`,
		cert, key, bundle)
	want := "true true PEM_read_bio_X509_AUX() failed PEM_read_bio_PrivateKey() failed true"
	if got := runString(t, e.vm, code); got != want {
		t.Errorf("got %q; want %q", got, want)
	}
	if c := e.st.Upstream.TLSClientCert; c == nil || len(c.Certificate) != 1 || e.st.Upstream.TLSRoots == nil {
		t.Errorf("upstream change %+v", e.st.Upstream)
	}
	wantLuaError(t, e.vm, "kong.service.set_tls_cert_key(require('ngx.ssl').parse_pem_cert("+fmt.Sprintf("%q", cert)+"), 'key')", "key must be a parsed cdata object")
}

// selfSigned returns a self-signed CA certificate and its key, PEM encoded.
func selfSigned(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

// TestSandboxContainment checks what sandboxed code cannot do: change
// kong or ngx at any depth (other plugins and routes share them), read
// secrets from kong.configuration, resolve vault references the operator
// did not allow, or open cosockets (ngx.req.socket included).
func TestSandboxContainment(t *testing.T) {
	t.Setenv("GONG_TEST_SECRET", "s3cret")
	t.Setenv("GONG_PUBLIC_FLAG", "on")
	secret := func(k string) bool { return k == "admin_token" || k == "pg_password" }
	conf := Configuration{"admin_token": "tok3n", "pg_password": "hunter2", "pg_user": "kong",
		"untrusted_lua_sandbox_vaults": "env/gong_public_*, env/exact", "trusted_ips": []string{"10.0.0.0/8", "::1"}}
	run := func(code string) string {
		return `local fn = require("kong.tools.sandbox").sandbox(` + fmt.Sprintf("%q", code) + `)
		  local ok, res = pcall(fn)
		  return tostring(ok) .. " " .. tostring(res)`
	}
	tests := []struct{ name, code, want string }{
		{"top-level function", `kong.client.get_ip = function() return "10.0.0.1" end`,
			"false Cannot modify kong.client.get_ip. Protected by the sandbox."},
		{"ngx table", `ngx.re.match = nil`, "false Cannot modify ngx.re.match. Protected by the sandbox."},
		{"deep", `kong.log.inspect.on = nil`, "false Cannot modify kong.log.inspect.on. Protected by the sandbox."},
		{"namespace", `kong.client = {}`, "false Cannot modify kong.client. Protected by the sandbox."},
		{"configuration", `kong.configuration.pg_user = "x"`, "false Cannot modify kong.configuration.pg_user. Protected by the sandbox."},
		{"connection data is writable", `kong.ctx.shared.a = 1; kong.ctx.plugin.b = 2; ngx.ctx.c = 3
		  return kong.ctx.shared.a + kong.ctx.plugin.b + ngx.ctx.c`, "true 6"},
		{"library copies are private", `string.upper = nil; return type(string.upper)`, "true nil"},
		{"reads and calls", `kong.log("from the sandbox"); kong.cache:get("k", nil, function() return 1 end)
		  return kong.version .. ngx.config.subsystem .. type(kong.client.get_ip) .. ngx.re.find("abc", "b")`, "true 3.10.0streamfunction2"},
		{"secrets masked", `return kong.configuration.admin_token .. kong.configuration.pg_password .. kong.configuration.pg_user`,
			"true ************kong"},
		{"ipairs and # on views", `local n = 0 for _, v in ipairs(kong.configuration.trusted_ips) do n = n + #v end
		  return #kong.configuration.trusted_ips .. "," .. n`, "true 2,13"},
		{"pairs shows masked values", `local seen = {} for k, v in pairs(kong.configuration) do
		  if type(v) == "string" then seen[#seen + 1] = k .. "=" .. v end end
		  table.sort(seen) return table.concat(seen, ",")`,
			"true admin_token=******,pg_password=******,pg_user=kong,untrusted_lua_sandbox_vaults=env/gong_public_*, env/exact"},
		{"pairs on a namespace", `local n = 0 for k, v in pairs(kong.client) do n = n + 1 end return n > 3`, "true true"},
		{"vault refused", `return select(2, kong.vault.get("{vault://env/gong-test-secret}"))`,
			"true vault reference {vault://env/gong-test-secret} not allowed within sandbox (untrusted_lua_sandbox_vaults)"},
		{"vault allowed", `return kong.vault.get("{vault://env/gong_public_flag}")`, "true on"},
		{"vault query refused", `return tostring(kong.vault.get("{vault://env/gong_public_x?prefix=GONG_TEST_}"))`, "true nil"},
		{"vault update refused", `kong.vault.update({ x = { "{vault://env/gong-test-secret}" } })`,
			"false vault reference {vault://env/gong-test-secret} not allowed within sandbox (untrusted_lua_sandbox_vaults)"},
		{"cosockets refused", `ngx.socket.tcp()`,
			"false ngx.socket.tcp is not allowed within sandbox: cosockets need untrusted_lua = on"},
		{"cosockets refused in timers", `local ok, err = pcall(function() return ngx.socket.udp() end) return err`,
			"true ngx.socket.udp is not allowed within sandbox: cosockets need untrusted_lua = on"},
		{"request socket refused", `ngx.req.socket()`,
			"false ngx.req.socket is not allowed within sandbox: cosockets need untrusted_lua = on"},
		{"request socket refused through pairs", `for k, v in pairs(ngx.req) do if k == "socket" then return select(2, pcall(v)) end end`,
			"true ngx.req.socket is not allowed within sandbox: cosockets need untrusted_lua = on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLibEnv(t, PhaseLog, Options{Configuration: conf, Sensitive: secret})
			before := runLua(t, e.vm, `return kong.client.get_ip, ngx.re.match`)
			if got := runString(t, e.vm, run(tt.code)); got != tt.want {
				t.Errorf("%s\n got %q\nwant %q", tt.code, got, tt.want)
			}
			after := runLua(t, e.vm, `return kong.client.get_ip, ngx.re.match`)
			if before[0] != after[0] || before[1] != after[1] {
				t.Error("sandboxed code changed the real kong or ngx")
			}
		})
	}
	// Outside the sandbox, plugins still read the real configuration and
	// remove_sensitive masks the same properties.
	e := newLibEnv(t, PhaseLog, Options{Configuration: conf, Sensitive: secret})
	if got := runString(t, e.vm, `local c = kong.configuration.remove_sensitive()
	  return kong.configuration.admin_token .. " " .. c.admin_token .. c.pg_password .. " " .. c.pg_user`); got != "tok3n ************ kong" {
		t.Errorf("remove_sensitive: %q", got)
	}
	// untrusted_lua = on is trusted: cosockets are there.
	on := newLibEnv(t, PhaseLog, Options{Configuration: Configuration{"untrusted_lua": "on"}})
	if got := runString(t, on.vm, `return require("kong.tools.sandbox").sandbox("return type(ngx.socket.tcp)")()`); got != "function" {
		t.Errorf("untrusted_lua = on: ngx.socket.tcp is %q", got)
	}
}

// BenchmarkSandboxedRead is a read of kong.client.get_ip and ngx.ctx by
// sandboxed code, through the read-only views, against the same code
// under untrusted_lua = on.
func BenchmarkSandboxedRead(b *testing.B) {
	for _, mode := range []string{"sandbox", "on"} {
		b.Run(mode, func(b *testing.B) {
			e := newLibEnv(b, PhaseLog, Options{Configuration: Configuration{"untrusted_lua": mode}})
			load, err := e.vm.L.LoadString(`return require("kong.tools.sandbox").sandbox("local f, c = kong.client.get_ip, ngx.ctx")`)
			if err != nil {
				b.Fatal(err)
			}
			res, err := e.vm.Call(b.Context(), load)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.vm.Call(b.Context(), res[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
