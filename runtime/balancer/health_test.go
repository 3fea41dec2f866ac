package balancer

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// waitHealth waits until the checker reports want for addr.
func waitHealth(t *testing.T, c *Checker, addr netip.AddrPort, want bool) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%v healthy=%v", addr, want), func() bool { return c.Healthy()[addr] == want })
}

func TestActiveTCPChecks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	live := ln.Addr().(*net.TCPAddr).AddrPort()
	other := netip.MustParseAddrPort("127.0.0.1:1") // nothing listens on port 1
	as := []Address{{Addr: live, Weight: 100}, {Addr: other, Weight: 100}}
	b := mustNew(t, as, Options{})
	var logs []string
	c := NewChecker(b, as, HealthConfig{Active: "tcp", Timeout: time.Second, Concurrency: 2,
		HealthyInterval: 20 * time.Millisecond, UnhealthyInterval: 20 * time.Millisecond,
		Successes: 2, TCPFailures: 2, Timeouts: 2}, func(f string, a ...any) { logs = append(logs, f) })
	defer c.Stop()

	waitHealth(t, c, other, false)
	for range 10 {
		if p, err := b.Pick(&Handle{}); err != nil || p.Addr != live {
			t.Fatalf("Pick = %v, %v; want only the live address once the dead one is unhealthy", p, err)
		}
	}
	// The live target goes away: it turns unhealthy, and the balancer has
	// nothing left.
	ln.Close()
	waitHealth(t, c, live, false)
	if _, err := b.Pick(&Handle{}); err != ErrUnhealthy {
		t.Errorf("all unhealthy: %v; want %v", err, ErrUnhealthy)
	}
	// It comes back: unhealthy targets are probed too and recover.
	ln2, err := net.Listen("tcp", live.String())
	if err != nil {
		t.Fatalf("could not listen again on %v: %v", live, err)
	}
	defer ln2.Close()
	go func() {
		for {
			c, err := ln2.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	waitHealth(t, c, live, true)
	if p, err := b.Pick(&Handle{}); err != nil || p.Addr != live {
		t.Errorf("after recovery: %v, %v", p, err)
	}
}

func TestPassiveChecks(t *testing.T) {
	as := addrs(100, 100)
	b := mustNew(t, as, Options{})
	cfg := HealthConfig{PassiveTCPFailures: 3, PassiveHTTPFailures: 2, PassiveSuccesses: 1,
		HealthyStatuses: []int{200}, UnhealthyStatuses: []int{500, 503}}
	if !cfg.Enabled() {
		t.Fatal("passive limits set, but the checker is disabled")
	}
	c := NewChecker(b, as, cfg, func(string, ...any) {})
	defer c.Stop()
	a := as[0].Addr
	c.ReportConnectFailure(a)
	c.ReportConnectFailure(a)
	c.ReportStatus(a, 200) // a success clears the failures
	c.ReportConnectFailure(a)
	c.ReportConnectFailure(a)
	if !c.Healthy()[a] {
		t.Fatal("unhealthy after 2 consecutive failures; the limit is 3")
	}
	c.ReportConnectFailure(a)
	if c.Healthy()[a] {
		t.Fatal("healthy after 3 consecutive connect failures")
	}
	c.ReportStatus(a, 502) // in neither list: ignored
	if c.Healthy()[a] {
		t.Fatal("a status in neither list changed the health")
	}
	c.ReportStatus(a, 200)
	if !c.Healthy()[a] {
		t.Fatal("still unhealthy after a success with passive successes = 1")
	}
	c.ReportStatus(a, 503)
	c.ReportStatus(a, 500)
	if c.Healthy()[a] {
		t.Fatal("healthy after 2 statuses of the unhealthy list")
	}
	if (HealthConfig{}).Enabled() {
		t.Error("a checker with nothing set is enabled; Kong has none then")
	}
}

func TestAdoptKeepsHealth(t *testing.T) {
	as := addrs(100, 100)
	cfg := HealthConfig{PassiveTCPFailures: 1}
	b1 := mustNew(t, as, Options{})
	c := NewChecker(b1, as, cfg, func(string, ...any) {})
	defer c.Stop()
	c.ReportConnectFailure(as[0].Addr)
	b2 := mustNew(t, as, Options{})
	c.Adopt(b2, as)
	for range 4 {
		if p, _ := b2.Pick(&Handle{}); p.Addr == as[0].Addr {
			t.Fatal("the new balancer picked an address the checker knows is unhealthy")
		}
	}
}

// TestPayloadChecks: a TCP server that accepts but answers wrong, and a
// UDP server that answers wrong, are unhealthy until they answer right.
func TestPayloadChecks(t *testing.T) {
	var reply atomic.Value
	reply.Store("nope\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 5)
				if _, err := io.ReadFull(c, buf); err == nil && string(buf) == "PING\n" {
					io.WriteString(c, reply.Load().(string))
				}
			}()
		}
	}()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if string(buf[:n]) == "PING\n" {
				pc.WriteTo([]byte(reply.Load().(string)), from)
			}
		}
	}()
	for _, tc := range []struct {
		typ  string
		addr netip.AddrPort
	}{
		{"tcp", ln.Addr().(*net.TCPAddr).AddrPort()},
		{"udp", pc.LocalAddr().(*net.UDPAddr).AddrPort()},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			reply.Store("nope\n")
			as := []Address{{Addr: tc.addr, Weight: 100}}
			b := mustNew(t, as, Options{})
			c := NewChecker(b, as, HealthConfig{Active: tc.typ, Send: []byte("PING\n"), Expect: []byte("PONG"),
				Timeout: time.Second, Concurrency: 1, HealthyInterval: 20 * time.Millisecond,
				UnhealthyInterval: 20 * time.Millisecond, Successes: 1, TCPFailures: 1, Timeouts: 1}, func(string, ...any) {})
			defer c.Stop()
			waitHealth(t, c, tc.addr, false)
			if _, err := b.Pick(&Handle{}); err != ErrUnhealthy {
				t.Errorf("wrong answers: Pick = %v; want %v", err, ErrUnhealthy)
			}
			reply.Store("PONG\n")
			waitHealth(t, c, tc.addr, true)
		})
	}
}

