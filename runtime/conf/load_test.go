package conf

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gong-proxy/gong"
)

var update = flag.Bool("update", false, "rewrite golden files")

// load runs Load on a kong.conf text with no search paths and the given
// environment.
func load(t *testing.T, text string, env ...string) (*Config, []Problem, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "kong.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(Options{Path: path, Env: env, Dir: dir})
}

func TestDefaultsAreValidAndAllRead(t *testing.T) {
	l := &loader{values: map[string]Value{}, known: map[string]bool{}}
	for _, a := range parseText(string(gong.DefaultConf)) {
		if l.known[a.key] {
			t.Errorf("kong.conf.default:%d: %s is listed twice", a.line, a.key)
		}
		l.known[a.key] = true
		l.set(a.key, a.value, Source{Kind: FromDefaults, Line: a.line})
	}
	ty := &typer{values: l.values, read: map[string]bool{}}
	ty.config()
	if len(ty.problems) > 0 {
		t.Fatalf("defaults are invalid:\n%v", ty.problems)
	}
	for k := range l.known {
		if !ty.read[k] {
			t.Errorf("kong.conf.default lists %s but the loader never reads it", k)
		}
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kong.conf")
	os.WriteFile(path, []byte("log_level = info\nlua_socket_pool_size = 10\nrouter_flavor = traditional\n"), 0o600)
	c, _, err := Load(Options{
		Path:      path,
		Env:       []string{"KONG_LUA_SOCKET_POOL_SIZE=20", "KONG_ROUTER_FLAVOR=traditional_compatible", "OTHER=1"},
		Overrides: map[string]string{"router_flavor": "traditional"},
		Dir:       dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "info" {
		t.Errorf("file over defaults: log_level = %q; want info", c.LogLevel)
	}
	if c.LuaSocketPoolSize != 20 {
		t.Errorf("env over file: lua_socket_pool_size = %d; want 20", c.LuaSocketPoolSize)
	}
	if c.RouterFlavor != "traditional" {
		t.Errorf("command line over env: router_flavor = %q; want traditional", c.RouterFlavor)
	}
	if src, _ := c.Source("lua_socket_pool_size"); src.String() != "KONG_LUA_SOCKET_POOL_SIZE" {
		t.Errorf("source of lua_socket_pool_size = %q", src)
	}
	if src, _ := c.Source("log_level"); src.String() != path+":1" {
		t.Errorf("source of log_level = %q; want %s:1", src, path)
	}
}

func TestEmptyValueUnsets(t *testing.T) {
	c, _, err := load(t, "proxy_stream_access_log =\n")
	if err != nil {
		t.Fatal(err)
	}
	if !c.ProxyStreamAccessLog.Off {
		t.Errorf("empty proxy_stream_access_log: access log = %+v; want off", c.ProxyStreamAccessLog)
	}
	c, _, err = load(t, "", "KONG_LUA_PACKAGE_PATH=")
	if err != nil {
		t.Fatal(err)
	}
	if _, set := c.Get("lua_package_path"); set {
		t.Error("empty KONG_LUA_PACKAGE_PATH did not unset lua_package_path")
	}
}

func TestEnvOnlyNginxDirective(t *testing.T) {
	c, _, err := load(t, "", "KONG_NGINX_STREAM_PROXY_BUFFER_SIZE=32k", "KONG_NGINX_SPROXY_PREREAD_TIMEOUT=5s")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Get("nginx_stream_proxy_buffer_size"); v != "32k" {
		t.Errorf("nginx_stream_proxy_buffer_size = %q; want 32k", v)
	}
	if c.Stream.PrereadTimeout.String() != "5s" {
		t.Errorf("preread timeout = %v; want 5s", c.Stream.PrereadTimeout)
	}
}

func TestNoneUnsetsNginxDirective(t *testing.T) {
	c, _, err := load(t, "nginx_stream_preread_buffer_size = NONE\nnginx_stream_log_format = custom '$protocol $status'\nproxy_stream_access_log = /dev/stdout custom\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Stream.PrereadBufferSize != 0 {
		t.Errorf("NONE left preread buffer size %d", c.Stream.PrereadBufferSize)
	}
	if got := c.Stream.LogFormats["custom"]; got != "$protocol $status" {
		t.Errorf("custom log format = %q", got)
	}
	if c.ProxyStreamAccessLog.Path != "/dev/stdout" || c.ProxyStreamAccessLog.Format != "custom" {
		t.Errorf("access log = %+v", c.ProxyStreamAccessLog)
	}
}

func TestMissingFile(t *testing.T) {
	_, _, err := Load(Options{Path: "/nonexistent/kong.conf"})
	if err == nil || err.Error() != "no file at: /nonexistent/kong.conf" {
		t.Errorf("Load(missing) error = %v; want no file at: /nonexistent/kong.conf", err)
	}
}

func TestSearchPaths(t *testing.T) {
	dir := t.TempDir()
	second := filepath.Join(dir, "kong.conf")
	os.WriteFile(second, []byte("log_level = error\n"), 0o600)
	c, _, err := Load(Options{SearchPaths: []string{filepath.Join(dir, "missing.conf"), second}})
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "error" {
		t.Errorf("log_level = %q; want error from the second search path", c.LogLevel)
	}
	c, _, err = Load(Options{SearchPaths: []string{filepath.Join(dir, "missing.conf")}})
	if err != nil || c.LogLevel != "notice" {
		t.Errorf("no file found: %v, log_level %q; want the defaults", err, c.LogLevel)
	}
}

func TestUnknownKeyWarning(t *testing.T) {
	_, warnings, err := load(t, "stream_lisen = 127.0.0.1:1\nopentelemetry_tracing = off\n")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, w := range warnings {
		msgs = append(msgs, w.Msg)
	}
	want := []string{
		"unknown property 'stream_lisen' ignored; did you mean 'stream_listen'?",
		"the 'opentelemetry_tracing' configuration property is deprecated, use 'tracing_instrumentations' instead",
	}
	if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings = %q; want %q", msgs, want)
	}
}

func TestUnknownEnvWarning(t *testing.T) {
	c, warnings, err := load(t, "", "KONG_STREAM_LISEN=127.0.0.1:1", "KONG_LOG_LEVEL=debug",
		"KONG_VAULT_ENV_PREFIX=GONG_", "KONG_IS_TESTING=1", "OTHER=1")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, w := range warnings {
		msgs = append(msgs, w.Error())
	}
	want := []string{"KONG_STREAM_LISEN: unknown property 'stream_lisen' ignored; did you mean 'stream_listen'?"}
	if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings = %q; want %q", msgs, want)
	}
	if v, _ := c.Get("vault_env_prefix"); v != "GONG_" || c.LogLevel != "debug" {
		t.Errorf("vault_env_prefix = %q, log_level = %q; want both applied", v, c.LogLevel)
	}
}

func TestPluginsExpansion(t *testing.T) {
	bundled := []string{"ip-restriction", "file-log"}
	tests := []struct{ plugins, want string }{
		{"bundled", "ip-restriction,file-log"},
		{"off", ""},
		{"bundled,my-plugin,file-log", "ip-restriction,file-log,my-plugin"},
		{"my-plugin", "my-plugin"},
	}
	for _, tt := range tests {
		c, _, err := load(t, "plugins = "+tt.plugins)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(c.EnabledPlugins(bundled), ","); got != tt.want {
			t.Errorf("EnabledPlugins(plugins = %s) = %q; want %q", tt.plugins, got, tt.want)
		}
	}
}

func TestKongEnvRoundTrip(t *testing.T) {
	c, _, err := load(t, "pg_password = a\\#b\nstream_listen = 127.0.0.1:9000 ssl\nport_maps = 80:8000\n")
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := load(t, string(c.KongEnv()))
	if err != nil {
		t.Fatal(err)
	}
	if string(again.KongEnv()) != string(c.KongEnv()) {
		t.Errorf(".kong_env does not load back to itself:\n%s\n---\n%s", c.KongEnv(), again.KongEnv())
	}
	if v, _ := again.Get("pg_password"); v != "a#b" {
		t.Errorf("pg_password after round trip = %q; want a#b", v)
	}
}

func TestTypedValues(t *testing.T) {
	c, _, err := load(t, strings.Join([]string{
		"trusted_ips = 10.0.0.0/8, 192.168.1.1, ::1, unix:",
		"port_maps = 80:8000, 443:8443",
		"dns_resolver = 127.0.0.1, 127.0.0.2:5353, [::1]:53",
		"dns_order = last,a,srv",
		"dns_no_sync = on",
		"ssl_cipher_suite = custom",
		"ssl_ciphers = ECDHE-RSA-AES128-GCM-SHA256",
		"ssl_protocols = TLSv1.3",
		"tracing_instrumentations = all",
		"tracing_otlp_endpoint = http://127.0.0.1:4318/v1/traces",
		"tracing_otlp_headers = authorization:Bearer x, x-tenant:a",
		"tracing_resource_attributes = service.name=edge, deployment.environment=prod",
	}, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.TrustedIPs) != 3 || !c.TrustUnix || c.TrustedIPs[1].String() != "192.168.1.1/32" {
		t.Errorf("trusted_ips = %v, unix %v", c.TrustedIPs, c.TrustUnix)
	}
	if c.PortMaps[8000] != 80 || c.PortMaps[8443] != 443 {
		t.Errorf("port_maps = %v", c.PortMaps)
	}
	if strings.Join(c.DNS.Resolvers, ",") != "127.0.0.1:53,127.0.0.2:5353,[::1]:53" {
		t.Errorf("dns_resolver = %v", c.DNS.Resolvers)
	}
	if strings.Join(c.DNS.Order, ",") != "LAST,A,SRV" || !c.DNS.NoSync {
		t.Errorf("dns_order = %v, dns_no_sync = %v", c.DNS.Order, c.DNS.NoSync)
	}
	if strings.Join(c.TLS.Protocols, ",") != "TLSv1.3" || len(c.TLS.Ciphers) != 1 || !c.TLS.PreferServerCiphers {
		t.Errorf("custom TLS = %+v", c.TLS)
	}
	if len(c.Tracing.Instrumentations) != len(TracingInstrumentations) || c.Tracing.OTLPHeaders["authorization"] != "Bearer x" ||
		c.Tracing.ResourceAttributes["service.name"] != "edge" {
		t.Errorf("tracing = %+v", c.Tracing)
	}
}

func TestCipherSuitePresetsOverride(t *testing.T) {
	c, _, err := load(t, "ssl_cipher_suite = modern\nssl_protocols = TLSv1.2\nssl_ciphers = AES128-SHA\n")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.TLS.Protocols, ",") != "TLSv1.3" || len(c.TLS.Ciphers) != 0 {
		t.Errorf("modern suite must ignore ssl_protocols and ssl_ciphers: %+v", c.TLS)
	}
}

// TestCheckGolden loads each testdata/check/*.conf and compares every
// problem reported with the .golden file beside it.
func TestCheckGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/check/*.conf")
	if len(files) == 0 {
		t.Fatal("no golden inputs")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, warnings, err := Load(Options{Path: f, Dir: "/work"})
			var b strings.Builder
			for _, w := range warnings {
				b.WriteString("warning: " + w.Error() + "\n")
			}
			var errs Errors
			switch {
			case errors.As(err, &errs):
				for _, p := range errs {
					b.WriteString("error: " + p.Error() + "\n")
				}
			case err != nil:
				b.WriteString("error: " + err.Error() + "\n")
			default:
				b.WriteString("valid\n")
			}
			golden := strings.TrimSuffix(f, ".conf") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(b.String()), 0o644)
			}
			want, _ := os.ReadFile(golden)
			if b.String() != string(want) {
				t.Errorf("Load(%s):\n%s\nwant:\n%s", f, b.String(), want)
			}
		})
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte("stream_listen = 127.0.0.1:9000 ssl reuseport, [::1]:53 udp\n"))
	f.Add([]byte("port_maps = 80:8000\ntrusted_ips = 0.0.0.0/0,::/0\n"))
	f.Add([]byte("log_level = \\\nwarn # x\nssl_cert = a,b\nssl_cert_key = c\n"))
	f.Add([]byte("nginx_stream_log_format = x '$a' \"$b\n"))
	f.Add([]byte("tracing_instrumentations = all\ntracing_otlp_endpoint = ::\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "kong.conf")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, _, err := Load(Options{Path: path, Dir: dir})
		if err == nil {
			// A valid configuration must survive .kong_env.
			os.WriteFile(path, c.KongEnv(), 0o600)
			if _, _, err := Load(Options{Path: path, Dir: dir}); err != nil {
				t.Fatalf(".kong_env of a valid config is invalid: %v", err)
			}
		}
	})
}

func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kong.conf")
	os.WriteFile(path, []byte("prefix = run\ndeclarative_config = conf/kong.yml\nproxy_stream_access_log = logs/a.log basic\nproxy_stream_error_log = /dev/stderr\n"), 0o600)
	c, _, err := Load(Options{Path: path, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "run"); c.Prefix != want {
		t.Errorf("prefix = %q; want %q", c.Prefix, want)
	}
	if want := filepath.Join(dir, "conf/kong.yml"); c.DeclarativeConfig != want {
		t.Errorf("declarative_config = %q; want %q (relative to the working directory)", c.DeclarativeConfig, want)
	}
	if want := filepath.Join(dir, "run/logs/a.log"); c.ProxyStreamAccessLog.Path != want {
		t.Errorf("access log = %q; want %q (relative to the prefix)", c.ProxyStreamAccessLog.Path, want)
	}
	if c.ProxyStreamErrorLog != "/dev/stderr" {
		t.Errorf("error log = %q", c.ProxyStreamErrorLog)
	}
}

func TestLuaSharedDicts(t *testing.T) {
	c, _, err := load(t, "nginx_stream_lua_shared_dict = counters 1m; lua_shared_dict limits 12k\nmem_cache_size = 64m\n")
	if err != nil {
		t.Fatal(err)
	}
	d := c.Stream.LuaSharedDicts
	if d["counters"] != 1<<20 || d["limits"] != 12<<10 || d["stream_kong"] != 5<<20 || d["stream_kong_db_cache"] != 64<<20 {
		t.Errorf("shared dicts = %v", d)
	}
	_, _, err = load(t, "nginx_stream_lua_shared_dict = counters lots\n")
	if err == nil || !strings.Contains(err.Error(), "nginx_stream_lua_shared_dict must be of form: <name> <size>, got 'counters lots'") {
		t.Errorf("bad size: %v", err)
	}
}

// TestWorkerShutdownTimeout: nginx_main_worker_shutdown_timeout is 30s by
// default, takes an nginx time, and must be above zero.
func TestWorkerShutdownTimeout(t *testing.T) {
	c, _, err := load(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Stream.WorkerShutdownTimeout != 30*time.Second {
		t.Errorf("default = %s; want 30s", c.Stream.WorkerShutdownTimeout)
	}
	if c, _, err = load(t, "nginx_main_worker_shutdown_timeout = 1m30s\n"); err != nil || c.Stream.WorkerShutdownTimeout != 90*time.Second {
		t.Errorf("1m30s: %v, %v", c, err)
	}
	for v, want := range map[string]string{
		"0":    "nginx_main_worker_shutdown_timeout must be a time greater than 0",
		"soon": "nginx_main_worker_shutdown_timeout is not a valid time: 'soon'",
	} {
		if _, _, err := load(t, "nginx_main_worker_shutdown_timeout = "+v+"\n"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want an error saying %q", v, err, want)
		}
	}
}

func TestWorkerProcesses(t *testing.T) {
	for conf, want := range map[string]int{"": 0, "nginx_worker_processes = auto\n": 0, "nginx_worker_processes = 3\n": 3} {
		c, _, err := load(t, conf)
		if err != nil || c.Stream.WorkerProcesses != want {
			t.Errorf("%q: %v, %v; want %d", conf, c, err, want)
		}
	}
	for v, want := range map[string]string{
		"0":    "nginx_worker_processes must be 'auto' or a positive integer",
		"many": "nginx_worker_processes is not a number: 'many'",
		"1025": "nginx_worker_processes must be at most 1024",
	} {
		if _, _, err := load(t, "nginx_worker_processes = "+v+"\n"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want an error saying %q", v, err, want)
		}
	}
}

func TestHalfCloseSetting(t *testing.T) {
	for conf, want := range map[string]bool{"": false, "nginx_sproxy_proxy_half_close = on\n": true, "nginx_sproxy_proxy_half_close = off\n": false} {
		c, _, err := load(t, conf)
		if err != nil {
			t.Fatalf("%q: %v", conf, err)
		}
		if c.Stream.HalfClose != want {
			t.Errorf("%q: half-close %v; want %v", conf, c.Stream.HalfClose, want)
		}
	}
	want := "nginx_sproxy_proxy_half_close has an invalid value: 'yes' (on, off)"
	if _, _, err := load(t, "nginx_sproxy_proxy_half_close = yes\n"); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("yes: %v; want an error saying %q", err, want)
	}
}
