package spec

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// ctxKeeperGong starts gong with a route through the ctxkeeper fixture on
// a port of its own, and returns the server, that address and the
// status_listen URL.
func ctxKeeperGong(t testing.TB, pin bool, confExtra string) (*gong, string, string) {
	t.Helper()
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := "_format_version: \"3.0\"\nservices:\n" + svc("e", echo, "", fmt.Sprintf(
		"      - protocols: [tcp]\n        destinations: [{port: %d}]\n        plugins: [{name: ctxkeeper, config: {pin: %v}}]\n", p, pin))
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nstatus_listen = 127.0.0.1:0\nplugins = bundled, ctxkeeper\nlua_package_path = %s\n%s",
		p, fixturePath(t), confExtra), yml)
	addrs := g.srv.APIAddrs("status_listen")
	if len(addrs) == 0 {
		t.Fatal("no status_listen address")
	}
	return g, fmt.Sprintf("127.0.0.1:%d", p), "http://" + addrs[0].String()
}

// openIdle opens n connections to addr, each past its preread (its line
// echoed), and leaves them open.
func openIdle(t testing.TB, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err == nil {
					conns[i] = c
					var got string
					if got, err = exchange(c, "x"); err == nil && got != "e: x" {
						err = fmt.Errorf("echo %q", got)
					}
				}
				if err != nil {
					errs <- fmt.Errorf("idle connection %d: %w", i, err)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	t.Cleanup(func() { closeAll(conns) })
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	return conns
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// timedRoundTrip is the time a new connection takes to be proxied: dial,
// preread, one echoed line, under a deadline.
func timedRoundTrip(t *testing.T, addr string) time.Duration {
	t.Helper()
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(start.Add(2 * time.Second))
	if got, err := exchange(c, "x"); err != nil || got != "e: x" {
		t.Fatalf("new connection: %q, %v", got, err)
	}
	return time.Since(start)
}

// bestRoundTrip is the fastest of five timedRoundTrips, the figure least
// disturbed by the machine's other work.
func bestRoundTrip(t *testing.T, addr string) time.Duration {
	best := time.Hour
	for range 5 {
		best = min(best, timedRoundTrip(t, addr))
	}
	return best
}

// pinnedVMs reads the pinned VMs from /metrics and from /status (its gong
// section), failing when they differ.
func pinnedVMs(t *testing.T, status string) int {
	t.Helper()
	fams := scrape(t, status+"/metrics")
	code, body := get(t, status+"/status")
	sec, _ := body["gong"].(map[string]any)
	fromStatus, ok := sec["lua_vms_pinned"].(float64)
	if code != 200 || !ok {
		t.Fatalf("GET /status: %d %v; want gong.lua_vms_pinned", code, body)
	}
	if m := value(fams, "gong_lua_vms_pinned"); m != fromStatus {
		t.Fatalf("gong_lua_vms_pinned = %v but /status says %v", m, fromStatus)
	}
	return int(fromStatus)
}

var keptLine = regexp.MustCompile(`\[ctxkeeper\] kept (\d+) (\d+) number (\d+) 2.5 (\w+)`)

// keptLines counts the ctxkeeper log lines whose values all belong to the
// connection that logs them, by the greeting they end with.
func keptLines(log string) map[string]int {
	out := map[string]int{}
	for _, m := range keptLine.FindAllStringSubmatch(log, -1) {
		if m[1] == m[2] && m[2] == m[3] {
			out[m[4]]++
		}
	}
	return out
}

// TestIdleCtxHoldsNoVM: 2,000 idle connections whose preread left plain
// values in kong.ctx.shared, kong.ctx.plugin and ngx.ctx (the greeter
// pattern) hold no Lua VM, so a new connection through the same route is
// proxied at once (were they holding VMs, its preread would wait for one
// of the lua_max_vms, 128, up to 10 s), and each one's log phase sees its
// own values when it closes. The design does not depend on the number:
// idle connections hold their values in Go, never a VM.
func TestIdleCtxHoldsNoVM(t *testing.T) {
	const idle = 2000
	g, addr, status := ctxKeeperGong(t, false, "")
	before := bestRoundTrip(t, addr)
	conns := openIdle(t, addr, idle)
	after := bestRoundTrip(t, addr)
	t.Logf("best round trip of a new connection: %v alone, %v beside %d idle ones", before, after, idle)
	// Far below the 10 s wait for a VM, far above a busy machine's jitter
	// (a bound of 20 ms over the first figure failed on loaded runs).
	if after > 2*time.Second {
		t.Errorf("a new connection took %v beside %d idle ones, %v alone", after, idle, before)
	}
	if n := pinnedVMs(t, status); n != 0 {
		t.Errorf("%d pinned VMs; want 0: plain values leave the VM", n)
	}
	closeAll(conns)
	g.waitSessionsEnded(t, idle+10)
	g.stop()
	if got := keptLines(g.errLog.String()); got["none"] != idle+10 {
		t.Errorf("log phases that saw their own preread values: %v; want none=%d", got, idle+10)
	}
}

// TestUncarriableCtxPinsBounded: a function in kong.ctx keeps its VM,
// and the log phase can call it; no more than lua_max_pinned_vms
// sessions do so: the others go on, their plain values carried and the
// function dropped with a warning.
func TestUncarriableCtxPinsBounded(t *testing.T) {
	g, addr, status := ctxKeeperGong(t, true, "lua_max_pinned_vms = 2\nlua_max_vms = 4\n")
	conns := openIdle(t, addr, 5)
	if n := pinnedVMs(t, status); n != 2 {
		t.Errorf("%d pinned VMs; want lua_max_pinned_vms, 2", n)
	}
	if strings.Count(g.errLog.String(), "lua_max_pinned_vms (2) reached") != 3 {
		t.Errorf("want 3 warnings of the pin bound:\n%s", g.errLog)
	}
	if !strings.Contains(g.errLog.String(), "kong.ctx.plugin (ctxkeeper).greet is a function") {
		t.Errorf("the warning does not name the dropped value:\n%s", g.errLog)
	}
	timedRoundTrip(t, addr) // the pool has VMs left for new connections
	closeAll(conns)
	g.waitSessionsEnded(t, 6)
	eventually(t, "pins released", func() bool { return pinnedVMs(t, status) == 0 })
	g.stop()
	if got := keptLines(g.errLog.String()); got["hi"] != 2 || got["none"] != 4 {
		t.Errorf("log phases: %v; want hi=2 (pinned) and none=4 (function dropped)", got)
	}
}
