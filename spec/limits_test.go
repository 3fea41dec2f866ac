package spec

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/gong-proxy/gong/internal/testsvc"
	"github.com/gong-proxy/gong/runtime/limits"
)

// limitYML is one echo service with a TCP route "r" on port, carrying
// plugin (a flow-style plugin entry) and file-log to logPath.
func limitYML(echo string, port int, plugin, logPath string) string {
	return fmt.Sprintf(`_format_version: "3.0"
services:
  - name: e
    url: tcp://%s
    routes:
      - name: r
        protocols: [tcp]
        destinations: [{port: %d}]
        plugins:
          - %s
          - {name: file-log, protocols: [tcp], config: {path: %s}}
`, echo, port, plugin, logPath)
}

// countingEcho is an echo upstream ("e: " + line) that counts the
// connections it accepted.
func countingEcho(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	addr := serveConns(t, ln, func(c net.Conn, _ int) {
		n.Add(1)
		defer c.Close()
		eachLine(c, func(line string) bool {
			_, err := io.WriteString(c, "e: "+line+"\n")
			return err == nil
		})
	})
	return addr, &n
}

// awaitMinuteRoom returns when at least 5 seconds are left in the
// current UTC minute, so a test's sessions fall in one minute window.
func awaitMinuteRoom() {
	if left := 60 - time.Now().Second(); left < 5 {
		time.Sleep(time.Duration(left+1) * time.Second) // the window's start is a clock time, not an event
	}
}

// tryEcho opens a connection and reports whether it was proxied (the
// echo answered) or refused (closed without an answer).
func tryEcho(t *testing.T, addr string) bool {
	t.Helper()
	got, err := roundTrip(addr, "x")
	return err == nil && got == "e: x"
}

