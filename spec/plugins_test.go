package spec

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixturePath is lua_package_path for the test plugins under fixtures/plugins.
func fixturePath(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("fixtures/plugins")
	if err != nil {
		t.Fatal(err)
	}
	return dir + "/?.lua;" + dir + "/?/init.lua"
}

func TestIPRestriction(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	pAllow, pDeny := listenPort(t), listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: e
    url: tcp://%s
    routes:
      - name: allowed
        protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: ip-restriction, config: {allow: [127.0.0.0/8]}}]
      - name: denied
        protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: ip-restriction, config: {deny: [127.0.0.1], status: 403}}]
`, echo, pAllow, pDeny)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", pAllow, pDeny), yml)
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pAllow), "x"); err != nil || got != "e: x" {
		t.Errorf("allowed client: %q, %v", got, err)
	}
	expectClosed(t, dial(t, fmt.Sprintf("127.0.0.1:%d", pDeny)))
	// Kong logs the refusal at warn, naming the address.
	g.waitErrLog(t, "the denial", "[ip-restriction] IP address not allowed: 127.0.0.1")
	for _, l := range strings.Split(g.errLog.String(), "\n") {
		if strings.Contains(l, "IP address not allowed") && !strings.Contains(l, "[warn]") {
			t.Errorf("the denial is not logged at warn: %s", l)
		}
	}
	statuses := map[string]int{}
	for _, l := range g.accessLines(t) {
		statuses[strings.Fields(l)[4]]++
	}
	if statuses["200"] != 1 || statuses["403"] != 1 {
		t.Errorf("access-log statuses %v; want one 200 and one 403", statuses)
	}
}

func TestFileLog(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	p := listenPort(t)
	logPath := filepath.Join(t.TempDir(), "file.log")
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: echo-service
    url: tcp://%s
    routes:
      - name: logged
        protocols: [tcp]
        destinations: [{port: %d}]
plugins:
  # Without protocols, file-log takes typedefs.protocols' default, the
  # http ones, and does not run in stream, as in Kong.
  - name: file-log
    protocols: [tcp]
    config: {path: %s}
`, echo, p, logPath)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	if _, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "hello"); err != nil {
		t.Fatal(err)
	}
	g.stop()
	lines := readLines(t, logPath)
	if len(lines) != 1 {
		t.Fatalf("file-log wrote %d lines; want 1:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if rec := checkRecord(t, []byte(lines[0])); len(rec.Tries) != 1 {
		t.Errorf("serialized record has %d tries; want 1\n%s", len(rec.Tries), lines[0])
	}
}

// TestPluginPhases uses the recorder fixture: preread and log run in
// order, kong.ctx.shared carries a value from preread to log, an exit
// ends the session with its body and status and the log phase still runs,
// and a handler error ends the session with 500.
func TestPluginPhases(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	pPass, pExit, pFail := listenPort(t), listenPort(t), listenPort(t)
	dir := t.TempDir()
	rec := func(name string) string { return filepath.Join(dir, name) }
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: e
    url: tcp://%s
    routes:
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: recorder, config: {path: %s}}]
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins:
          - {name: recorder, config: {path: %s, exit_status: 200, exit_body: "bye\n"}}
          - {name: ip-restriction, config: {deny: [127.0.0.1]}}
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: recorder, config: {path: %s, fail: true}}]
`, echo, pPass, rec("pass"), pExit, rec("exit"), pFail, rec("fail"))
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:%d\nplugins = bundled, recorder\nlua_package_path = %s\n",
		pPass, pExit, pFail, fixturePath(t)), yml)

	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pPass), "x"); err != nil || got != "e: x" {
		t.Errorf("through the recorder: %q, %v", got, err)
	}
	c := dial(t, fmt.Sprintf("127.0.0.1:%d", pExit))
	if body, err := io.ReadAll(c); err != nil || string(body) != "bye\n" {
		t.Errorf("exit(200, body): client read %q, %v; want the body, then the close", body, err)
	}
	expectClosed(t, dial(t, fmt.Sprintf("127.0.0.1:%d", pFail)))
	g.stop()

	want := map[string][]string{
		// init_worker ran on the VM, and configure saw the three recorders.
		"pass": {"leftover nil", "preread 127.0.0.1 true 3", "log kept 200"},
		// The exit skips ip-restriction (priority 990 < 1000), which would deny.
		"exit": {"leftover nil", "preread 127.0.0.1 true 3", "log kept 200"},
		"fail": {"leftover nil", "preread 127.0.0.1 true 3", "log kept 500"},
	}
	for name, lines := range want {
		if got := readLines(t, rec(name)); strings.Join(got, "|") != strings.Join(lines, "|") {
			t.Errorf("%s: recorded %q; want %q", name, got, lines)
		}
	}
	if !strings.Contains(g.errLog.String(), `plugin "recorder" preread phase`) || !strings.Contains(g.errLog.String(), "recorder was told to fail") {
		t.Errorf("the handler error is not logged with its plugin and phase:\n%s", g.errLog)
	}
}

func TestPluginConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "bad.yml"), `_format_version: "3.0"
plugins:
  - name: ip-restriction
    config: {status: "loud"}
  - name: file-log
    config: {path: "a*b"}
