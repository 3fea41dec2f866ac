package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestSharedDictAcrossConnections counts many parallel connections in an
// ngx.shared dictionary declared through nginx_stream_lua_shared_dict:
// the plugins run on several VMs, the count is exact, and it survives a
// reload.
func TestSharedDictAcrossConnections(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	pCount, pReport := listenPort(t), listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: e
    url: tcp://%s
    routes:
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: counter, config: {dict: counters}}]
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: counter, config: {dict: counters, report: true}}]
`, echo, pCount, pReport)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\nplugins = bundled, counter\nlua_package_path = %s\nnginx_stream_lua_shared_dict = counters 1m\n",
		pCount, pReport, fixturePath(t)), yml)

	const conns = 60
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pCount), "x"); err != nil || got != "e: x" {
				errs <- fmt.Errorf("counted connection: %q, %v", got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c := dial(t, fmt.Sprintf("127.0.0.1:%d", pReport))
	if got, err := exchangeRead(c); err != nil || got != fmt.Sprint(conns) {
		t.Fatalf("count = %q, %v; want %d", got, err, conns)
	}
	// A reload keeps a dictionary whose size did not change, as nginx
	// keeps the zone.
	if err := g.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	c = dial(t, fmt.Sprintf("127.0.0.1:%d", pReport))
	if got, err := exchangeRead(c); err != nil || got != fmt.Sprint(conns) {
		t.Fatalf("count after a reload = %q, %v; want %d", got, err, conns)
	}
}

// exchangeRead reads one line gong sends without being asked.
func exchangeRead(c interface{ Read([]byte) (int, error) }) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		n, err := c.Read(buf)
		if n > 0 && buf[0] == '\n' {
			return b.String(), nil
		}
		b.Write(buf[:n])
		if err != nil {
			return b.String(), err
		}
	}
}

// TestSetTargetInPreread sends connections of a route whose service is
// echo server a to server b: with kong.service.set_target, and with
// set_upstream naming an upstream whose target is b.
func TestSetTargetInPreread(t *testing.T) {
	t.Parallel()
	a, b := startEcho(t, "a"), startEcho(t, "b")
	bHost, bPort := hostPort(b)
	pPlain, pTarget, pUpstream, pMissing := listenPort(t), listenPort(t), listenPort(t), listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
upstreams:
  - name: other
    targets: [{target: %s}]
services:
  - name: a
    url: tcp://%s
    routes:
      - protocols: [tcp]
        destinations: [{port: %d}]
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: retarget, config: {host: %s, port: %s}}]
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: retarget, config: {upstream: other}}]
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: retarget, config: {upstream: missing}}]
`, b, a, pPlain, pTarget, bHost, bPort, pUpstream, pMissing)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:%d\nplugins = bundled, retarget\nlua_package_path = %s\n",
		pPlain, pTarget, pUpstream, pMissing, fixturePath(t)), yml)
	for _, tt := range []struct {
		port int
		want string
	}{{pPlain, "a: x"}, {pTarget, "b: x"}, {pUpstream, "b: x"}} {
		if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", tt.port), "x"); err != nil || got != tt.want {
			t.Errorf("port %d: %q, %v; want %q", tt.port, got, err, tt.want)
		}
	}
	expectClosed(t, dial(t, fmt.Sprintf("127.0.0.1:%d", pMissing)))
	g.stop()
	if !strings.Contains(g.errLog.String(), "could not find an Upstream named 'missing'") {
		t.Errorf("error log lacks the set_upstream error:\n%s", g.errLog)
	}
}

