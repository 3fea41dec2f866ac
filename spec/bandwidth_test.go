package spec

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// shapedYML is one service at upstream with two TCP routes: "limited" on
// port limited with bandwidth-limit's config, and "free" on port free
// without any plugin.
func shapedYML(upstream string, limited, free int, config string) string {
	return fmt.Sprintf(`_format_version: "3.0"
services:
  - name: u
    url: tcp://%s
    routes:
      - name: limited
        protocols: [tcp]
        destinations: [{port: %d}]
        plugins:
          - {name: bandwidth-limit, config: %s}
      - name: free
        protocols: [tcp]
        destinations: [{port: %d}]
`, upstream, limited, config, free)
}

// mib is the rate the shaping tests hold: 1 MiB/s.
const mib = 1 << 20

// shapingWindow is how long a shaped transfer is measured.
const shapingWindow = 5 * time.Second

// countFor reads c from its first byte until window later and returns
// the bytes read after the first read and the time they took.
func countFor(c net.Conn, window time.Duration) (int64, time.Duration, error) {
	buf := make([]byte, 64<<10)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(buf); err != nil {
		return 0, 0, fmt.Errorf("first read: %w", err)
	}
	start := time.Now()
	c.SetReadDeadline(start.Add(window))
	var total int64
	for {
		n, err := c.Read(buf)
		total += int64(n)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return total, time.Since(start), nil
		}
		if err != nil {
			return total, time.Since(start), err
		}
	}
}

// flood writes to c until a write fails (c or its peer closed).
func flood(c net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// checkRate fails t unless n bytes over d are want bytes per second
// within 10%.
func checkRate(t *testing.T, what string, n int64, d time.Duration, want float64) {
	t.Helper()
	got := float64(n) / d.Seconds()
	t.Logf("%s: %d bytes in %v: %.0f B/s (limit %.0f)", what, n, d, got, want)
	if got < want*0.9 || got > want*1.1 {
		t.Errorf("%s ran at %.0f B/s; want %.0f within 10%%", what, got, want)
	}
}

// TestBandwidthLimitDownstream: an upstream sending as fast as it can
// reaches the client at downstream_rate (1 MiB/s) within 10% over 5 s.
func TestBandwidthLimitDownstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	source := serveConns(t, ln, func(c net.Conn, _ int) {
		defer c.Close()
		flood(c)
	})
	limited, free := listenPort(t), listenPort(t)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", limited, free),
		shapedYML(source, limited, free, fmt.Sprintf("{downstream_rate: %d}", mib)))
	c := dial(t, fmt.Sprintf("127.0.0.1:%d", limited))
	n, d, err := countFor(c, shapingWindow)
	if err != nil {
		t.Fatalf("after %d bytes: %v", n, err)
	}
	checkRate(t, "download", n, d, mib)
}

// TestBandwidthLimitUpstream: a client sending as fast as it can reaches
// the upstream at upstream_rate (1 MiB/s) within 10% over 5 s, counted
// where the bytes arrive.
func TestBandwidthLimitUpstream(t *testing.T) {
	type count struct {
		n   int64
		d   time.Duration
		err error
	}
	counted := make(chan count, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := serveConns(t, ln, func(c net.Conn, _ int) {
		defer c.Close()
		n, d, err := countFor(c, shapingWindow)
		counted <- count{n, d, err}
	})
	limited, free := listenPort(t), listenPort(t)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", limited, free),
		shapedYML(sink, limited, free, fmt.Sprintf("{upstream_rate: %d}", mib)))
	c := dial(t, fmt.Sprintf("127.0.0.1:%d", limited))
	c.SetDeadline(time.Now().Add(3 * shapingWindow))
	go flood(c)
	select {
	case got := <-counted:
		if got.err != nil {
			t.Fatalf("after %d bytes: %v", got.n, got.err)
		}
		checkRate(t, "upload", got.n, got.d, mib)
	case <-time.After(3 * shapingWindow):
		t.Fatal("the upstream never counted the upload")
	}
}

// TestBandwidthLimitKeepsSpliceForOthers: a shaped session's bytes go
// through user space (no splice pipe is made for them), while an
// unlimited session on the same node, with a shaped one in progress,
// still relays through splice (pipes counted as TestPlainTCPSplices
// does, in a fresh process).
func TestBandwidthLimitKeepsSpliceForOthers(t *testing.T) {
	if !inFreshProcess(t) {
		return
	}
	debug.SetGCPercent(-1) // a collection would close pooled pipes while they are counted
	echo := startEcho(t, "e")
	limited, free := listenPort(t), listenPort(t)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", limited, free),
		shapedYML(echo, limited, free, fmt.Sprintf("{downstream_rate: %d, upstream_rate: %d}", 64*mib, 64*mib)))
	bulk := strings.Repeat("x", 256<<10) // far past what gong copies through user space unshaped
	const held = 10
	relayAll := func(port int) int {
		before := pipes(t)
		for range held {
			c := dial(t, fmt.Sprintf("127.0.0.1:%d", port))
			if got, err := exchange(c, bulk); err != nil || got != "e: "+bulk {
				t.Fatalf("exchange of %d bytes on port %d: got %d bytes, %v", len(bulk), port, len(got), err)
			}
		}
		return pipes(t) - before
	}
	if got := relayAll(limited); got != 0 {
		t.Errorf("%d pipes were made for shaped sessions: their bytes were spliced, not paced", got)
	}
	inProgress := dial(t, fmt.Sprintf("127.0.0.1:%d", limited))
	if got, err := exchange(inProgress, "x"); err != nil || got != "e: x" {
		t.Fatalf("shaped session: %q, %v", got, err)
	}
	if got := relayAll(free); got < 2 {
		t.Errorf("%d pipes were made to relay %d unlimited connections: their bytes did not go through splice", got, held)
	}
	if got, err := exchange(inProgress, "y"); err != nil || got != "e: y" {
		t.Fatalf("shaped session after the unlimited ones: %q, %v", got, err)
	}
}