`)
	_, errOut, code := runGong(t, dir, nil, "config", "parse", "bad.yml")
	for _, want := range []string{
		"at least one of these fields must be non-empty: 'config.allow', 'config.deny'",
		"expected a number",
		"not a valid filename",
	} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("config parse: exit %d, stderr lacks %q:\n%s", code, want, errOut)
		}
	}
	writeFile(t, filepath.Join(dir, "kong.conf"), "plugins = bundled, missing-plugin\nlua_package_path = /nowhere/?.lua\n")
	_, errOut, code = runGong(t, dir, nil, "config", "parse", "bad.yml", "-c", "kong.conf")
	if code != 1 || !strings.Contains(errOut, "plugin 'missing-plugin' could not be found: no kong.plugins.missing-plugin.handler in /nowhere/kong/plugins/missing-plugin/handler.lua") {
		t.Errorf("missing plugin: exit %d, %q", code, errOut)
	}
}

// TestRunawayPluginIsContained runs a plugin that loops forever: its
// connection ends with 500 once the phase deadline passes, the error is
// logged, and other connections are served meanwhile; later connections
// on fresh VMs run normally.
func TestRunawayPluginIsContained(t *testing.T) {
	t.Parallel()
	g, looping := startRunaway(t, "loop: true", "")
	looping.SetDeadline(time.Now().Add(30 * time.Second))
	expectClosed(t, looping)
	if !strings.Contains(g.errLog.String(), `plugin "recorder" preread phase`) {
		t.Errorf("the runaway is not logged:\n%s", g.errLog)
	}
	g.expectPlainServed(t)
}

// TestRunawayAllocationIsContained runs a plugin that allocates without
// end: past lua_memory_limit it is stopped with "not enough memory" long
// before the phase deadline, its connection ends, and others are served.
func TestRunawayAllocationIsContained(t *testing.T) {
	t.Parallel()
	g, hog := startRunaway(t, "hog: true", "lua_memory_limit = 256m\n")
	// The log must say "not enough memory": the 10 s phase deadline, which
	// would log a timeout, must not be what stopped it. The client waits
	// longer than that so a slow machine shows which of the two it was.
	hog.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	expectClosed(t, hog)
	t.Logf("the runaway allocation was stopped after %v", time.Since(start))
	if log := g.errLog.String(); !strings.Contains(log, `plugin "recorder" preread phase`) || !strings.Contains(log, "not enough memory") {
		t.Errorf("the runaway allocation is not logged:\n%s", log)
	}
	g.expectPlainServed(t)
}

// TestHugeAllocationIsRefused runs plugins that ask for one allocation
// far past lua_memory_limit (1g, the default) in preread: 64 GiB, and
// 2 GiB. Each is refused with "not enough memory" before anything is
// allocated: the connection ends, the error is logged, and the process
// goes on serving.
func TestHugeAllocationIsRefused(t *testing.T) {
	t.Parallel()
	for _, exp := range []int{36, 31} {
		t.Run(fmt.Sprintf("2^%d", exp), func(t *testing.T) {
			g, huge := startRunaway(t, fmt.Sprintf("rep: %d", exp), "")
			huge.SetDeadline(time.Now().Add(8 * time.Second))
			expectClosed(t, huge)
			eventually(t, "the refusal in the error log", func() bool {
				log := g.errLog.String()
				return strings.Contains(log, `plugin "recorder" preread phase`) && strings.Contains(log, "not enough memory")
			})
			g.expectPlainServed(t)
		})
	}
}

// runawayGong is gong with two routes to an echo server: one whose
// recorder plugin runs away in preread (its config option set), and a
// plain one.
type runawayGong struct {
	*gong
	plain string
}

// startRunaway starts a runawayGong whose runaway recorder has the config
// option given ("loop: true"), and opens a connection to the runaway
// route; while it holds its VM, connections to the plain route go on.
func startRunaway(t *testing.T, option, confExtra string) (runawayGong, net.Conn) {
	t.Helper()
	echo := startEcho(t, "e")
	pRun, pPlain := listenPort(t), listenPort(t)
	dir := t.TempDir()
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: e
    url: tcp://%s
    routes:
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: recorder, config: {path: %s, %s}}]
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: recorder, config: {path: %s}}]
`, echo, pRun, filepath.Join(dir, "runaway"), option, pPlain, filepath.Join(dir, "plain"))
	g := runawayGong{startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\nplugins = bundled, recorder\nlua_package_path = %s\n",
		pRun, pPlain, fixturePath(t))+confExtra, yml), fmt.Sprintf("127.0.0.1:%d", pPlain)}
	runaway := dial(t, fmt.Sprintf("127.0.0.1:%d", pRun))
	for i := range 3 {
		if got, err := roundTrip(g.plain, "x"); err != nil || got != "e: x" {
			t.Fatalf("connection %d beside a runaway plugin: %q, %v", i, got, err)
		}
	}
	return g, runaway
}

