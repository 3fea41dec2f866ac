package spec

import (
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gong-proxy/gong/runtime/balancer/dnstest"
)

// dnsConf points gong at the zone, with an empty hosts file.
func dnsConf(t *testing.T, z *dnstest.Zone) string {
	hosts := t.TempDir() + "/hosts"
	writeFile(t, hosts, "")
	return fmt.Sprintf("dns_resolver = %s\ndns_hostsfile = %s\n", z.Addr, hosts)
}

// startEchoAt runs startEcho's server on a given address.
func startEchoAt(t *testing.T, addr, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	return serveEcho(t, ln, name)
}

// answers counts which upstream answered n connections.
func answers(t *testing.T, addr string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		got, err := roundTrip(addr, "x")
		if err != nil {
			t.Fatalf("round trip through gong: %v", err)
		}
		seen[strings.TrimSuffix(got, ": x")]++
	}
	return seen
}

// TestDNSTargets resolves an upstream target through a nameserver the
// test runs: both addresses of an A answer get traffic; when the TTL
// expires a changed answer moves the traffic; a failing nameserver keeps
// the last good answer.
func TestDNSTargets(t *testing.T) {
	t.Parallel()
	port := listenPort(t)
	startEchoAt(t, fmt.Sprintf("127.0.0.2:%d", port), "two")
	startEchoAt(t, fmt.Sprintf("127.0.0.3:%d", port), "three")
	startEchoAt(t, fmt.Sprintf("127.0.0.4:%d", port), "four")
	z := dnstest.Start(t)
	z.Set(t, "pool.gong.test. 1 IN A 127.0.0.2", "pool.gong.test. 1 IN A 127.0.0.3")
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
upstreams:
  - name: pool
    targets: [{target: "pool.gong.test:%d"}]
services:
  - name: s
    url: tcp://pool
    routes: [{protocols: [tcp], destinations: [{port: %d}]}]
`, port, p)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p)+dnsConf(t, z), yml)
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	if seen := answers(t, addr, 10); seen["two"] != 5 || seen["three"] != 5 {
		t.Errorf("A answer with two addresses: %v; want 5 each (one wheel slot each)", seen)
	}

	z.Set(t, "pool.gong.test. 1 IN A 127.0.0.4")
	eventually(t, "traffic moves to the new address after the TTL", func() bool {
		return answers(t, addr, 1)["four"] == 1
	})
	if seen := answers(t, addr, 6); seen["four"] != 6 {
		t.Errorf("after the answer changed: %v; want only the new address", seen)
	}

	z.SetFail(true)
	failing := z.Queries()
	eventually(t, "the failing nameserver is asked again", func() bool { return z.Queries() > failing+1 })
	if seen := answers(t, addr, 6); seen["four"] != 6 {
		t.Errorf("nameserver failing: %v; want the last good answer kept", seen)
	}
}

// TestSRVTargets: an SRV answer gives one address per record of the
// lowest priority, with the record's port and weight.
func TestSRVTargets(t *testing.T) {
	t.Parallel()
	heavy, light, backup := startEcho(t, "heavy"), startEcho(t, "light"), startEcho(t, "backup")
	_, hp := hostPort(heavy)
	_, lp := hostPort(light)
	_, bp := hostPort(backup)
	z := dnstest.Start(t)
	z.Set(t,
		"_echo._tcp.gong.test. 300 IN SRV 10 30 "+hp+" heavy.gong.test.",
		"_echo._tcp.gong.test. 300 IN SRV 10 10 "+lp+" light.gong.test.",
		"_echo._tcp.gong.test. 300 IN SRV 20 50 "+bp+" light.gong.test.",
		"heavy.gong.test. 300 IN A 127.0.0.1",
		"light.gong.test. 300 IN A 127.0.0.1")
	p, pHost := listenPort(t), listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
upstreams:
  - name: srv
    targets: [{target: "_echo._tcp.gong.test:1"}]
services:
  - name: balanced
    url: tcp://srv
    routes: [{protocols: [tcp], destinations: [{port: %d}]}]
  - name: by-host
    url: tcp://_echo._tcp.gong.test:1
    routes: [{protocols: [tcp], destinations: [{port: %d}]}]
`, p, pHost)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", p, pHost)+dnsConf(t, z), yml)
	if seen := answers(t, fmt.Sprintf("127.0.0.1:%d", p), 40); seen["heavy"] != 30 || seen["light"] != 10 {
		t.Errorf("SRV weights 30 and 10 over 40 connections: %v; want 30 and 10, none to the backup priority", seen)
	}
	if seen := answers(t, fmt.Sprintf("127.0.0.1:%d", pHost), 20); seen["backup"] > 0 || seen["heavy"]+seen["light"] != 20 {
		t.Errorf("service host by SRV: %v; want the SRV ports of the lowest priority", seen)
	}
}