// statusCounts counts the session statuses of file-log's records
// (kong.log.serialize's session.status), once n sessions were logged.
func statusCounts(t *testing.T, path string, n int) map[int]int {
	t.Helper()
	eventually(t, fmt.Sprintf("%d file-log records", n), func() bool {
		data, _ := os.ReadFile(path)
		return strings.Count(string(data), "\n") >= n
	})
	counts := map[int]int{}
	for _, line := range readLines(t, path) {
		var rec struct {
			Session struct{ Status int } `json:"session"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("file-log record %q: %v", line, err)
		}
		counts[rec.Session.Status]++
	}
	return counts
}

// accessStatuses counts the statuses of the access log's lines.
func accessStatuses(t *testing.T, g *gong) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, l := range g.accessLines(t) {
		counts[strings.Fields(l)[4]]++
	}
	return counts
}

// TestRateLimitingPerMinuteRefusesTheExcess: 8 connections on a limit of
// 5 per minute: 3 refused with 429 in the access log, file-log's
// session.status and /metrics, before any upstream is dialled.
func TestRateLimitingPerMinuteRefusesTheExcess(t *testing.T) {
	t.Parallel()
	echo, dialled := countingEcho(t)
	p := listenPort(t)
	logPath := filepath.Join(t.TempDir(), "file.log")
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p),
		limitYML(echo, p, "{name: rate-limiting, config: {minute: 5, policy: local}}", logPath))
	metrics := httptest.NewServer(g.srv.MetricsHandler())
	defer metrics.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	awaitMinuteRoom()
	proxied := 0
	for range 8 {
		if tryEcho(t, addr) {
			proxied++
		}
	}
	if proxied != 5 || dialled.Load() != 5 {
		t.Fatalf("%d of 8 proxied, %d upstream connections, on a limit of 5 per minute", proxied, dialled.Load())
	}
	if got := statusCounts(t, logPath, 8); got[200] != 5 || got[429] != 3 {
		t.Errorf("file-log session.status counts %v; want 5×200 and 3×429", got)
	}
	waitForMetrics(t, metrics.URL, "3 refusals", func(f map[string]*dto.MetricFamily) bool {
		return value(f, "gong_limit_refusals_total", "plugin=rate-limiting", "route=r", "reason=limit") == 3
	})
	if got := accessStatuses(t, g); got["200"] != 5 || got["429"] != 3 {
		t.Errorf("access-log statuses %v; want 5×200 and 3×429", got)
	}
}

// TestRateLimitingPerSecond: 5 connections within one second on a limit
// of 3 per second: exactly 2 refused; the next second has room again.
func TestRateLimitingPerSecond(t *testing.T) {
	t.Parallel()
	echo, _ := countingEcho(t)
	p := listenPort(t)
	logPath := filepath.Join(t.TempDir(), "file.log")
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p),
		limitYML(echo, p, "{name: rate-limiting, config: {second: 3, error_code: 499}}", logPath))
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	sessions, proxiedInAll := 0, 0
	proxied := inOneSecond(t, func() int {
		n := 0
		for range 5 {
			if tryEcho(t, addr) {
				n++
			}
		}
		sessions, proxiedInAll = sessions+5, proxiedInAll+n
		return n
	})
	if proxied != 3 {
		t.Fatalf("%d of 5 proxied on a limit of 3 per second", proxied)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 20*time.Millisecond))) // the next window
	if !tryEcho(t, addr) {
		t.Fatal("refused in the next second")
	}
	sessions, proxiedInAll = sessions+1, proxiedInAll+1
	if got := statusCounts(t, logPath, sessions); got[200] != proxiedInAll || got[499] != sessions-proxiedInAll {
		t.Errorf("session.status counts %v; want %d×200 and %d×499 (error_code, recorded as configured)", got, proxiedInAll, sessions-proxiedInAll)
	}
}

// inOneSecond runs burst just after a wall-clock second begins (a
// per-second window) and returns its result, trying again in a later
// second, up to ten times, when the burst ran into the next second.
func inOneSecond(t *testing.T, burst func() int) int {
	t.Helper()
	for range 10 {
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 20*time.Millisecond))) // aligns to the clock; not a synchronisation
		second := time.Now().Unix()
		n := burst()
		if time.Now().Unix() == second {
			return n
		}
	}
	t.Fatal("ten bursts each ran into the next second: this machine is too slow for a per-second window")
	return 0
}

// TestRateLimitingUDP counts new UDP sessions: 4 clients on a limit of 2
// per minute: 2 answered, 2 ended with 429 before the upstream.
func TestRateLimitingUDP(t *testing.T) {
	t.Parallel()
	echo := startUDPEcho(t, "u")
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: u
    url: udp://%s
    routes:
      - name: ur
        protocols: [udp]
        destinations: [{port: %d}]
        plugins: [{name: rate-limiting, config: {minute: 2, limit_by: route}}]
`, echo, p)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d udp\n", p), yml)
	awaitMinuteRoom()
	answered := 0
	for range 4 {
		c := dialUDP(t, fmt.Sprintf("127.0.0.1:%d", p))
		io.WriteString(c, "hi")
		c.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 64)
		if n, err := c.Read(buf); err == nil && string(buf[:n]) == "u: hi" {
			answered++
		}
	}
	if answered != 2 {
		t.Fatalf("%d of 4 UDP sessions answered on a limit of 2\n%s", answered, g.errLog)
	}
	g.waitSessionsEnded(t, 2)
	if got := accessStatuses(t, g); got["429"] != 2 {
		t.Errorf("access-log statuses %v; want 2×429", got)
	}
}

// redisPlugin is a flow-style plugin entry using the Redis at port.
func redisPlugin(name, config string, port int) string {
	return fmt.Sprintf("{name: %s, config: {%s, policy: redis, redis: {host: 127.0.0.1, port: %d, timeout: 500}}}", name, config, port)
}

// TestRateLimitingSharedByTwoNodes: two nodes on one Redis share the
// limit: 5 connections to each on 6 per minute, 4 refused in all.
func TestRateLimitingSharedByTwoNodes(t *testing.T) {
	t.Parallel()
	srv := testsvc.StartRedis(t)
	echo, _ := countingEcho(t)
	awaitMinuteRoom()
	proxied := 0
	for range 2 {
		p := listenPort(t)
		startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p),
			limitYML(echo, p, redisPlugin("rate-limiting", "minute: 6", srv.Port), filepath.Join(t.TempDir(), "f.log")))
		for range 5 {
			if tryEcho(t, fmt.Sprintf("127.0.0.1:%d", p)) {
				proxied++
			}
		}
	}
	if proxied != 6 {
		t.Fatalf("%d of 10 proxied by two nodes sharing a limit of 6", proxied)
	}
}

