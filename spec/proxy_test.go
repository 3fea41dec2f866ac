package spec

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gong-proxy/gong/internal/testsvc"
)

func TestRoutesByDestinationPort(t *testing.T) {
	t.Parallel()
	a, b := startEcho(t, "a"), startEcho(t, "b")
	pa, pb := listenPort(t), listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
%s%s`,
		svc("a", a, "", fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{port: %d}]\n", pa)),
		svc("b", b, "", fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{ip: 127.0.0.1, port: %d}]\n", pb)))
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", pa, pb), yml)
	for port, want := range map[int]string{pa: "a: hi", pb: "b: hi"} {
		got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", port), "hi")
		if err != nil || got != want {
			t.Errorf("port %d answered %q, %v; want %q", port, got, err, want)
		}
	}
}

func TestRoutesBySource(t *testing.T) {
	t.Parallel()
	a, b := startEcho(t, "by-source"), startEcho(t, "by-port")
	p := listenPort(t)
	// A source match outranks a destination-only match.
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
%s%s`,
		svc("src", a, "", "      - protocols: [tcp]\n        sources: [{ip: 127.0.0.0/8}]\n"),
		svc("dst", b, "", fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{port: %d}]\n", p)))
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x")
	if err != nil || got != "by-source: x" {
		t.Errorf("answer %q, %v; want by-source: x", got, err)
	}
}

func TestNoRouteAndNoService(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	pNone, pNoSvc := listenPort(t), listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
%sroutes:
  - name: orphan
    protocols: [tcp]
    destinations: [{port: %d}]
`, svc("e", echo, "", "      - protocols: [tcp]\n        destinations: [{port: 1}]\n"), pNoSvc)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", pNone, pNoSvc), yml)

	expectClosed(t, dial(t, fmt.Sprintf("127.0.0.1:%d", pNone)))
	expectClosed(t, dial(t, fmt.Sprintf("127.0.0.1:%d", pNoSvc)))
	logs := g.errLog.String()
	if !strings.Contains(logs, "[error]") || !strings.Contains(logs, fmt.Sprintf("no Route found with those values, client: 127.0.0.1, server: 127.0.0.1:%d", pNone)) {
		t.Errorf("error log lacks the no-route line:\n%s", logs)
	}
	if !strings.Contains(logs, "[warn]") || !strings.Contains(logs, "no Service found with those values") {
		t.Errorf("error log lacks the no-service line:\n%s", logs)
	}
	statuses := map[string]bool{}
	for _, l := range g.accessLines(t) {
		statuses[strings.Fields(l)[4]] = true
	}
	if !statuses["500"] || !statuses["503"] {
		t.Errorf("access-log statuses %v; want 500 and 503", statuses)
	}
}

func TestAccessLogBasicFormat(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := echoYML("e", echo, p)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "hello"); err != nil || got != "e: hello" {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	lines := g.accessLines(t)
	// $remote_addr [$time_local] $protocol $status $bytes_sent $bytes_received $session_time
	re := regexp.MustCompile(`^127\.0\.0\.1 \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] TCP 200 9 6 \d+\.\d{3}$`)
	if len(lines) != 1 || !re.MatchString(lines[0]) {
		t.Errorf("access log %q; want one basic line matching %s", lines, re)
	}
}

func TestCustomLogFormat(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := echoYML("e", echo, p)
	dir := t.TempDir()
	custom := dir + "/custom.log"
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nnginx_stream_log_format = mine '$protocol|$status|$upstream_addr|$server_port'\nproxy_stream_access_log = %s mine\n", p, custom), yml)
	if _, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil {
		t.Fatal(err)
	}
	g.stop()
	data, _ := os.ReadFile(custom)
	if want := fmt.Sprintf("TCP|200|%s|%d\n", echo, p); string(data) != want {
		t.Errorf("custom access log %q; want %q", data, want)
	}
}

func TestRetryAfterRefusedTarget(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "alive")
	dead := testsvc.RefusedAddr(t) // nothing listens there
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
upstreams:
  - name: pool
    targets:
      - target: %s
      - target: %s
services:
  - name: s
    protocol: tcp
    host: pool
    retries: 1
    routes:
      - protocols: [tcp]
        destinations: [{port: %d}]
`, dead, echo, p)
	tries := filepath.Join(t.TempDir(), "tries.log")
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n"+
		"nginx_stream_log_format = tries '$upstream_addr|$upstream_connect_time|$upstream_bytes_sent|$upstream_bytes_received|$upstream_first_byte_time|$upstream_session_time'\n"+
		"proxy_stream_access_log = %s tries\n", p, tries), yml)
	for i := range 4 {
		if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil || got != "alive: x" {
			t.Fatalf("connection %d: %q, %v; want alive: x", i, got, err)
		}
	}
	if !strings.Contains(g.errLog.String(), fmt.Sprintf(`while connecting to upstream, client: 127.0.0.1, server: 127.0.0.1:%d, upstream: "%s"`, p, dead)) {
		t.Errorf("no connect failure logged for the dead target:\n%s", g.errLog)
	}
	// nginx's per-try values: "-" and 0 bytes for the refused try.
	g.stop()
	retried := regexp.MustCompile(`^` + regexp.QuoteMeta(dead+", "+echo) + `\|-, \d+\.\d{3}\|0, 2\|0, 9\|-, \d+\.\d{3}\|\d+\.\d{3}, \d+\.\d{3}$`)
	direct := regexp.MustCompile(`^` + regexp.QuoteMeta(echo) + `\|\d+\.\d{3}\|2\|9\|\d+\.\d{3}\|\d+\.\d{3}$`)
	lines := readLines(t, tries)
	n := 0
	for _, l := range lines {
		switch {
		case retried.MatchString(l):
			n++
		case !direct.MatchString(l):
			t.Errorf("access-log line %q is neither a retried nor a direct session", l)
		}
	}
	if len(lines) != 4 || n == 0 {
		t.Errorf("access log %q; want 4 lines, one at least retried after the refused target", lines)
	}
}