// TestDNSNameError: a service host that does not exist ends the
// connection with 503 and Kong's error.
func TestDNSNameError(t *testing.T) {
	t.Parallel()
	z := dnstest.Start(t)
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: s
    url: tcp://missing.gong.test:9000
    routes: [{protocols: [tcp], destinations: [{port: %d}]}]
`, p)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p)+dnsConf(t, z), yml)
	expectClosed(t, dial(t, fmt.Sprintf("127.0.0.1:%d", p)))
	const want = "DNS resolution failed: dns server error: 3 name error. Tried: ["
	g.waitErrLog(t, "the error is logged", want)
	lines := g.accessLines(t)
	if f := strings.Fields(lines[len(lines)-1]); len(f) < 5 || f[4] != "503" {
		t.Errorf("access line %q; want status 503", lines[len(lines)-1])
	}
}

// startSwitchable runs a TCP server answering each line with the current
// prefix + the line.
func startSwitchable(t *testing.T, prefix *atomic.Value) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveAnswers(t, ln, func(line string) string { return prefix.Load().(string) + line })
}

// TestPayloadHealthChecks: a target that accepts TCP but answers the
// check wrongly is unhealthy and gets no traffic, then recovers.
func TestPayloadHealthChecks(t *testing.T) {
	t.Parallel()
	var good, flaky atomic.Value
	good.Store("ok good: ")
	flaky.Store("wrong: ")
	a, b := startSwitchable(t, &good), startSwitchable(t, &flaky)
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
upstreams:
  - name: checked
    healthchecks:
      active:
        type: tcp
        send: "ping\n"
        expect: "ok"
        timeout: 1
        healthy: {interval: 0.05, successes: 1}
        unhealthy: {interval: 0.05, tcp_failures: 1}
    targets: [{target: "%s"}, {target: "%s"}]
services:
  - name: s
    url: tcp://checked
    routes: [{protocols: [tcp], destinations: [{port: %d}]}]
`, a, b, p)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	g.waitErrLog(t, "the wrong answer marks the target unhealthy", "health check: "+b+" is unhealthy")
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	if seen := answers(t, addr, 6); seen["ok good"] != 6 {
		t.Errorf("while one target answers wrong: %v; want only the good one", seen)
	}
	flaky.Store("ok flaky: ")
	g.waitErrLog(t, "the target recovers", "health check: "+b+" is healthy")
	if seen := answers(t, addr, 6); seen["ok flaky"] == 0 {
		t.Errorf("after recovery: %v; want traffic to the recovered target", seen)
	}
}

// startUDPSwitchable runs a UDP server answering each datagram with the
// current prefix + the datagram.
func startUDPSwitchable(t *testing.T, prefix *atomic.Value) string {
	t.Helper()
	return startUDPServer(t, func(msg string) string { return prefix.Load().(string) + msg })
}

// TestUDPHealthChecks: a UDP target that answers the check datagram
// wrongly gets no sessions until it answers right.
func TestUDPHealthChecks(t *testing.T) {
	t.Parallel()
	var good, flaky atomic.Value
	good.Store("ok good: ")
	flaky.Store("wrong: ")
	a, b := startUDPSwitchable(t, &good), startUDPSwitchable(t, &flaky)
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
upstreams:
  - name: checked
    healthchecks:
      active:
        type: udp
        send: "ping"
        expect: "ok"
        timeout: 1
        healthy: {interval: 0.05, successes: 1}
        unhealthy: {interval: 0.05, tcp_failures: 1}
    targets: [{target: "%s"}, {target: "%s"}]
services:
  - name: s
    url: udp://checked
    routes: [{protocols: [udp], destinations: [{port: %d}]}]
`, a, b, p)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d udp\n", p), yml)
	g.waitErrLog(t, "the wrong answer marks the target unhealthy", "health check: "+b+" is unhealthy")
	sessions := func() map[string]int {
		seen := map[string]int{}
		for range 6 { // each client is a new session
			c := dialUDP(t, fmt.Sprintf("127.0.0.1:%d", p))
			seen[udpAsk(t, c, "x")]++
			c.Close()
		}
		return seen
	}
	if seen := sessions(); seen["ok good: x"] != 6 {
		t.Errorf("while one target answers wrong: %v; want every session on the good target", seen)
	}
	flaky.Store("ok flaky: ")
	g.waitErrLog(t, "the target recovers", "health check: "+b+" is healthy")
	if seen := sessions(); seen["ok flaky: x"] == 0 {
		t.Errorf("after recovery: %v; want sessions on the recovered target", seen)
	}
}

// TestUDPAffinity: a client whose session ended comes back to the same
// target within udp_affinity_ttl; another client is balanced as usual.
func TestUDPAffinity(t *testing.T) {
	t.Parallel()
	a, b := startUDPEcho(t, "a"), startUDPEcho(t, "b")
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
upstreams:
  - name: sticky
    udp_affinity_ttl: 60
    targets: [{target: "%s"}, {target: "%s"}]
services:
  - name: s
    url: udp://sticky
    read_timeout: 100
    write_timeout: 100
    routes: [{protocols: [udp], destinations: [{port: %d}]}]
`, a, b, p)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d udp\n", p), yml)
	c := dialUDP(t, fmt.Sprintf("127.0.0.1:%d", p))
	first := strings.TrimSuffix(udpAsk(t, c, "x"), ": x")
	// Round-robin over two targets alternates; only affinity brings the
	// client back to the same one, session after session.
	for i := range 3 {
		g.waitSessionsEnded(t, i+1)
		if got := strings.TrimSuffix(udpAsk(t, c, "x"), ": x"); got != first {
			t.Fatalf("session %d of the same client went to %q; want %q (udp_affinity_ttl)", i+2, got, first)
		}
	}
	other := dialUDP(t, fmt.Sprintf("127.0.0.1:%d", p))
	if got := strings.TrimSuffix(udpAsk(t, other, "x"), ": x"); got == first {
		t.Errorf("another client went to %q too; round-robin gives it the other target", got)
	}
}