// TestPrePostFunction runs post-function code in the log phase of real
// connections under each untrusted_lua mode: sandboxed code reaches kong
// and ngx but not os.execute or io, "on" reaches every global, "off"
// refuses to compile.
func TestPrePostFunction(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"sandbox", "on", "off"} {
		t.Run(mode, func(t *testing.T) {
			echo := startEcho(t, "e")
			p := listenPort(t)
			dir := t.TempDir()
			marker := filepath.Join(dir, "marker")
			yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: e
    url: tcp://%s
    routes:
      - name: r
        protocols: [tcp]
        destinations: [{port: %d}]
        plugins:
          - name: post-function
            protocols: [tcp]
            config:
              log:
                - |
                  kong.log.notice("post-function saw status ", kong.log.serialize().session.status,
                                  " on ", kong.router.get_route().name)
                - |
                  local f = io.open("%s", "w")
                  f:write("written")
                  f:close()
          - name: pre-function
            protocols: [tcp]
            config:
              log:
                - |
                  local n = 0
                  return function()
                    n = n + 1
                    kong.log.notice("pre-function run ", n)
                  end
`, echo, p, marker)
			g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nuntrusted_lua = %s\n", p, mode), yml)
			// One connection at a time, each after the last one's log
			// phase, so both log phases run on the same VM.
			for i := 1; i <= 2; i++ {
				if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil || got != "e: x" {
					t.Fatalf("through post-function: %q, %v", got, err)
				}
				eventually(t, "post-function logs", func() bool { return strings.Count(g.errLog.String(), "[post-function]") >= i || mode == "off" })
			}
			g.stop()
			log := g.errLog.String()
			_, statErr := os.Stat(marker)
			switch mode {
			case "sandbox":
				if !strings.Contains(log, "[post-function] post-function saw status 200 on r") {
					t.Errorf("sandboxed code did not log through kong.log:\n%s", log)
				}
				if !strings.Contains(log, `plugin "post-function" log phase: <string>:1: attempt to call a non-function object`) || statErr == nil {
					t.Errorf("sandboxed code reached io.open (marker: %v):\n%s", statErr, log)
				}
			case "on":
				if statErr != nil {
					t.Errorf("untrusted_lua = on: io.open did not run: %v\n%s", statErr, log)
				}
			case "off":
				if !strings.Contains(log, "loading of untrusted Lua code disabled because 'untrusted_lua' config option is set to 'off'") {
					t.Errorf("untrusted_lua = off did not refuse the code:\n%s", log)
				}
			}
			if mode != "off" && !strings.Contains(log, "pre-function run 2") {
				t.Errorf("a snippet returning a function did not keep its upvalue across connections:\n%s", log)
			}
		})
	}
}

// TestPreFunctionCertificate runs global pre-function code in the TLS
// handshake: it logs the SNI, and ngx.exit(ngx.ERROR) aborts the
// handshake of one name.
func TestPreFunctionCertificate(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "plain")
	p := listenPort(t)
	yml, _, _ := tlsConfig(t, echo, p)
	yml += `plugins:
  - name: pre-function
    protocols: [tls]
    config:
      certificate:
        - |
          local sni = ngx.var.ssl_server_name
          if sni == "refused.wild.test" then
            return ngx.exit(ngx.ERROR)
          end
          kong.log.notice("handshake for ", sni)
`
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\n", p), yml)
	tlsEcho(t, p)
	if _, err := tlsDial(t, fmt.Sprintf("127.0.0.1:%d", p), "refused.wild.test", nil); err == nil {
		t.Errorf("the handshake ngx.exit(ngx.ERROR) aborted succeeded:\n%s", g.errLog)
	}
	g.stop()
	if !strings.Contains(g.errLog.String(), "[pre-function] handshake for exact.test") {
		t.Errorf("the certificate snippet did not log:\n%s", g.errLog)
	}
}

// TestSetTLSVerifyInPreread: a service verifies its upstream's certificate,
// which no trusted CA signed, so connections fail; a plugin turning
// verification off for its route lets them through.
func TestSetTLSVerifyInPreread(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "unknown CA")
	up, _ := startTLSEcho(t, "tls-upstream", newLeaf(t, "backend", []string{"127.0.0.1"}, &ca, false), nil)
	pStrict, pRelaxed := listenPort(t), listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: verified
    url: tls://%s
    tls_verify: true
    retries: 0
    routes:
      - protocols: [tcp]
        destinations: [{port: %d}]
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: retarget, config: {tls_verify: false}}]
`, up, pStrict, pRelaxed)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\nplugins = bundled, retarget\nlua_package_path = %s\n",
		pStrict, pRelaxed, fixturePath(t)), yml)
	expectClosed(t, dial(t, fmt.Sprintf("127.0.0.1:%d", pStrict)))
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pRelaxed), "x"); err != nil || got != "tls-upstream: x" {
		t.Errorf("with set_tls_verify(false): %q, %v", got, err)
	}
}

// TestUnsetNginxVariables: as in nginx, the ssl_* variables are unset
// (nil in Lua, "-" in the access log) on a plain session and where a TLS
// session has no value (no client certificate), and upstream_addr until a
// peer was tried.
func TestUnsetNginxVariables(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "plain")
	pTLS, pPlain := listenPort(t), listenPort(t)
	yml, _, _ := tlsConfig(t, echo, pTLS)
	yml += fmt.Sprintf(`      - name: plain
        protocols: [tcp]
        destinations: [{port: %d}]
plugins:
  - name: nginx-vars
`, pPlain)
	logPath := filepath.Join(t.TempDir(), "access.log")
	g := startGong(t, fmt.Sprintf(`stream_listen = 127.0.0.1:%d ssl, 127.0.0.1:%d
plugins = bundled, nginx-vars
lua_package_path = %s
nginx_stream_log_format = vars '$server_port|$ssl_protocol|$ssl_server_name|$ssl_client_s_dn|$upstream_addr'
proxy_stream_access_log = %s vars
`, pTLS, pPlain, fixturePath(t), logPath), yml)
	tlsEcho(t, pTLS).Close()
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pPlain), "x"); err != nil || got != "plain: x" {
		t.Fatalf("plain route: %q, %v", got, err)
	}
	g.stop()
	errLog := g.errLog.String()
	for _, want := range []string{
		fmt.Sprintf("preread %d ssl_protocol=nil ssl_server_name=nil ssl_client_s_dn=nil upstream_addr=nil", pPlain),
		fmt.Sprintf("log %d ssl_protocol=nil ssl_server_name=nil ssl_client_s_dn=nil upstream_addr=%s", pPlain, echo),
		fmt.Sprintf("preread %d ssl_protocol=TLSv1.3 ssl_server_name=exact.test ssl_client_s_dn=nil upstream_addr=nil", pTLS),
		fmt.Sprintf("log %d ssl_protocol=TLSv1.3 ssl_server_name=exact.test ssl_client_s_dn=nil upstream_addr=%s", pTLS, echo),
	} {
		if !strings.Contains(errLog, want) {
			t.Errorf("error log lacks %q:\n%s", want, errLog)
		}
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("%d|-|-|-|%s\n", pPlain, echo),
		fmt.Sprintf("%d|TLSv1.3|exact.test|-|%s\n", pTLS, echo),
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("access log lacks %q:\n%s", want, data)
		}
	}
}