func TestAllTriesFailIs502(t *testing.T) {
	t.Parallel()
	dead := testsvc.RefusedAddr(t)
	p := listenPort(t)
	yml := "_format_version: \"3.0\"\nservices:\n" + svc("s", dead, "    retries: 2\n", fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{port: %d}]\n", p))
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	expectClosed(t, dial(t, fmt.Sprintf("127.0.0.1:%d", p)))
	if n := strings.Count(g.errLog.String(), "connect() failed"); n != 3 {
		t.Errorf("%d connect failures logged; want 3 (1 + retries)", n)
	}
	if l := g.accessLines(t); len(l) != 1 || strings.Fields(l[0])[4] != "502" {
		t.Errorf("access log %q; want status 502", l)
	}
}

func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	hang := testsvc.HangingAddr(t).String()
	p := listenPort(t)
	yml := "_format_version: \"3.0\"\nservices:\n" + svc("s", hang, "    retries: 0\n    connect_timeout: 300\n", fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{port: %d}]\n", p))
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	start := time.Now()
	expectClosed(t, dial(t, fmt.Sprintf("127.0.0.1:%d", p)))
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("closed after %v; want at least the 300ms connect_timeout", took)
	}
	if !strings.Contains(g.errLog.String(), "upstream timed out") {
		t.Errorf("no timeout logged:\n%s", g.errLog)
	}
}

func TestIdleTimeout(t *testing.T) {
	// Not parallel: its timeouts are a few hundred milliseconds, which a loaded machine can stretch.
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := "_format_version: \"3.0\"\nservices:\n" + svc("s", echo, "    read_timeout: 400\n    write_timeout: 200\n", fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{port: %d}]\n", p))
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	c := dial(t, fmt.Sprintf("127.0.0.1:%d", p))
	// gong's last byte is its relay of the reply, which happens after the
	// request leaves and before the reply arrives here: measuring from the
	// request keeps a slow client from making gong look early.
	sent := time.Now()
	if got, err := exchange(c, "a"); err != nil || got != "e: a" {
		t.Fatalf("exchange: %q, %v", got, err)
	}
	expectClosed(t, c)
	// Idle is max(read_timeout, write_timeout) = 400ms after the last byte.
	if idle := time.Since(sent); idle < 400*time.Millisecond {
		t.Errorf("closed after %v idle; want at least 400ms", idle)
	}
}

