package spec

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gong-proxy/gong/runtime"
	"github.com/gong-proxy/gong/runtime/conf"
)

// TestSNIRouteSkipsPlainTCP: a tls route with only snis must not capture
// a plain TCP connection that a route of destinations should get (Kong's
// traditional_compatible gives it to the SNI route), and that route's
// plugins run.
func TestSNIRouteSkipsPlainTCP(t *testing.T) {
	t.Parallel()
	for _, flavor := range []string{"traditional", "traditional_compatible", "expressions"} {
		t.Run(flavor, func(t *testing.T) {
			sni, dst := startEcho(t, "sni"), startEcho(t, "dst")
			pDeny, pOpen := listenPort(t), listenPort(t)
			yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: sni
    url: tcp://%s
    routes:
      - name: by-sni
        protocols: [tls]
        snis: [a.test]
  - name: dst
    url: tcp://%s
    routes:
      - name: denied
        protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: ip-restriction, config: {deny: [127.0.0.1], status: 403}}]
      - name: open
        protocols: [tcp]
        destinations: [{port: %d}]
`, sni, dst, pDeny, pOpen)
			g := startGong(t, fmt.Sprintf("router_flavor = %s\nstream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", flavor, pDeny, pOpen), yml)
			if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pOpen), "x"); err != nil || got != "dst: x" {
				t.Errorf("plain TCP to the destination route: %q, %v; want dst: x", got, err)
			}
			expectClosed(t, dial(t, fmt.Sprintf("127.0.0.1:%d", pDeny)))
			g.waitErrLog(t, "the denial", "[ip-restriction] IP address not allowed")
		})
	}
}

// expressionsYML routes by expressions: on the plain listener p1 by
// priority and source network, on p2 a route needing an SNI (which plain
// TCP lacks) above a route by port, and on the ssl listener by SNI.
func expressionsYML(t *testing.T, p1, p2 int) string {
	exact := newLeaf(t, "exact.test", []string{"exact.test"}, nil, false)
	wild := newLeaf(t, "wildcard", []string{"*.wild.test"}, nil, true)
	route := func(name, expr string, priority int, protocols string) string {
		return fmt.Sprintf("      - name: %s\n        protocols: %s\n        expression: '%s'\n        priority: %d\n", name, protocols, expr, priority)
	}
	service := func(name, addr, routes string) string {
		return fmt.Sprintf("  - name: %s\n    url: tcp://%s\n    routes:\n%s", name, addr, routes)
	}
	return fmt.Sprintf("_format_version: \"3.0\"\ncertificates:\n  - cert: %s    key: %s    snis: [{name: exact.test}]\n  - cert: %s    key: %s    snis: [{name: \"*.wild.test\"}]\nservices:\n",
		yamlBlock(exact.certPEM, 6), yamlBlock(exact.keyPEM, 6), yamlBlock(wild.certPEM, 6), yamlBlock(wild.keyPEM, 6)) +
		service("a", startEcho(t, "a"), route("loopback", fmt.Sprintf(`net.dst.port == %d && net.src.ip in 127.0.0.0/8`, p1), 10, "[tcp]")) +
		service("b", startEcho(t, "b"), route("any-source", fmt.Sprintf(`net.dst.port == %d`, p1), 5, "[tcp]")+
			route("needs-sni", fmt.Sprintf(`net.dst.port == %d && tls.sni =^ ""`, p2), 10, "[tcp, tls]")) +
		service("c", startEcho(t, "c"), route("by-port", fmt.Sprintf(`net.port == %d`, p2), 0, "[tcp]")) +
		service("exact", startEcho(t, "exact"), route("exact-sni", `tls.sni == r#"exact.test"#`, 0, "[tls]")) +
		service("wild", startEcho(t, "wild"), route("wild-sni", `lower(tls.sni) =^ ".wild.test" && net.protocol == "tls"`, 0, "[tls]"))
}

func TestExpressionsRoutes(t *testing.T) {
	t.Parallel()
	p1, p2, pTLS := listenPort(t), listenPort(t), listenPort(t)
	startGong(t, fmt.Sprintf("router_flavor = expressions\nstream_listen = 127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:%d ssl\n", p1, p2, pTLS),
		expressionsYML(t, p1, p2))
	for _, tt := range []struct {
		port int
		want string
	}{
		{p1, "a: x"}, // the higher priority, its source matches
		{p2, "c: x"}, // a plain connection has no tls.sni
	} {
		if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", tt.port), "x"); err != nil || got != tt.want {
			t.Errorf("port %d: %q, %v; want %q", tt.port, got, err, tt.want)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", pTLS)
	for sni, want := range map[string]string{"exact.test": "exact: x", "a.wild.test": "wild: x"} {
		c, err := tlsDial(t, addr, sni, nil)
		if err != nil {
			t.Fatalf("%s: %v", sni, err)
		}
		if got, err := exchange(c, "x"); err != nil || got != want {
			t.Errorf("tls %s: %q, %v; want %q", sni, got, err, want)
		}
	}
	// No route takes a TLS connection with another SNI.
	if c, err := tlsDial(t, addr, "other.test", nil); err == nil {
		if got, err := exchange(c, "x"); err == nil {
			t.Errorf("tls other.test answered %q; want no route", got)
		}
	}
}

// TestExpressionsRefused: an invalid expression is refused at start,
// reload and POST /config with Kong's message, naming the route, and by
// gong config parse; gong check accepts the flavor.
func TestExpressionsRefused(t *testing.T) {
	t.Parallel()
	a := startEcho(t, "a")
	p := listenPort(t)
	good := echoYML("a", a, p)
	bad := good + "      - name: typo\n        protocols: [tcp]\n        expression: 'net.src.port == \"x\"'\n"
	const want = "Router Expression failed validation: Type mismatch between the LHS and RHS values of predicate"

	g, base := startAdmin(t, fmt.Sprintf("router_flavor = expressions\nstream_listen = 127.0.0.1:%d\n", p), good)
	writeFile(t, g.ymlPath, bad)
	if err := g.srv.Reload(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("reload with a bad expression: %v; want %q", err, want)
	}
	code, body := postConfig(t, base, "?flatten_errors=1", bad)
	flat, _ := body["flattened_errors"].([]any)
	if code != 400 || len(flat) != 1 || !strings.Contains(fmt.Sprint(flat[0]), "entity_name:typo") ||
		!strings.Contains(fmt.Sprint(flat[0]), want) {
		t.Errorf("POST /config with a bad expression = %d %v", code, body)
	}
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil || got != "a: x" {
		t.Errorf("after the refused configurations: %q, %v", got, err)
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "good.yml"), good)
	writeFile(t, filepath.Join(dir, "bad.yml"), bad)
	writeFile(t, filepath.Join(dir, "good.conf"), "database = off\nrouter_flavor = expressions\ndeclarative_config = "+filepath.Join(dir, "good.yml")+"\n")
	if out, errOut, code := runGong(t, dir, nil, "check", "good.conf"); code != 0 {
		t.Errorf("check good.conf: exit %d, %q %q", code, out, errOut)
	}
	if _, errOut, code := runGong(t, dir, nil, "config", "parse", "-c", "good.conf", "bad.yml"); code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("config parse bad.yml: exit %d, %q", code, errOut)
	}
	// At start.
	writeFile(t, filepath.Join(dir, "start.conf"), fmt.Sprintf("prefix = %s\ndatabase = off\nrouter_flavor = expressions\n"+
		"declarative_config = %s\nstream_listen = 127.0.0.1:%d\nadmin_listen = off\nstatus_listen = off\n", dir, filepath.Join(dir, "bad.yml"), listenPort(t)))
	c, _, err := conf.Load(conf.Options{Path: filepath.Join(dir, "start.conf"), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := runtime.New(runtime.Options{Config: c, ErrorLog: io.Discard, Sockets: sockets})
	if err == nil {
		err = srv.Start()
		srv.Stop()
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("start with a bad expression: %v; want %q", err, want)
	}
}
