package spec

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"
)

// benchUDP starts gong with one UDP route to an echo whose sessions end
// after idle seconds of silence, and returns the listener's address.
func benchUDP(b *testing.B, idle string) string {
	b.Helper()
	echo := startUDPEcho(b, "u")
	p := listenPort(b)
	yml := udpEchoYML(echo, p, fmt.Sprintf("    read_timeout: %s\n    write_timeout: %s\n", idle, idle))
	startGong(b, fmt.Sprintf("stream_listen = 127.0.0.1:%d udp\nproxy_stream_access_log = off\nlog_level = warn\n", p), yml)
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// askOnce sends one datagram from a new client socket and waits for the
// reply: one new session.
func askOnce(b *testing.B, addr string, buf []byte) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("hi")); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Read(buf); err != nil {
		b.Fatalf("no reply from a new session: %v", err)
	}
}

// BenchmarkUDPNewSessions: a new client each round trip, so each
// operation sets a session up (route, dial, first datagram each way).
// Sessions end 200 ms after their datagram.
func BenchmarkUDPNewSessions(b *testing.B) {
	addr := benchUDP(b, "200")
	buf := make([]byte, 64)
	b.ResetTimer()
	for range b.N {
		askOnce(b, addr, buf)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}

// BenchmarkUDPRoundTrip: datagram round trips through one established
// session.
func BenchmarkUDPRoundTrip(b *testing.B) {
	addr := benchUDP(b, "60000")
	c, err := net.Dial("udp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 64)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write([]byte("ping")); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "round-trips/s")
}

// BenchmarkUDPIdleSession measures what b.N idle UDP sessions cost once
// they have gone quiet: the live Go heap, the process's RSS and the
// goroutines, per session. Run it with a fixed count
// (-benchtime=2000x): every session holds a socket for a minute.
func BenchmarkUDPIdleSession(b *testing.B) {
	addr := benchUDP(b, "60000")
	buf := make([]byte, 64)
	askOnce(b, addr, buf) // the first session's one-time costs (VMs, pools)
	heap, rss, goroutines := liveHeapKiB(), rssKiB(b), runtime.NumGoroutine()
	b.ResetTimer()
	for range b.N {
		askOnce(b, addr, buf)
	}
	b.StopTimer()
	// Readers park after 100 ms without a datagram.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine()-goroutines > b.N/100 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	n := float64(b.N)
	b.ReportMetric(float64(liveHeapKiB()-heap)/n, "heap-KiB/session")
	b.ReportMetric(float64(rssKiB(b)-rss)/n, "RSS-KiB/session")
	b.ReportMetric(float64(runtime.NumGoroutine()-goroutines)/n, "goroutines/session")
}