// expectPlainServed checks the plain route still works once the runaway
// was stopped.
func (g runawayGong) expectPlainServed(t *testing.T) {
	t.Helper()
	if got, err := roundTrip(g.plain, "y"); err != nil || got != "e: y" {
		t.Errorf("after the runaway was stopped: %q, %v", got, err)
	}
}

// BenchmarkPluginConnection measures one connection, opened, echoed once
// and closed, through 0, 1 and 3 plugins (preread and log phases).
func BenchmarkPluginConnection(b *testing.B) {
	for _, n := range []int{0, 1, 2, 3} {
		b.Run(fmt.Sprintf("plugins=%d", n), func(b *testing.B) {
			echo := startEcho(b, "e")
			p := listenPort(b)
			dir := b.TempDir()
			plugins := []string{
				"{name: ip-restriction, config: {allow: [127.0.0.0/8]}}",
				fmt.Sprintf("{name: file-log, protocols: [tcp], config: {path: %s}}", filepath.Join(dir, "file.log")),
				fmt.Sprintf("{name: recorder, config: {path: %s}}", filepath.Join(dir, "rec")),
			}[:n]
			yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n  - name: e\n    url: tcp://%s\n    routes:\n      - protocols: [tcp]\n        destinations: [{port: %d}]\n        plugins: [%s]\n",
				echo, p, strings.Join(plugins, ", "))
			startGong(b, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nproxy_stream_access_log = off\nplugins = bundled, recorder\nlua_package_path = %s\n", p, fixturePath(b)), yml)
			addr := fmt.Sprintf("127.0.0.1:%d", p)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := roundTrip(addr, "x"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestUDPPlugins(t *testing.T) {
	t.Parallel()
	echo := startUDPEcho(t, "u")
	pAllow, pDeny := listenPort(t), listenPort(t)
	h, port := hostPort(echo)
	logPath := filepath.Join(t.TempDir(), "udp.log")
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: u
    url: udp://%s:%s
    routes:
      - name: open
        protocols: [udp]
        destinations: [{port: %d}]
        plugins: [{name: file-log, protocols: [udp], config: {path: %s}}]
      - name: closed
        protocols: [udp]
        destinations: [{port: %d}]
        plugins: [{name: ip-restriction, protocols: [udp], config: {deny: [127.0.0.0/8]}}]
`, h, port, pAllow, logPath, pDeny)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d udp, 127.0.0.1:%d udp\n", pAllow, pDeny), yml)
	c := dialUDP(t, fmt.Sprintf("127.0.0.1:%d", pAllow))
	io.WriteString(c, "ping")
	buf := make([]byte, 64)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "u: ping" {
		t.Errorf("UDP through file-log: %q, %v", buf[:n], err)
	}
	denied := dialUDP(t, fmt.Sprintf("127.0.0.1:%d", pDeny))
	denied.SetDeadline(time.Now().Add(500 * time.Millisecond))
	io.WriteString(denied, "ping")
	if n, err := denied.Read(buf); err == nil {
		t.Errorf("a denied UDP client got a reply: %q", buf[:n])
	}
	g.stop()
	if !strings.Contains(g.errLog.String(), "[ip-restriction] IP address not allowed") {
		t.Errorf("UDP denial not logged:\n%s", g.errLog)
	}
	if lines := readLines(t, logPath); len(lines) != 1 || !strings.Contains(lines[0], `"route":{`) {
		t.Errorf("file-log on UDP wrote %q\n%s", lines, g.errLog)
	}
}

// TestCertificatePhase: a global plugin's certificate handler runs during
// the TLS handshake, before its preread and log, as in Kong.
func TestCertificatePhase(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "plain")
	p := listenPort(t)
	path := filepath.Join(t.TempDir(), "rec")
	yml, _, _ := tlsConfig(t, echo, p)
	yml += fmt.Sprintf("plugins:\n  - {name: recorder, protocols: [tls], config: {path: %s}}\n", path)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\nplugins = bundled, recorder\nlua_package_path = %s\n", p, fixturePath(t)), yml)
	tlsEcho(t, p).Close()
	g.stop()
	want := []string{"certificate 127.0.0.1", "leftover nil", "preread 127.0.0.1 true 1", "log kept 200"}
	if got := readLines(t, path); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("recorded %q; want %q\n%s", got, want, g.errLog)
	}
}

// TestLegacyBasePlugin runs a plugin written in the BasePlugin style:
// the handler is an instance of its class, made once per VM.
func TestLegacyBasePlugin(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	p := listenPort(t)
	path := filepath.Join(t.TempDir(), "legacy")
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: e
    url: tcp://%s
    routes:
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: legacy, config: {path: %s}}]
`, echo, p, path)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nplugins = bundled, legacy\nlua_package_path = %s\n", p, fixturePath(t)), yml)
	for range 2 {
		if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil || got != "e: x" {
			t.Fatalf("through the legacy plugin: %q, %v", got, err)
		}
	}
	if got := readLines(t, path); strings.Join(got, "|") != "legacy legacy|legacy legacy" {
		t.Errorf("recorded %q; want the instance's name twice", got)
	}
}

// TestReqSocketPeek uses the sniffer fixture: peeked bytes are still
// proxied, a peek can end the session, and received bytes are consumed.
// The fixture also requires a module from lua_package_path.
func TestReqSocketPeek(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	pPeek, pConsume := listenPort(t), listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: e
    url: tcp://%s
    routes:
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: sniffer}]
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: sniffer, config: {consume: 4}}]
`, echo, pPeek, pConsume)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\nplugins = bundled, sniffer\nlua_package_path = %s\n",
		pPeek, pConsume, fixturePath(t)), yml)
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pPeek), "hello"); err != nil || got != "e: hello" {
		t.Errorf("peeked connection: %q, %v; want the whole line proxied", got, err)
	}
	c := dial(t, fmt.Sprintf("127.0.0.1:%d", pPeek))
	io.WriteString(c, "deny me\n")
	expectClosed(t, c)
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pConsume), "skiphello"); err != nil || got != "e: hello" {
		t.Errorf("consuming connection: %q, %v; want the rest proxied", got, err)
	}
	if strings.Contains(g.errLog.String(), "[error]") {
		t.Errorf("errors logged:\n%s", g.errLog)
	}
}

// TestPluginProtocolsOwnSchema: a plugin entity's protocols are checked
// against the plugin's own protocols field, so a plugin whose schema uses
// typedefs.protocols_http (as Kong's request-termination does) is refused
// for tcp with Kong's message, and accepted for http.
func TestPluginProtocolsOwnSchema(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kong.conf"), fmt.Sprintf("plugins = bundled, http-only\nlua_package_path = %s\n", fixturePath(t)))
	writeFile(t, filepath.Join(dir, "tcp.yml"), `_format_version: "3.0"
plugins:
  - name: http-only
    protocols: [http, tcp]
`)
	_, errOut, code := runGong(t, dir, nil, "config", "parse", "tcp.yml", "-c", "kong.conf")
	if code != 1 || !strings.Contains(errOut, "expected one of: grpc, grpcs, http, https") || !strings.Contains(errOut, "protocols") {
		t.Errorf("protocols [http, tcp]: exit %d, stderr %q; want Kong's one_of error on protocols", code, errOut)
	}
	writeFile(t, filepath.Join(dir, "http.yml"), `_format_version: "3.0"
plugins:
  - name: http-only
    protocols: [http]
`)
	if _, errOut, code := runGong(t, dir, nil, "config", "parse", "http.yml", "-c", "kong.conf"); code != 0 {
		t.Errorf("protocols [http]: exit %d, stderr %q", code, errOut)
	}
}