func TestActiveConnectionIsNotIdle(t *testing.T) {
	// Not parallel: its idle timeout is 300 ms, which a loaded machine can stretch.
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := "_format_version: \"3.0\"\nservices:\n" + svc("s", echo, "    read_timeout: 300\n    write_timeout: 300\n", fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{port: %d}]\n", p))
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	c := dial(t, fmt.Sprintf("127.0.0.1:%d", p))
	// Keep exchanging for well over the idle timeout; the connection must
	// stay up because bytes keep moving.
	deadline := time.Now().Add(1200 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		got, err := exchange(c, fmt.Sprint(i))
		if err != nil || got != fmt.Sprintf("e: %d", i) {
			t.Fatalf("exchange %d after %v: %q, %v", i, time.Since(deadline.Add(-1200*time.Millisecond)), got, err)
		}
		time.Sleep(50 * time.Millisecond) // pacing the client, not synchronising
	}
}

// TestHalfClose: with nginx_sproxy_proxy_half_close = on, a client that
// half-closes still reads the answer its EOF asked for.
func TestHalfClose(t *testing.T) {
	t.Parallel()
	// The upstream reads until EOF, then answers and closes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		data, _ := io.ReadAll(c)
		io.WriteString(c, "got "+string(data))
	}()
	p := listenPort(t)
	yml := echoYML("s", ln.Addr().String(), p)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nnginx_sproxy_proxy_half_close = on\n", p), yml)
	c := dial(t, fmt.Sprintf("127.0.0.1:%d", p))
	io.WriteString(c, "request")
	c.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(c)
	if err != nil || string(reply) != "got request" {
		t.Errorf("after half-close the client read %q, %v; want %q", reply, err, "got request")
	}
}

func TestUDPInterleavedClients(t *testing.T) {
	t.Parallel()
	echo := startUDPEcho(t, "u")
	p := listenPort(t)
	h, port := hostPort(echo)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: u
    url: udp://%s:%s
    routes:
      - protocols: [udp]
        destinations: [{port: %d}]
`, h, port, p)
	logPath := filepath.Join(t.TempDir(), "udp.log")
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d udp\n"+
		"nginx_stream_log_format = udp '$protocol $status $bytes_sent $bytes_received $upstream_connect_time $upstream_first_byte_time $upstream_session_time'\n"+
		"proxy_stream_access_log = %s udp\n", p, logPath), yml)
	const clients, rounds = 5, 4
	conns := make([]net.Conn, clients)
	for i := range conns {
		conns[i] = dialUDP(t, fmt.Sprintf("127.0.0.1:%d", p))
	}
	buf := make([]byte, 100)
	for r := range rounds {
		for i, c := range conns {
			fmt.Fprintf(c, "c%d-r%d", i, r)
		}
		for i, c := range conns {
			n, err := c.Read(buf)
			if want := fmt.Sprintf("u: c%d-r%d", i, r); err != nil || string(buf[:n]) != want {
				t.Fatalf("client %d round %d got %q, %v; want %q", i, r, buf[:n], err, want)
			}
		}
	}
	g.stop()
	lines := readLines(t, logPath)
	if len(lines) != clients {
		t.Fatalf("access log has %d lines; want one per UDP session (%d):\n%s", len(lines), clients, strings.Join(lines, "\n"))
	}
	// Bytes, then the upstream's connect, first-datagram and session times.
	want := regexp.MustCompile(`^UDP 200 32 20 \d+\.\d{3} \d+\.\d{3} \d+\.\d{3}$`)
	for _, l := range lines {
		if !want.MatchString(l) {
			t.Errorf("access line %q; want it to match %s", l, want)
		}
	}
}

func TestProxyProtocol(t *testing.T) {
	t.Parallel()
	fromProxy, direct := startEcho(t, "via-proxy-header"), startEcho(t, "direct")
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
%s%s`,
		svc("pp", fromProxy, "", "      - protocols: [tcp]\n        sources: [{ip: 203.0.113.7}]\n"),
		svc("d", direct, "", fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{port: %d}]\n", p)))
	v1 := "PROXY TCP4 203.0.113.7 127.0.0.1 5000 6000\r\n"
	v2 := "\r\n\r\n\x00\r\nQUIT\n" + "\x21\x11\x00\x0c" + "\xcb\x00\x71\x07" + "\x7f\x00\x00\x01" + "\x13\x88\x17\x70"
	tests := []struct {
		name    string
		trusted string
		header  string
		want    string
	}{
		{"v1 trusted", "127.0.0.1", v1, "via-proxy-header: x"},
		{"v2 trusted", "127.0.0.0/8", v2, "via-proxy-header: x"},
		{"v1 untrusted", "10.0.0.0/8", v1, "direct: x"},
		{"v2 untrusted", "", v2, "direct: x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := fmt.Sprintf("stream_listen = 127.0.0.1:%d proxy_protocol\n", p)
			if tt.trusted != "" {
				extra += "trusted_ips = " + tt.trusted + "\n"
			}
			g := startGong(t, extra, yml)
			c := dial(t, fmt.Sprintf("127.0.0.1:%d", p))
			io.WriteString(c, tt.header)
			if got, err := exchange(c, "x"); err != nil || got != tt.want {
				t.Errorf("answer %q, %v; want %q", got, err, tt.want)
			}
			g.stop()
		})
	}
}

