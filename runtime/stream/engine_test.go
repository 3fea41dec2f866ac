package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/errlog"
	"github.com/gong-proxy/gong/runtime/telemetry"
)

// fakeHooks stand for the runloop: preread answers with its fixed
// result, and every ended session's record is sent on ended. noPlugins
// lets plain sessions run on the event loops (ended must then have room).
type fakeHooks struct {
	status    int
	done      bool
	noPlugins bool
	ended     chan Record
}

func (h *fakeHooks) Preread(*Session) (int, bool) { return h.status, h.done }
func (h *fakeHooks) Log(s *Session)               { h.ended <- *s.Record() }
func (h *fakeHooks) NoPlugins(*Route) bool        { return h.noPlugins }

// testEngine serves kongYML through an engine with hooks on one TCP and
// one UDP listener of its own; it returns their addresses.
func testEngine(t *testing.T, hooks Hooks, kongYML string) (tcp, udp string) {
	t.Helper()
	return testEngineConf(t, hooks, kongYML, "")
}

// testEngineConf is testEngine with more kong.conf lines.
func testEngineConf(t *testing.T, hooks Hooks, kongYML, confExtra string) (tcp, udp string) {
	t.Helper()
	e, _ := newTestEngine(t, hooks, kongYML, confExtra)
	return listenerAddrs(e)
}

// listenerAddrs are an engine's TCP and UDP listener addresses.
func listenerAddrs(e *Engine) (tcp, udp string) {
	for _, a := range e.Addrs() {
		if a.Network() == "udp" {
			udp = a.String()
		} else {
			tcp = a.String()
		}
	}
	return tcp, udp
}

// newTestEngine is testEngineConf's engine, with its error log.
func newTestEngine(t *testing.T, hooks Hooks, kongYML, confExtra string) (*Engine, *lockedBuffer) {
	t.Helper()
	cfg, log, logBuf := testConfig(t, hooks, kongYML, confExtra)
	e := New(log, telemetry.NewMetrics(telemetry.Sources{}))
	if _, err := e.Swap(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.CloseListeners()
		e.CloseSessions()
		e.Wait()
		cfg.Retire()
	})
	return e, logBuf
}

