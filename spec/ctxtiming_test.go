package spec

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestCtxTimingValues runs the ctx-tests fixture, written as Kong's
// fixture of that name: ngx.ctx carries the runloop's KONG_* timing
// values in preread and log with Kong's units and invariants,
// kong.response.get_source answers "service" for a proxied session, and
// kong.log.serialize has workspace_name.
func TestCtxTimingValues(t *testing.T) {
	echo := startEcho(t, "e")
	p := listenPort(t)
	out := filepath.Join(t.TempDir(), "ctx.log")
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: e
    url: tcp://%s
    routes:
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: ctx-tests, config: {path: %s}}]
`, echo, p, out)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nplugins = bundled, ctx-tests\nlua_package_path = %s\n", p, fixturePath(t)), yml)
	const conns = 20
	for range conns {
		if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil || got != "e: x" {
			t.Fatalf("through ctx-tests: %q, %v\n%s", got, err, g.errLog)
		}
	}
	g.stop()
	if strings.Contains(g.errLog.String(), "[ctx-tests]") {
		t.Errorf("ctx-tests failed:\n%s", g.errLog)
	}
	lines := readLines(t, out)
	if len(lines) != conns {
		t.Fatalf("log phase ran %d times; want %d:\n%s", len(lines), conns, g.errLog)
	}
	for _, l := range lines {
		if l != "source=service workspace_name=default" {
			t.Errorf("log phase recorded %q; want source=service workspace_name=default", l)
		}
	}
}