// TestProxyProtocolClientAddresses: behind a trusted PROXY-protocol peer
// on a plain listener, as in Kong, kong.client.get_ip() is the peer
// itself and get_forwarded_ip() the client the header names; ip-restriction
// checks the forwarded client (binary_remote_addr) and rate-limiting's
// limit_by ip counts it (get_forwarded_ip).
func TestProxyProtocolClientAddresses(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	p := listenPort(t)
	logPath := filepath.Join(t.TempDir(), "addrs.log")
	yml := echoYML("e", echo, p) + fmt.Sprintf(`        plugins:
          - {name: ip-restriction, config: {allow: [203.0.113.0/24]}}
          - {name: rate-limiting, config: {hour: 1, limit_by: ip}}
          - name: file-log
            protocols: [tcp]
            config:
              path: %s
              custom_fields_by_lua: {ip: "return kong.client.get_ip()", forwarded: "return kong.client.get_forwarded_ip()"}
`, logPath)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d proxy_protocol\ntrusted_ips = 127.0.0.1\n", p), yml)
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	from := func(client string) (string, error) {
		c := dial(t, addr)
		defer c.Close()
		io.WriteString(c, "PROXY TCP4 "+client+" 127.0.0.1 5000 6000\r\n")
		return exchange(c, "x")
	}
	if got, err := from("203.0.113.7"); err != nil || got != "e: x" {
		t.Fatalf("a client ip-restriction allows, first in the hour: %q, %v", got, err)
	}
	if got, err := from("203.0.113.8"); err != nil || got != "e: x" {
		t.Errorf("another client, counted on its own: %q, %v", got, err)
	}
	if got, err := from("203.0.113.7"); err == nil {
		t.Errorf("the first client again, over rate-limiting's hour: %q; want the connection closed", got)
	}
	if got, err := from("198.51.100.1"); err == nil {
		t.Errorf("a client ip-restriction does not allow: %q; want the connection closed", got)
	}
	var lines []string
	eventually(t, "four log lines", func() bool {
		data, _ := os.ReadFile(logPath)
		lines = strings.Split(strings.TrimSpace(string(data)), "\n")
		return len(lines) == 4
	})
	var forwarded []string
	for _, l := range lines {
		var rec struct{ IP, Forwarded string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if rec.IP != "127.0.0.1" {
			t.Errorf("kong.client.get_ip() = %q; want the PROXY peer, 127.0.0.1", rec.IP)
		}
		forwarded = append(forwarded, rec.Forwarded)
	}
	slices.Sort(forwarded)
	if want := []string{"198.51.100.1", "203.0.113.7", "203.0.113.7", "203.0.113.8"}; !slices.Equal(forwarded, want) {
		t.Errorf("kong.client.get_forwarded_ip() = %q; want %q", forwarded, want)
	}
}

func TestProxyProtocolBrokenHeader(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := echoYML("e", echo, p)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d proxy_protocol\nnginx_sproxy_proxy_protocol_timeout = 300ms\n", p), yml)
	addr := fmt.Sprintf("127.0.0.1:%d", p)

	garbage := dial(t, addr)
	io.WriteString(garbage, "GET / HTTP/1.1\r\n\r\n")
	expectClosed(t, garbage)

	slow := dial(t, addr) // sends nothing: the header timeout closes it
	expectClosed(t, slow)

	good := dial(t, addr)
	io.WriteString(good, "PROXY TCP4 127.0.0.1 127.0.0.1 1 2\r\n")
	if got, err := exchange(good, "ok"); err != nil || got != "e: ok" {
		t.Errorf("a good connection after broken ones: %q, %v", got, err)
	}
	if n := strings.Count(g.errLog.String(), "while reading PROXY protocol"); n != 2 {
		t.Errorf("%d broken-header lines logged; want 2:\n%s", n, g.errLog)
	}
}

// pipes counts the pipe descriptors this process holds: only Go's
// splice(2) path creates pipes in gong.
func pipes(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("reading /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, "pipe:") {
			n++
		}
	}
	return n
}