// testConfig builds kongYML with hooks, listening on a TCP and a UDP
// port of 127.0.0.1 the system picks, and the logger its build had.
func testConfig(t *testing.T, hooks Hooks, kongYML, confExtra string) (*Config, *slog.Logger, *lockedBuffer) {
	t.Helper()
	dir := t.TempDir()
	confPath := filepath.Join(dir, "kong.conf")
	os.WriteFile(confPath, []byte("prefix = "+dir+"\nproxy_stream_access_log = off\n"+
		"stream_listen = 127.0.0.1:0, 127.0.0.1:0 udp\n"+confExtra), 0o644)
	c, _, err := conf.Load(conf.Options{Path: confPath, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	d, err := declarative.Parse([]byte(kongYML), "", declarative.Options{Plugins: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	var logBuf lockedBuffer
	_, log := errlog.New(&logBuf, errlog.LevelDebug)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("error log:\n%s", logBuf.String())
		}
	})
	cfg, err := Build(c, d, BuildOptions{Hooks: hooks, Checkers: NewCheckerSet(log), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnRelease = func() {}
	return cfg, log, &logBuf
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serviceYML is one service to host:port (or an upstream) with a route
// for every client of 127.0.0.1, on protocol.
func serviceYML(protocol, host string, port int, extra string) string {
	return fmt.Sprintf(`_format_version: "3.0"
services:
  - name: svc
    protocol: %s
    host: %s
    port: %d
%s    routes:
      - name: r
        protocols: [%s]
        sources: [{ip: 127.0.0.1}]
`, protocol, host, port, extra, protocol)
}

// upstreamServer accepts connections and hands each to serve.
func upstreamServer(t *testing.T, serve func(net.Conn)) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr)
}

// closedPort is a port nothing listens on.
func closedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func waitEnded(t *testing.T, h *fakeHooks) Record {
	t.Helper()
	select {
	case r := <-h.ended:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no session ended within 10 s")
		return Record{}
	}
}

func dialDeadline(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// TestDialRetriesToNextPeer: a refused peer of an upstream is retried on
// the next one; the session is proxied with both tries recorded.
func TestDialRetriesToNextPeer(t *testing.T) {
	live := upstreamServer(t, func(c net.Conn) { io.Copy(c, c) })
	dead := closedPort(t)
	h := &fakeHooks{ended: make(chan Record, 8)}
	yml := serviceYML("tcp", "pool", 0, "    retries: 1\n") + fmt.Sprintf(`upstreams:
  - name: pool
    algorithm: round-robin
targets:
  - upstream: pool
    target: 127.0.0.1:%d
  - upstream: pool
    target: 127.0.0.1:%d
`, dead, live.Port)
	tcp, _ := testEngine(t, h, yml)
	sawRetry := false
	for i := range 4 {
		c := dialDeadline(t, "tcp", tcp)
		msg := fmt.Sprintf("ping %d\n", i)
		io.WriteString(c, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
			t.Fatalf("session %d: read %q, %v; want the echo", i, got, err)
		}
		c.Close()
		r := waitEnded(t, h)
		if r.Status != StatusOK {
			t.Errorf("session %d ended with %d; want 200", i, r.Status)
		}
		if n := len(r.Tries); n == 2 {
			sawRetry = true
			if r.Tries[0].Addr != fmt.Sprintf("127.0.0.1:%d", dead) || r.Tries[1].Addr != live.String() {
				t.Errorf("tries %v; want the dead peer, then the live one", r.Tries)
			}
		}
	}
	if !sawRetry {
		t.Error("no session tried the refused peer first, across 4 round-robin sessions")
	}
}

// TestFirstEOFEndsTheSession: without nginx_sproxy_proxy_half_close, as
// nginx's proxy_half_close defaults to off, the first side to end ends
// the session, even against an upstream that never closes.
func TestFirstEOFEndsTheSession(t *testing.T) {
	read := make(chan string, 1)
	lingering := upstreamServer(t, func(c net.Conn) {
		data, _ := io.ReadAll(c)
		read <- string(data)
		<-t.Context().Done() // never closes on its own
	})
	h := &fakeHooks{ended: make(chan Record, 2)}
	tcp, _ := testEngine(t, h, serviceYML("tcp", "127.0.0.1", lingering.Port, ""))
	c := dialDeadline(t, "tcp", tcp).(*net.TCPConn)
	io.WriteString(c, "hello")
	c.CloseWrite()
	if got, err := io.ReadAll(c); err != nil || len(got) != 0 {
		t.Errorf("client half-closed: read %q, %v; want EOF at once", got, err)
	}
	select {
	case got := <-read:
		if got != "hello" {
			t.Errorf("upstream read %q; want hello, then the end", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream's connection was never closed")
	}
	if r := waitEnded(t, h); r.Status != StatusOK || r.BytesReceived != 5 || r.BytesSent != 0 {
		t.Errorf("record: status %d, %d bytes received, %d sent; want 200, 5, 0", r.Status, r.BytesReceived, r.BytesSent)
	}

	// The upstream ends first: the client gets its bytes, then EOF.
	bye := upstreamServer(t, func(c net.Conn) {
		io.WriteString(c, "bye")
		c.Close()
	})
	h2 := &fakeHooks{ended: make(chan Record, 2)}
	tcp2, _ := testEngine(t, h2, serviceYML("tcp", "127.0.0.1", bye.Port, ""))
	c2 := dialDeadline(t, "tcp", tcp2)
	if got, err := io.ReadAll(c2); err != nil || string(got) != "bye" {
		t.Errorf("upstream closed: client read %q, %v; want bye, then EOF", got, err)
	}
	if r := waitEnded(t, h2); r.Status != StatusOK || r.BytesSent != 3 {
		t.Errorf("record: status %d, %d bytes sent; want 200, 3", r.Status, r.BytesSent)
	}
}

// TestHalfCloseBothWays: with nginx_sproxy_proxy_half_close = on, an EOF
// from either side reaches the other while the opposite direction goes on.
func TestHalfCloseBothWays(t *testing.T) {
	const on = "nginx_sproxy_proxy_half_close = on\n"
	// The upstream reads to EOF, then answers with what it read: the
	// client's half-close must reach it, and the answer come back.
	upFirst := upstreamServer(t, func(c net.Conn) {
		data, _ := io.ReadAll(c)
		c.Write(append([]byte("got "), data...))
	})
	h := &fakeHooks{ended: make(chan Record, 2)}
	tcp, _ := testEngineConf(t, h, serviceYML("tcp", "127.0.0.1", upFirst.Port, ""), on)
	c := dialDeadline(t, "tcp", tcp).(*net.TCPConn)
	io.WriteString(c, "hello")
	c.CloseWrite()
	if got, err := io.ReadAll(c); err != nil || string(got) != "got hello" {
		t.Errorf("client half-closed: read %q, %v; want the upstream's answer, then EOF", got, err)
	}
	waitEnded(t, h)

	// The upstream half-closes first; the client still sends afterwards.
	received := make(chan string, 1)
	upClose := upstreamServer(t, func(c net.Conn) {
		io.WriteString(c, "bye")
		c.(*net.TCPConn).CloseWrite()
		data, _ := io.ReadAll(c)
		received <- string(data)
	})
	h2 := &fakeHooks{ended: make(chan Record, 2)}
	tcp2, _ := testEngineConf(t, h2, serviceYML("tcp", "127.0.0.1", upClose.Port, ""), on)
	c2 := dialDeadline(t, "tcp", tcp2).(*net.TCPConn)
	if got, err := io.ReadAll(c2); err != nil || string(got) != "bye" {
		t.Fatalf("upstream half-closed: client read %q, %v; want bye, then EOF", got, err)
	}
	io.WriteString(c2, "after EOF")
	c2.CloseWrite()
	select {
	case got := <-received:
		if got != "after EOF" {
			t.Errorf("upstream received %q after its half-close; want the client's bytes", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client's bytes after the upstream's half-close never arrived")
	}
	if r := waitEnded(t, h2); r.BytesReceived != int64(len("after EOF")) || r.BytesSent != 3 {
		t.Errorf("record: %d bytes received, %d sent; want 9 and 3", r.BytesReceived, r.BytesSent)
	}
}

// TestIdleTimeout: a connection on which nothing moves for the service's
// timeouts is closed by the engine.
func TestIdleTimeout(t *testing.T) {
	up := upstreamServer(t, func(c net.Conn) { io.Copy(c, c) })
	h := &fakeHooks{ended: make(chan Record, 2)}
	tcp, _ := testEngine(t, h, serviceYML("tcp", "127.0.0.1", up.Port, "    read_timeout: 300\n    write_timeout: 300\n"))
	c := dialDeadline(t, "tcp", tcp)
	start := time.Now()
	io.WriteString(c, "x")
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("read: %v; want the engine to close the idle connection", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("closed after %v; want no sooner than the 300 ms timeout", d)
	}
	if r := waitEnded(t, h); r.Status != StatusOK {
		t.Errorf("idle session ended with %d; want 200", r.Status)
	}
}

// TestPrereadRefuses: a preread hook that ends the session closes it
// with the hook's status, and the upstream is never dialed.
func TestPrereadRefuses(t *testing.T) {
	dialed := make(chan struct{}, 1)
	up := upstreamServer(t, func(net.Conn) { dialed <- struct{}{} })
	h := &fakeHooks{status: 403, done: true, ended: make(chan Record, 2)}
	tcp, _ := testEngine(t, h, serviceYML("tcp", "127.0.0.1", up.Port, ""))
	c := dialDeadline(t, "tcp", tcp)
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) && !strings.Contains(fmt.Sprint(err), "reset") {
		t.Errorf("read = %d, %v; want the connection closed", n, err)
	}
	r := waitEnded(t, h)
	if r.Status != 403 || len(r.Tries) != 0 {
		t.Errorf("record: status %d, tries %v; want 403 and none", r.Status, r.Tries)
	}
	select {
	case <-dialed:
		t.Error("the upstream was dialed for a refused session")
	default:
	}
}

// TestUDPSessionSetUp: a client's first datagram sets up its session,
// which relays both ways, keeps datagram boundaries, and ends when idle.
func TestUDPSessionSetUp(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	h := &fakeHooks{ended: make(chan Record, 2)}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	_, udp := testEngine(t, h, serviceYML("udp", "127.0.0.1", port, "    read_timeout: 300\n    write_timeout: 300\n"))
	c := dialDeadline(t, "udp", udp)
	for _, msg := range []string{"one", "two"} {
		c.Write([]byte(msg))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "echo "+msg {
			t.Fatalf("reply to %q: %q, %v", msg, buf[:n], err)
		}
	}
	r := waitEnded(t, h)
	if r.Protocol != "UDP" || r.Status != StatusOK || r.BytesReceived != 6 || r.BytesSent != 16 || len(r.Tries) != 1 {
		t.Errorf("record %+v; want UDP, 200, 6 bytes in, 16 out, one try", r)
	}
}

// meterHooks are fakeHooks whose preread paces both directions with
// meters.
type meterHooks struct {
	fakeHooks
	down, up Meter
}

func (h *meterHooks) Preread(s *Session) (int, bool) {
	s.SetMeters(h.down, h.up)
	return 0, false
}

// countingMeter lets every byte through at once and counts them.
type countingMeter struct{ n atomic.Int64 }

func (m *countingMeter) Reader(_ context.Context, r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		n, err := r.Read(p)
		m.n.Add(int64(n))
		return n, err
	})
}

// stuckMeter never lets a byte through before its context ends.
type stuckMeter struct{}

func (stuckMeter) Reader(ctx context.Context, _ io.Reader) io.Reader {
	return readerFunc(func([]byte) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestMetersPaceTheRelay: every byte of a metered session goes through
// its direction's meter, and a read waiting in a meter ends with the
// relay (here, at the idle timeout).
func TestMetersPaceTheRelay(t *testing.T) {
	up := upstreamServer(t, func(c net.Conn) { io.Copy(c, c) })
	down, upm := &countingMeter{}, &countingMeter{}
	h := &meterHooks{fakeHooks: fakeHooks{ended: make(chan Record, 2)}, down: down, up: upm}
	tcp, _ := testEngine(t, h, serviceYML("tcp", "127.0.0.1", up.Port, ""))
	c := dialDeadline(t, "tcp", tcp)
	bulk := bytes.Repeat([]byte("x"), 256<<10)
	go c.Write(bulk)
	if _, err := io.ReadFull(c, make([]byte, len(bulk))); err != nil {
		t.Fatalf("echo through metered relay: %v", err)
	}
	c.Close()
	waitEnded(t, &h.fakeHooks)
	if down.n.Load() != int64(len(bulk)) || upm.n.Load() != int64(len(bulk)) {
		t.Errorf("meters counted %d bytes down and %d up; want %d each", down.n.Load(), upm.n.Load(), len(bulk))
	}

	stuck := &meterHooks{fakeHooks: fakeHooks{ended: make(chan Record, 2)}, down: stuckMeter{}, up: stuckMeter{}}
	tcp2, _ := testEngine(t, stuck, serviceYML("tcp", "127.0.0.1", up.Port, "    read_timeout: 300\n    write_timeout: 300\n"))
	c2 := dialDeadline(t, "tcp", tcp2)
	io.WriteString(c2, "x")
	if r := waitEnded(t, &stuck.fakeHooks); r.Status != StatusOK {
		t.Errorf("stuck session ended with %d; want 200 at the idle timeout", r.Status)
	}
}
