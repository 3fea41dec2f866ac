package spec

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gong-proxy/gong/internal/testsvc"
)

// balancerRecord is one line of the balancerdata fixture.
type balancerRecord struct {
	Phase          string `json:"phase"`
	Host           string `json:"host"`
	Port           int    `json:"port"`
	Type           string `json:"type"`
	Scheme         string `json:"scheme"`
	Retries        int    `json:"retries"`
	ConnectTimeout int    `json:"connect_timeout"`
	TryCount       int    `json:"try_count"`
	Tries          []any  `json:"tries"`
	IP             string `json:"ip"`
	Hostname       string `json:"hostname"`
	Live           bool   `json:"serialized_tries_are_live"`
	Spans          []struct {
		IP        string  `json:"ip"`
		Port      int     `json:"port"`
		State     string  `json:"state"`
		Code      *int    `json:"code"`
		StartUS   float64 `json:"start_us"`
		StartNS   float64 `json:"start_ns"`
		Latency   *int    `json:"latency"`
		LatencyNS *int64  `json:"latency_ns"`
		FinishUS  float64 `json:"finish_us"`
	} `json:"spans"`
}

// TestBalancerData: a plugin reads ngx.ctx.balancer_data as Kong's zipkin
// does. In preread it has the service's host and settings and no tries;
// in log, one try per connect attempt (the refused first peer marked
// failed, as Kong marks a retried try), and the peer that answered.
func TestBalancerData(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "alive")
	dead := testsvc.RefusedAddr(t) // nothing listens there
	p := listenPort(t)
	path := filepath.Join(t.TempDir(), "balancer.log")
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
    port: 7777
    retries: 1
    connect_timeout: 2000
    routes:
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: balancerdata, config: {path: %s}}]
`, dead, echo, p, path)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nplugins = bundled, balancerdata\nlua_package_path = %s\n", p, fixturePath(t)), yml)
	before := time.Now()
	// The round-robin wheel alternates between the two targets, so some of
	// these connections try the refused one first.
	for i := range 3 {
		if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil || got != "alive: x" {
			t.Fatalf("connection %d: %q, %v; want alive: x", i, got, err)
		}
	}
	g.stop()
	after := time.Now()

	_, deadPortStr, _ := net.SplitHostPort(dead)
	deadPort, _ := strconv.Atoi(deadPortStr)
	_, echoPortStr, _ := net.SplitHostPort(echo)
	echoPort, _ := strconv.Atoi(echoPortStr)
	var prereads, logs, retried int
	for _, line := range readLines(t, path) {
		var r balancerRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		switch r.Phase {
		case "preread":
			prereads++
			if r.Host != "pool" || r.Port != 7777 || r.Type != "name" || r.Scheme != "tcp" || r.Retries != 1 ||
				r.ConnectTimeout != 2000 || r.TryCount != 0 || r.Tries == nil || len(r.Tries) != 0 {
				t.Errorf("balancer_data in preread: %s; want the service's host, port and settings, no tries", line)
			}
		case "log":
			logs++
			if r.Host != "pool" || r.Type != "name" || r.TryCount != len(r.Spans) || r.TryCount < 1 || r.TryCount > 2 {
				t.Errorf("balancer_data in log: %s", line)
				continue
			}
			if r.IP != "127.0.0.1" || r.Port != echoPort || r.Hostname != "127.0.0.1" || !r.Live {
				t.Errorf("balancer_data in log: %s; want the answering peer 127.0.0.1:%d and serialize's tries the same table", line, echoPort)
			}
			for i, sp := range r.Spans {
				start := time.UnixMicro(int64(sp.StartUS))
				if start.Before(before.Truncate(time.Millisecond)) || start.After(after) || sp.Latency == nil || *sp.Latency < 0 ||
					sp.LatencyNS == nil || *sp.LatencyNS < 0 || sp.FinishUS < sp.StartUS || math.Abs(sp.StartNS/1e6-sp.StartUS/1e3) > 1.1 { // balancer_start is truncated to the ms, and cjson's 14 digits round the ns to 0.1 ms
					t.Errorf("try %d timing: %s", i+1, line)
				}
			}
			last := r.Spans[len(r.Spans)-1]
			if last.Port != echoPort || last.State != "" || last.Code != nil {
				t.Errorf("last try: %s; want the echo server, without state", line)
			}
			if r.TryCount == 2 {
				retried++
				if first := r.Spans[0]; first.IP != "127.0.0.1" || first.Port != deadPort || first.State != "failed" || first.Code == nil || *first.Code != 0 {
					t.Errorf("first try: %s; want the refused peer, state failed, code 0", line)
				}
			}
		}
	}
	if prereads != 3 || logs != 3 || retried == 0 {
		t.Errorf("%d preread and %d log records, %d with a retry; want 3, 3 and some", prereads, logs, retried)
	}
}

// TestBalancerDataUDP: a UDP session to a service by IP has the same
// balancer_data, with scheme udp and one try.
func TestBalancerDataUDP(t *testing.T) {
	t.Parallel()
	echo := startUDPEcho(t, "u")
	h, port := hostPort(echo)
	p := listenPort(t)
	path := filepath.Join(t.TempDir(), "balancer.log")
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: u
    url: udp://%s:%s
    routes:
      - protocols: [udp]
        destinations: [{port: %d}]
        plugins: [{name: balancerdata, config: {path: %s}}]
`, h, port, p, path)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d udp\nplugins = bundled, balancerdata\nlua_package_path = %s\n", p, fixturePath(t)), yml)
	if got := udpAsk(t, dialUDP(t, fmt.Sprintf("127.0.0.1:%d", p)), "ping"); got != "u: ping" {
		t.Fatalf("through gong: %q", got)
	}
	g.stop()
	lines := readLines(t, path)
	if len(lines) != 2 {
		t.Fatalf("%d records; want preread and log:\n%s", len(lines), g.errLog)
	}
	var pre, log balancerRecord
	json.Unmarshal([]byte(lines[0]), &pre)
	json.Unmarshal([]byte(lines[1]), &log)
	echoPort, _ := strconv.Atoi(port)
	if pre.Phase != "preread" || pre.Host != h || pre.Port != echoPort || pre.Type != "ipv4" || pre.Scheme != "udp" || pre.TryCount != 0 {
		t.Errorf("preread: %s; want the service's %s:%s, ipv4, udp, no tries", lines[0], h, port)
	}
	if log.Phase != "log" || log.TryCount != 1 || len(log.Spans) != 1 || log.Spans[0].Port != echoPort || log.Spans[0].State != "" ||
		log.IP != h || log.Port != echoPort || log.Hostname != h {
		t.Errorf("log: %s; want one try to %s", lines[1], echo)
	}
}