// TestOutOfDescriptorsPausesAccept: when gong runs out of file
// descriptors it logs the failed accept, stops accepting for a moment,
// and serves every connection that waited in the backlog once sessions
// end and free theirs. It runs in a fresh process, whose descriptor
// limit it lowers.
func TestOutOfDescriptorsPausesAccept(t *testing.T) {
	if !inFreshProcess(t) {
		return
	}
	// A loop that failed to accept tries again 500 ms later, whatever
	// arrives meanwhile: one line per loop, then one per loop per pause.
	loops := runtime.GOMAXPROCS(0)
	runOutOfDescriptors(t, "tcp", loops, func(d time.Duration) int { return loops * (1 + int(2*d.Seconds())) })
}

// TestOutOfDescriptorsBacksOffAccept is the same for a listener served by
// goroutines (its service speaks TLS to the upstream, which the event
// loops leave to them): its accept goroutine waits 5 ms after a failure,
// twice as long after each next one, at most a second.
func TestOutOfDescriptorsBacksOffAccept(t *testing.T) {
	if !inFreshProcess(t) {
		return
	}
	runOutOfDescriptors(t, "tls", 1, func(d time.Duration) int {
		// The k-th failure comes 5 ms × (2^(k-1) - 1) after the first.
		return 1 + int(math.Log2(float64(d)/float64(5*time.Millisecond)+1)) + int(d/time.Second)
	})
}