// TestRateLimitingRedisDown: with Redis stopped, fault_tolerant lets
// sessions through (the error logged once), and without it they end
// with 500.
func TestRateLimitingRedisDown(t *testing.T) {
	t.Parallel()
	srv := testsvc.StartRedis(t)
	echo, _ := countingEcho(t)
	pTolerant, pStrict := listenPort(t), listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: e
    url: tcp://%s
    routes:
      - name: tolerant
        protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [%s]
      - name: strict
        protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [%s]
`, echo, pTolerant, redisPlugin("rate-limiting", "hour: 100", srv.Port),
		pStrict, redisPlugin("rate-limiting", "hour: 100, fault_tolerant: false", srv.Port))
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", pTolerant, pStrict), yml)
	metrics := httptest.NewServer(g.srv.MetricsHandler())
	defer metrics.Close()
	tolerant, strict := fmt.Sprintf("127.0.0.1:%d", pTolerant), fmt.Sprintf("127.0.0.1:%d", pStrict)
	if !tryEcho(t, tolerant) || !tryEcho(t, strict) {
		t.Fatal("refused with Redis up")
	}
	srv.Stop()
	for range 3 {
		if !tryEcho(t, tolerant) {
			t.Fatal("fault_tolerant refused a session with Redis down")
		}
		if tryEcho(t, strict) {
			t.Fatal("fault_tolerant=false let a session through with Redis down")
		}
	}
	waitForMetrics(t, metrics.URL, "3 store errors", func(f map[string]*dto.MetricFamily) bool {
		return value(f, "gong_limit_refusals_total", "route=strict", "reason=store_error") == 3
	})
	if n := strings.Count(g.errLog.String(), "counter store redis 127.0.0.1:"); n != 1 {
		t.Errorf("the store error was logged %d times, want once per interval:\n%s", n, g.errLog)
	}
	if got := accessStatuses(t, g); got["500"] != 3 || got["200"] != 5 {
		t.Errorf("access-log statuses %v; want 3×500 and 5×200", got)
	}
}

// TestLimitConnLocal: at most 2 connections in progress; the third is
// ended with 503, and closing one makes room.
func TestLimitConnLocal(t *testing.T) {
	t.Parallel()
	echo, _ := countingEcho(t)
	p := listenPort(t)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p),
		limitYML(echo, p, "{name: limit-conn, config: {max_connections: 2}}", filepath.Join(t.TempDir(), "f.log")))
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	var held []net.Conn
	for range 2 {
		c := dial(t, addr)
		if got, err := exchange(c, "x"); err != nil || got != "e: x" {
			t.Fatalf("held connection: %q, %v", got, err)
		}
		held = append(held, c)
	}
	if tryEcho(t, addr) {
		t.Fatal("a third connection got through max_connections 2")
	}
	held[0].Close()
	eventually(t, "room after a close", func() bool { return tryEcho(t, addr) })
	held[1].Close()
	g.waitSessionsEnded(t, 4)
	if got := accessStatuses(t, g); got["503"] < 1 {
		t.Errorf("access-log statuses %v; want a 503", got)
	}
}

// TestLimitConnAcrossNodes: max_connections 1 shared through Redis by a
// gong process and an in-process node; once the process is killed
// (SIGKILL, nothing released), its connection stops counting within
// limits.NodeTTL.
func TestLimitConnAcrossNodes(t *testing.T) {
	t.Parallel()
	srv := testsvc.StartRedis(t)
	echo, _ := countingEcho(t)
	plugin := redisPlugin("limit-conn", "max_connections: 1, limit_by: global", srv.Port)

	dir := t.TempDir()
	pA, socket := activationSocket(t)
	writeFile(t, filepath.Join(dir, "kong.conf"), fmt.Sprintf("prefix = %s\ndatabase = off\ndeclarative_config = %s\n"+
		"stream_listen = 127.0.0.1:%d\nadmin_listen = off\nstatus_listen = off\n", filepath.Join(dir, "prefix"), filepath.Join(dir, "kong.yml"), pA))
	writeFile(t, filepath.Join(dir, "kong.yml"), limitYML(echo, pA, plugin, filepath.Join(dir, "a.log")))
	a := exec.Command(gongBinary(t), "start", "-c", "kong.conf")
	a.Dir = dir
	activate(a, socket)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Process.Kill(); a.Wait() })
	addrA := fmt.Sprintf("127.0.0.1:%d", pA)
	var held net.Conn
	eventually(t, "node A proxies", func() bool {
		c, err := net.DialTimeout("tcp", addrA, time.Second)
		if err != nil {
			return false
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if got, err := exchange(c, "x"); err != nil || got != "e: x" {
			c.Close()
			return false
		}
		held = c
		return true
	})
	defer held.Close()

	pB := listenPort(t)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", pB),
		limitYML(echo, pB, plugin, filepath.Join(t.TempDir(), "b.log")))
	addrB := fmt.Sprintf("127.0.0.1:%d", pB)
	if tryEcho(t, addrB) {
		t.Fatal("node B let a second connection through a shared max_connections 1")
	}
	a.Process.Signal(syscall.SIGKILL)
	a.Wait()
	killed := time.Now()
	for !tryEcho(t, addrB) {
		if time.Since(killed) > limits.NodeTTL+time.Second {
			t.Fatalf("the killed node's connection still counted %v later (bound %v)", time.Since(killed), limits.NodeTTL)
		}
		time.Sleep(100 * time.Millisecond) // polling, bounded by the check above
	}
	t.Logf("released %v after the kill", time.Since(killed).Round(time.Millisecond))
}

// TestLimitPluginSchemas: Kong's entries load where their fields make
// sense for stream (the deprecated redis_* fields included); what stream
// cannot do is refused with the reason.
func TestLimitPluginSchemas(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kong.yml"), `_format_version: "3.0"
plugins:
  - name: rate-limiting
    protocols: [tcp, tls, udp]
    config: {minute: 10, hour: 100, limit_by: ip, policy: redis, redis_host: 127.0.0.1, redis_port: 6380, redis_timeout: 100, fault_tolerant: true, hide_client_headers: false}
  - name: limit-conn
    config: {max_connections: 10}
`)
	if _, errOut, code := runGong(t, dir, nil, "config", "parse", "kong.yml"); code != 0 {
		t.Errorf("Kong's rate-limiting entry: exit %d\n%s", code, errOut)
	}
	writeFile(t, filepath.Join(dir, "bad.yml"), `_format_version: "3.0"
plugins:
  - name: rate-limiting
    config: {minute: 10, limit_by: consumer}
  - name: limit-conn
    config: {max_connections: 1, policy: cluster}
  - name: bandwidth-limit
    config: {burst: 10}
services:
  - name: s
    url: tcp://127.0.0.1:9
    plugins:
      - name: rate-limiting
        config: {minute: 10, policy: cluster}
`)
	_, errOut, code := runGong(t, dir, nil, "config", "parse", "bad.yml")
	for _, want := range []string{
		"limit_by 'consumer' is not supported for stream sessions: stream connections have no consumer",
		"policy 'cluster' keeps its counters in the PostgreSQL database of database mode, which this node does not run (database = off)",
		"policy 'cluster' is not supported by limit-conn",
		"at least one of these fields must be non-empty: 'config.downstream_rate', 'config.upstream_rate', 'config.aggregate_rate'",
	} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("exit %d, stderr lacks %q:\n%s", code, want, errOut)
		}
	}
}

// BenchmarkLimitConnection measures one connection, opened, echoed once
// and closed, through a route without a limit and with each limit
// plugin and store (limits high enough never to refuse).
func BenchmarkLimitConnection(b *testing.B) {
	srv := testsvc.StartRedis(b)
	for _, c := range []struct{ name, plugin string }{
		{"none", ""},
		{"rate-limiting-local", "{name: rate-limiting, config: {second: 1000000000, minute: 1000000000}}"},
		{"rate-limiting-redis", redisPlugin("rate-limiting", "second: 1000000000, minute: 1000000000", srv.Port)},
		{"rate-limiting-redis-sync_rate", redisPlugin("rate-limiting", "second: 1000000000, sync_rate: 1", srv.Port)},
		{"limit-conn-local", "{name: limit-conn, config: {max_connections: 1000000}}"},
		{"limit-conn-redis", redisPlugin("limit-conn", "max_connections: 1000000", srv.Port)},
	} {
		b.Run(c.name, func(b *testing.B) {
			echo := startEcho(b, "e")
			p := listenPort(b)
			yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n  - name: e\n    url: tcp://%s\n    routes:\n      - protocols: [tcp]\n        destinations: [{port: %d}]\n        plugins: [%s]\n",
				echo, p, c.plugin)
			startGong(b, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nproxy_stream_access_log = off\n", p), yml)
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

// TestLimitsModuleInAUserPlugin: a plugin of the user's own counts on
// gong.limits (limits.store, store:hit, limits.ids) and refuses with its
// own status and reason.
func TestLimitsModuleInAUserPlugin(t *testing.T) {
	t.Parallel()
	echo, _ := countingEcho(t)
	p := listenPort(t)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nplugins = bundled, route-quota\nlua_package_path = %s\n", p, fixturePath(t)),
		limitYML(echo, p, "{name: route-quota, config: {per_minute: 2}}", filepath.Join(t.TempDir(), "f.log")))
	metrics := httptest.NewServer(g.srv.MetricsHandler())
	defer metrics.Close()
	awaitMinuteRoom()
	proxied := 0
	for range 3 {
		if tryEcho(t, fmt.Sprintf("127.0.0.1:%d", p)) {
			proxied++
		}
	}
	if proxied != 2 {
		t.Fatalf("%d of 3 proxied on a quota of 2\n%s", proxied, g.errLog)
	}
	waitForMetrics(t, metrics.URL, "the plugin's refusal", func(f map[string]*dto.MetricFamily) bool {
		return value(f, "gong_limit_refusals_total", "plugin=route-quota", "route=r", "reason=quota") == 1
	})
	if got := accessStatuses(t, g); got["403"] != 1 {
		t.Errorf("access-log statuses %v; want one 403", got)
	}
}

// TestLimitsAfterALuaPlugin: a Lua preread plugin of higher priority
// (counter, 1000) runs before rate-limiting (910), so it sees every
// session, the refused ones included; the limit still holds, here by
// service.
func TestLimitsAfterALuaPlugin(t *testing.T) {
	echo, _ := countingEcho(t)
	p, pReport := listenPort(t), listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: e
    url: tcp://%s
    plugins:
      - {name: rate-limiting, config: {minute: 2, limit_by: service}}
    routes:
      - name: r
        protocols: [tcp]
        destinations: [{port: %d}]
        plugins:
          - {name: counter, config: {dict: hits}}
  - name: report
    url: tcp://%s
    routes:
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: counter, config: {dict: hits, report: true}}]
`, echo, p, echo, pReport)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\nplugins = bundled, counter\nlua_package_path = %s\nnginx_stream_lua_shared_dict = hits 1m\n",
		p, pReport, fixturePath(t)), yml)
	awaitMinuteRoom()
	proxied := 0
	for range 4 {
		if tryEcho(t, fmt.Sprintf("127.0.0.1:%d", p)) {
			proxied++
		}
	}
	if proxied != 2 {
		t.Fatalf("%d of 4 proxied on a limit of 2 per minute", proxied)
	}
	c := dial(t, fmt.Sprintf("127.0.0.1:%d", pReport))
	if got, err := exchangeRead(c); err != nil || got != "4" {
		t.Fatalf("the plugin before rate-limiting counted %q, %v; want all 4 sessions", got, err)
	}
}