// TestReplaceFollowsAddresses: a rebuilt balancer keeps the health of the
// addresses it keeps; a stale rebuild does not take the checker.
func TestReplaceFollowsAddresses(t *testing.T) {
	as := addrs(100, 100, 100)
	b1 := mustNew(t, as[:2], Options{})
	c := NewChecker(b1, as[:2], HealthConfig{PassiveTCPFailures: 1}, func(string, ...any) {})
	defer c.Stop()
	c.ReportConnectFailure(as[0].Addr)
	b2 := mustNew(t, as, Options{})
	if !c.Replace(b1, b2, as) {
		t.Fatal("Replace from the fed balancer refused")
	}
	if h := c.Healthy(); h[as[0].Addr] || !h[as[2].Addr] || len(h) != 3 {
		t.Errorf("health after the new address came: %v; want the first down, the new one up", h)
	}
	if c.Replace(b1, mustNew(t, as[:1], Options{}), as[:1]) {
		t.Error("Replace from a balancer the checker no longer feeds took effect")
	}
}

// TestSetHealthy: health set by hand takes addresses out of the balancer
// and back, per target or per address, and passive checks go on from it.
func TestSetHealthy(t *testing.T) {
	as := addrs(100, 100, 100)
	as[1].Target = "svc.test:80" // a name with two addresses
	as[2].Target = "svc.test:80"
	b := mustNew(t, as, Options{})
	c := NewChecker(b, as, HealthConfig{PassiveSuccesses: 1, PassiveTCPFailures: 1, HealthyStatuses: []int{200}},
		func(string, ...any) {})
	defer c.Stop()
	picks := func() map[netip.AddrPort]bool {
		seen := map[netip.AddrPort]bool{}
		for range 6 {
			if p, err := b.Pick(&Handle{}); err == nil {
				seen[p.Addr] = true
			}
		}
		return seen
	}

	c.SetHealthy("svc.test:80", netip.AddrPort{}, false)
	if h, p := c.Healthy(), picks(); h[as[1].Addr] || h[as[2].Addr] || !h[as[0].Addr] || len(p) != 1 || !p[as[0].Addr] {
		t.Fatalf("target set unhealthy: health %v, picks %v; want only %v", h, p, as[0].Addr)
	}
	c.SetHealthy("svc.test:80", as[2].Addr, true)
	if h := c.Healthy(); h[as[1].Addr] || !h[as[2].Addr] {
		t.Fatalf("one address set healthy: %v; want %v healthy, %v not", h, as[2].Addr, as[1].Addr)
	}
	c.SetHealthy("svc.test:80", as[0].Addr, false) // not one of the target's
	if !c.Healthy()[as[0].Addr] {
		t.Fatal("an address of another target changed health")
	}
	c.ReportStatus(as[1].Addr, 200) // checks go on from the health set
	if p := picks(); len(p) != 3 {
		t.Errorf("after a passive success: picks %v; want all three", p)
	}
}