// runOutOfDescriptors starts gong with one listener whose service speaks
// protocol to an upstream that never answers, takes every descriptor
// from the process, and connects clients: after the first failed accept
// there must be one more within the pause (accepting resumes), and no
// more than most(time since the limit was lowered); once the limit is
// back, every client is served. accepters is how many sockets accept.
func runOutOfDescriptors(t *testing.T, protocol string, accepters int, most func(time.Duration) int) {
	// Each session holds the client's socket and one to an upstream that
	// never answers, until connect_timeout.
	hang := testsvc.HangingAddr(t).String()
	p := listenPort(t)
	service := strings.Replace(svc("s", hang, "    retries: 0\n    connect_timeout: 500\n",
		fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{port: %d}]\n", p)), "protocol: tcp", "protocol: "+protocol, 1)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), "_format_version: \"3.0\"\nservices:\n"+service)
	// The clients' sockets are made first: only gong runs short.
	const clients = 20
	var fds []int
	for range clients {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
		t.Cleanup(func() { syscall.Close(fd) })
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// The limit bounds descriptor numbers, and 0-2 are taken: from here
	// this process can make none.
	low := lim
	low.Cur = 3
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
	lowered := time.Now()
	connect := func(fds []int) {
		for _, fd := range fds {
			if err := syscall.Connect(fd, &syscall.SockaddrInet4{Port: p, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	failed := func() int { return strings.Count(g.errLog.String(), "accept() failed") }
	connect(fds[:4])
	g.waitErrLog(t, "a failed accept", "too many open files")
	connect(fds[4:]) // while accepting is paused
	eventually(t, "a failed accept after a pause", func() bool { return failed() > accepters })
	if n, d := failed(), time.Since(lowered); n > most(d) {
		t.Errorf("%d failed accepts logged within %v; want at most %d", n, d, most(d))
	}
	// With descriptors again, every connection that waited is served.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every client's session", func() bool {
		return strings.Count(g.errLog.String(), "while connecting to upstream") == clients
	})
}

// TestPlainTCPSplices proves plain TCP to plain TCP relays bulk bytes
// through splice(2): relaying creates pipes, which the buffered path never
// does. (That idle connections hold none follows from
// TestIdleConnectionsPark: a parked direction has no copy in progress.)
func TestPlainTCPSplices(t *testing.T) {
	// Pipes that earlier tests returned to Go's pool would blur the count,
	// so the measurement runs in a fresh process.
	if !inFreshProcess(t) {
		return
	}
	// Go returns splice pipes to a pool that a garbage collection empties,
	// closing them; no collection may run while they are counted.
	debug.SetGCPercent(-1)
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := echoYML("e", echo, p)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	before := pipes(t)
	const held = 10
	bulk := strings.Repeat("x", 256<<10) // far past what gong copies through user space
	for range held {
		c := dial(t, fmt.Sprintf("127.0.0.1:%d", p))
		if got, err := exchange(c, bulk); err != nil || got != "e: "+bulk {
			t.Fatalf("exchange of %d bytes: got %d bytes, %v", len(bulk), len(got), err)
		}
	}
	got := pipes(t) - before
	if got < 2 {
		t.Errorf("no pipe was created to relay %d connections: the bytes did not go through splice", held)
	}
}

func TestManyConcurrentConnections(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := echoYML("e", echo, p)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	var wg sync.WaitGroup
	var failures atomic.Int32
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), fmt.Sprint(i)); err != nil || got != fmt.Sprintf("e: %d", i) {
				failures.Add(1)
			}
		}()
	}
	wg.Wait()
	if f := failures.Load(); f > 0 {
		t.Errorf("%d of 50 concurrent connections failed", f)
	}
}

func TestServiceHostByName(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "named")
	_, port := hostPort(echo)
	hosts := t.TempDir() + "/hosts"
	writeFile(t, hosts, "# test hosts\n127.0.0.1 echo.gong.test other.gong.test\n")
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: named
    url: tcp://echo.gong.test:%s
    routes:
      - protocols: [tcp]
        destinations: [{port: %d}]
`, port, p)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\ndns_hostsfile = %s\n", p, hosts), yml)
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil || got != "named: x" {
		t.Errorf("service by host name: %q, %v; want named: x", got, err)
	}
}

func TestPortMaps(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "mapped")
	p := listenPort(t)
	// Routes see the mapped (public) port 19000, not the listening port.
	yml := "_format_version: \"3.0\"\nservices:\n" + svc("m", echo, "", "      - protocols: [tcp]\n        destinations: [{port: 19000}]\n")
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nport_maps = 19000:%d\n", p, p), yml)
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil || got != "mapped: x" {
		t.Errorf("port_maps routing: %q, %v; want mapped: x", got, err)
	}
}

// TestIdleConnectionsPark proves an idle plain TCP connection costs gong
// no goroutine, and wakes up when bytes come.
func TestIdleConnectionsPark(t *testing.T) {
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := echoYML("e", echo, p)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	base := runtime.NumGoroutine()
	const held = 20
	conns := make([]net.Conn, held)
	for i := range conns {
		conns[i] = dial(t, fmt.Sprintf("127.0.0.1:%d", p))
		if got, err := exchange(conns[i], "hi"); err != nil || got != "e: hi" {
			t.Fatalf("exchange: %q, %v", got, err)
		}
	}
	// The echo server keeps one goroutine per connection; gong's relays
	// must drop theirs once quiet.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for runtime.NumGoroutine()-base > held+4 {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%d goroutines for %d idle connections (echo server included); gong's relays did not park", runtime.NumGoroutine()-base, held)
		}
	}
	for i, c := range conns {
		if got, err := exchange(c, fmt.Sprint("again ", i)); err != nil || got != fmt.Sprint("e: again ", i) {
			t.Errorf("parked connection %d did not wake: %q, %v", i, got, err)
		}
	}
}

// TestStopEndsParkedConnections stops gong while its relays are parked:
// Stop must close them and return.
func TestStopEndsParkedConnections(t *testing.T) {
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := echoYML("e", echo, p)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	base := runtime.NumGoroutine()
	const held = 10
	conns := make([]net.Conn, held)
	for i := range conns {
		conns[i] = dial(t, fmt.Sprintf("127.0.0.1:%d", p))
		if _, err := exchange(conns[i], "hi"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "relays park", func() bool { return runtime.NumGoroutine()-base <= held+4 })
	stopped := make(chan struct{})
	go func() { g.srv.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return with parked connections")
	}
	for _, c := range conns {
		expectClosed(t, c)
	}
}

func TestUpstreamAlgorithms(t *testing.T) {
	t.Parallel()
	a, b, c := startEcho(t, "a"), startEcho(t, "b"), startEcho(t, "c")
	pHash, pLeast := listenPort(t), listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
upstreams:
  - name: by-ip
    hash_on: ip
    targets: [{target: "%s"}, {target: "%s"}, {target: "%s"}]
  - name: least
    algorithm: least-connections
    targets: [{target: "%s"}, {target: "%s"}]
services:
  - name: hashed
    url: tcp://by-ip
    routes: [{protocols: [tcp], destinations: [{port: %d}]}]
  - name: least
    url: tcp://least
    routes: [{protocols: [tcp], destinations: [{port: %d}]}]
`, a, b, c, a, b, pHash, pLeast)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", pHash, pLeast), yml)

	// hash_on ip: every connection from 127.0.0.1 reaches the same target.
	first := ""
	for i := range 10 {
		got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pHash), "x")
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = got
		} else if got != first {
			t.Fatalf("consistent hashing sent one client to %q, then %q", first, got)
		}
	}

	// least-connections: while a long-lived connection holds one target,
	// the next connection goes to the other.
	held := dial(t, fmt.Sprintf("127.0.0.1:%d", pLeast))
	busy, err := exchange(held, "hold")
	if err != nil {
		t.Fatal(err)
	}
	second := dial(t, fmt.Sprintf("127.0.0.1:%d", pLeast))
	if got, err := exchange(second, "hold"); err != nil || got == busy {
		t.Errorf("least-connections answer %q, %v; want the target not holding a connection (not %q)", got, err, busy)
	}
}

func TestHealthChecks(t *testing.T) {
	t.Parallel()
	live := startEcho(t, "live")
	dead := testsvc.RefusedAddr(t)
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
upstreams:
  - name: checked
    healthchecks:
      active:
        type: tcp
        timeout: 1
        healthy: {interval: 0.05, successes: 1}
        unhealthy: {interval: 0.05, tcp_failures: 1}
    targets: [{target: "%s"}, {target: "%s"}]
services:
  - name: s
    url: tcp://checked
    retries: 0
    routes: [{protocols: [tcp], destinations: [{port: %d}]}]
`, dead, live, p)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	g.waitErrLog(t, "the dead target marked unhealthy", "health check: "+dead+" is unhealthy")
	check := func(when string) {
		t.Helper()
		for i := range 10 {
			if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil || got != "live: x" {
				t.Fatalf("%s, connection %d: %q, %v; want only the healthy target (retries 0)", when, i, got, err)
			}
		}
	}
	check("after the active check")
	// The upstream is unchanged by the reload: its health survives.
	if err := g.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	check("right after a reload")
}
