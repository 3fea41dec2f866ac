package stream

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gong-proxy/gong/internal/testsvc"
)

// loopEngine serves kongYML with hooks that run no plugin, so that its
// plain TCP sessions are the event loops'.
func loopEngine(t *testing.T, kongYML, confExtra string) (*Engine, string, *fakeHooks, *lockedBuffer) {
	t.Helper()
	h := &fakeHooks{noPlugins: true, ended: make(chan Record, 16)}
	e, log := newTestEngine(t, h, kongYML, confExtra)
	e.mu.Lock()
	for _, o := range e.listeners {
		if o.pc == nil && o.lfd < 0 {
			t.Error("the event loops do not accept from the TCP listener")
		}
	}
	e.mu.Unlock()
	tcp, _ := listenerAddrs(e)
	return e, tcp, h, log
}

// sessionOf is the engine's session of the client connection c.
func sessionOf(t *testing.T, e *Engine, c net.Conn) *Session {
	t.Helper()
	port := c.LocalAddr().(*net.TCPAddr).Port
	for _, s := range e.Sessions() {
		if int(s.Info().Client.Port()) == port {
			return s
		}
	}
	t.Fatalf("no session of client port %d", port)
	return nil
}

// echoOnce sends msg through c and reads it back.
func echoOnce(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo of %q: %q, %v", msg, got, err)
	}
}

func echoServer(t *testing.T) *net.TCPAddr {
	return upstreamServer(t, func(c net.Conn) { io.Copy(c, c) })
}

func TestLoopServesPlainSession(t *testing.T) {
	up := echoServer(t)
	e, tcp, h, _ := loopEngine(t, serviceYML("tcp", "127.0.0.1", up.Port, ""), "")
	c := dialDeadline(t, "tcp", tcp)
	echoOnce(t, c, "hello")
	if sessionOf(t, e, c).lc == nil {
		t.Fatal("the session has goroutines; want the event loop's")
	}
	echoOnce(t, c, "again")
	c.Close()
	r := waitEnded(t, h)
	if r.Status != StatusOK || r.BytesSent != 10 || r.BytesReceived != 10 || r.UpstreamBytesSent != 10 || r.UpstreamBytesRecv != 10 {
		t.Errorf("record: status %d, bytes sent %d received %d, upstream sent %d received %d; want 200 and 10 each",
			r.Status, r.BytesSent, r.BytesReceived, r.UpstreamBytesSent, r.UpstreamBytesRecv)
	}
	if len(r.Tries) != 1 || !r.Tries[0].Connected || r.Tries[0].Addr != up.String() {
		t.Errorf("tries %+v; want one, connected, to %s", r.Tries, up)
	}
	if r.UpstreamFirstByte.IsZero() || len(r.UpstreamConnectTimes) != 1 || r.Remote.String() != c.LocalAddr().String() {
		t.Errorf("record: first byte %v, connect times %v, remote %v", r.UpstreamFirstByte, r.UpstreamConnectTimes, r.Remote)
	}
}

func TestLoopRelaysBulkBothWays(t *testing.T) {
	up := echoServer(t)
	_, tcp, h, _ := loopEngine(t, serviceYML("tcp", "127.0.0.1", up.Port, ""), "")
	c := dialDeadline(t, "tcp", tcp)
	data := make([]byte, 8<<20)
	rand.Read(data)
	written := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		written <- err
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the echo differs from what was sent")
	}
	c.Close()
	if r := waitEnded(t, h); r.BytesSent != int64(len(data)) || r.BytesReceived != int64(len(data)) {
		t.Errorf("bytes sent %d, received %d; want %d each", r.BytesSent, r.BytesReceived, len(data))
	}
}

// A server that speaks first (SMTP, MySQL) is heard before the client
// sends anything, and its bytes may come with the connect's completion.
func TestLoopUpstreamSpeaksFirst(t *testing.T) {
	up := upstreamServer(t, func(c net.Conn) {
		io.WriteString(c, "220 ready\n")
		io.Copy(c, c)
	})
	_, tcp, h, _ := loopEngine(t, serviceYML("tcp", "127.0.0.1", up.Port, ""), "")
	for range 20 {
		c := dialDeadline(t, "tcp", tcp)
		got := make([]byte, len("220 ready\n"))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "220 ready\n" {
			t.Fatalf("banner %q, %v; want %q", got, err, "220 ready\n")
		}
		echoOnce(t, c, "HELO x\n")
		c.Close()
		if r := waitEnded(t, h); r.BytesSent != 17 || r.BytesReceived != 7 {
			t.Errorf("bytes sent %d, received %d; want 17 and 7", r.BytesSent, r.BytesReceived)
		}
	}
}

// so_keepalive on a listener the loops serve: its accepted sockets have
// TCP keepalive with the times asked for.
func TestLoopKeepAlive(t *testing.T) {
	up := echoServer(t)
	e, tcp, h, _ := loopEngine(t, serviceYML("tcp", "127.0.0.1", up.Port, ""), "stream_listen = 127.0.0.1:0 so_keepalive=7s:3s:4\n")
	c := dialDeadline(t, "tcp", tcp)
	echoOnce(t, c, "k")
	s := sessionOf(t, e, c)
	fd := s.lc.fd[toUpstream]
	for _, o := range []struct {
		name             string
		level, opt, want int
	}{
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 7},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 3},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 4},
	} {
		if got, err := unix.GetsockoptInt(fd, o.level, o.opt); err != nil || got != o.want {
			t.Errorf("%s = %d, %v; want %d", o.name, got, err, o.want)
		}
	}
	// Session.Close posts to the loop, which then closes the socket: the
	// reads of its descriptor above come first.
	s.Close()
	waitEnded(t, h)
}

// nginx_worker_processes sets how many loops serve the sessions.
func TestLoopsPerWorkerProcesses(t *testing.T) {
	up := echoServer(t)
	e, tcp, _, _ := loopEngine(t, serviceYML("tcp", "127.0.0.1", up.Port, ""), "nginx_worker_processes = 3\n")
	if n := len(e.loops.all); n != 3 {
		t.Errorf("%d event loops; want 3", n)
	}
	echoOnce(t, dialDeadline(t, "tcp", tcp), "three")
}

// answerAtEOF reads until EOF, then answers with how many bytes came.
func answerAtEOF(c net.Conn) {
	n, _ := io.Copy(io.Discard, c)
	fmt.Fprintf(c, "got %d", n)
}

func TestLoopHalfClose(t *testing.T) {
	up := upstreamServer(t, answerAtEOF)
	for _, tc := range []struct {
		conf, want string
	}{
		{"nginx_sproxy_proxy_half_close = on\n", "got 3"},
		{"", ""}, // the client's EOF ends the session before the answer
	} {
		_, tcp, h, _ := loopEngine(t, serviceYML("tcp", "127.0.0.1", up.Port, ""), tc.conf)
		c := dialDeadline(t, "tcp", tcp)
		io.WriteString(c, "abc")
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != tc.want {
			t.Errorf("%q: client read %q, %v; want %q", tc.conf, got, err, tc.want)
		}
		if r := waitEnded(t, h); r.Status != StatusOK || r.BytesReceived != 3 || r.BytesSent != int64(len(tc.want)) {
			t.Errorf("%q: status %d, received %d, sent %d", tc.conf, r.Status, r.BytesReceived, r.BytesSent)
		}
	}
}

func TestLoopIdleTimeout(t *testing.T) {
	up := echoServer(t)
	_, tcp, h, _ := loopEngine(t, serviceYML("tcp", "127.0.0.1", up.Port, "    read_timeout: 300\n    write_timeout: 300\n"), "")
	c := dialDeadline(t, "tcp", tcp)
	// Bytes every 100 ms keep the session past its idle timeout.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for i := range 6 {
		<-tick.C
		echoOnce(t, c, fmt.Sprint(i))
	}
	quietFrom := time.Now()
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read %d, %v; want EOF once idle", n, err)
	}
	if quiet := time.Since(quietFrom); quiet < 250*time.Millisecond {
		t.Errorf("closed after %v quiet; want the idle timeout, 300ms", quiet)
	}
	r := waitEnded(t, h)
	if r.Status != StatusOK || r.End.Sub(r.Start) < quietFrom.Sub(start) {
		t.Errorf("status %d, session time %v", r.Status, r.End.Sub(r.Start))
	}
}

func TestLoopRetriesThenFails(t *testing.T) {
	port := closedPort(t)
	_, tcp, h, log := loopEngine(t, serviceYML("tcp", "127.0.0.1", port, "    retries: 2\n"), "")
	c := dialDeadline(t, "tcp", tcp)
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a session with no upstream", n)
	}
	r := waitEnded(t, h)
	if r.Status != StatusBadGateway || len(r.Tries) != 3 || r.Tries[2].Connected {
		t.Errorf("status %d, tries %+v; want 502 after three", r.Status, r.Tries)
	}
	want := "connect() failed (111: Connection refused) while connecting to upstream"
	if n := strings.Count(log.String(), want); n != 3 {
		t.Errorf("%d lines %q in the error log; want 3", n, want)
	}
}

func TestLoopConnectTimeout(t *testing.T) {
	port := testsvc.HangingAddr(t).Port
	_, tcp, h, log := loopEngine(t, serviceYML("tcp", "127.0.0.1", port, "    connect_timeout: 200\n"), "")
	c := dialDeadline(t, "tcp", tcp)
	start := time.Now()
	c.Read(make([]byte, 1))
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Errorf("the session ended after %v; want the connect timeout, 200ms", waited)
	}
	if r := waitEnded(t, h); r.Status != StatusBadGateway {
		t.Errorf("status %d; want 502", r.Status)
	}
	if want := "upstream timed out (110: Connection timed out) while connecting to upstream"; !strings.Contains(log.String(), want) {
		t.Errorf("no %q in the error log", want)
	}
}

func TestLoopEndsWithoutRoute(t *testing.T) {
	up := echoServer(t)
	yml := strings.Replace(serviceYML("tcp", "127.0.0.1", up.Port, ""), "ip: 127.0.0.1", "ip: 127.0.0.2", 1)
	_, tcp, h, log := loopEngine(t, yml, "")
	c := dialDeadline(t, "tcp", tcp)
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from an unrouted session", n)
	}
	if r := waitEnded(t, h); r.Status != StatusInternalError || len(r.Tries) != 0 {
		t.Errorf("status %d, tries %v; want 500 and none", r.Status, r.Tries)
	}
	if !strings.Contains(log.String(), "no Route found with those values") {
		t.Error("no 'no Route found' in the error log")
	}
}

func TestLoopSessionCloses(t *testing.T) {
	up := echoServer(t)
	e, tcp, h, _ := loopEngine(t, serviceYML("tcp", "127.0.0.1", up.Port, ""), "")
	c := dialDeadline(t, "tcp", tcp)
	echoOnce(t, c, "x")
	sessionOf(t, e, c).Close()
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes after the session was closed", n)
	}
	if r := waitEnded(t, h); r.Status != StatusOK || r.BytesSent != 1 {
		t.Errorf("status %d, sent %d", r.Status, r.BytesSent)
	}
	// The log hook runs before the session leaves the list; the engine's
	// count of sessions drops after.
	settled := make(chan struct{})
	go func() { e.conns.Wait(); close(settled) }()
	select {
	case <-settled:
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not settle within 10 s")
	}
	if n := len(e.Sessions()); n != 0 {
		t.Errorf("%d sessions still listed", n)
	}
}

// A reload that gives a listener's route a service the loops cannot
// dial (its host a DNS name) moves the listener to its accept goroutine,
// and one that takes it away moves it back; a session keeps what it
// began on.
func TestReloadMovesListenerBetweenLoopsAndGoroutines(t *testing.T) {
	up := echoServer(t)
	yml := serviceYML("tcp", "127.0.0.1", up.Port, "")
	e, tcp, h, _ := loopEngine(t, yml, "")
	onLoop := dialDeadline(t, "tcp", tcp)
	echoOnce(t, onLoop, "1")

	swapTo := func(yml string) {
		cfg, _, _ := testConfig(t, h, yml, "")
		old, err := e.Swap(cfg)
		if err != nil {
			t.Fatal(err)
		}
		old.Retire()
		t.Cleanup(cfg.Retire)
	}
	swapTo(serviceYML("tcp", "localhost", up.Port, ""))
	byName := dialDeadline(t, "tcp", tcp)
	echoOnce(t, byName, "2")
	if sessionOf(t, e, byName).lc != nil {
		t.Error("a session to a DNS name is on an event loop")
	}
	echoOnce(t, onLoop, "3") // the first session goes on, on its loop
	if sessionOf(t, e, onLoop).lc == nil {
		t.Error("the first session left its loop")
	}

	swapTo(yml)
	again := dialDeadline(t, "tcp", tcp)
	echoOnce(t, again, "4")
	if sessionOf(t, e, again).lc == nil {
		t.Error("the listener did not go back to the loops")
	}
	byName.Close()
	if r := waitEnded(t, h); r.Status != StatusOK || r.BytesSent != 1 {
		t.Errorf("the goroutines' session: status %d, sent %d", r.Status, r.BytesSent)
	}
}

// A connection a loop accepts under a Config it does not serve (a
// reload in between) goes to a goroutine.
func TestLoopHandsOffUnderConfigItDoesNotServe(t *testing.T) {
	up := echoServer(t)
	yml := serviceYML("tcp", "127.0.0.1", up.Port, "")
	e, tcp, _, _ := loopEngine(t, yml, "")
	h := &fakeHooks{ended: make(chan Record, 4)}
	cfg, _, _ := testConfig(t, h, yml, "")
	// Current, with no listener for the loops (its loops are not set),
	// yet its listener left with them, as between a reload's Swap of the
	// Config and its move of the listener.
	old := e.current.Swap(cfg)
	t.Cleanup(func() {
		e.current.Swap(old)
		cfg.Retire()
	})
	c := dialDeadline(t, "tcp", tcp)
	echoOnce(t, c, "hi")
	if sessionOf(t, e, c).lc != nil {
		t.Error("the session stayed on the loop")
	}
	c.Close()
	if r := waitEnded(t, h); r.Status != StatusOK || r.BytesReceived != 2 {
		t.Errorf("status %d, received %d", r.Status, r.BytesReceived)
	}
}

// A session with plugins runs its hooks on workers and its relay on the
// loop; one its preread hook refuses is closed as on goroutines.
func TestLoopRunsPluginHooksOnWorkers(t *testing.T) {
	up := echoServer(t)
	yml := serviceYML("tcp", "127.0.0.1", up.Port, "")
	h := &fakeHooks{ended: make(chan Record, 4)}
	e, _ := newTestEngine(t, h, yml, "")
	tcp, _ := listenerAddrs(e)
	c := dialDeadline(t, "tcp", tcp)
	echoOnce(t, c, "plugins")
	if sessionOf(t, e, c).lc == nil {
		t.Error("the session with plugins did not come back to its loop")
	}
	c.Close()
	if r := waitEnded(t, h); r.Status != StatusOK || r.BytesSent != 7 || len(r.Tries) != 1 {
		t.Errorf("status %d, sent %d, tries %v", r.Status, r.BytesSent, r.Tries)
	}

	refusing := &fakeHooks{status: 403, done: true, ended: make(chan Record, 4)}
	e, _ = newTestEngine(t, refusing, yml, "")
	tcp, _ = listenerAddrs(e)
	c = dialDeadline(t, "tcp", tcp)
	io.WriteString(c, "unread")
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read %d, %v; want EOF, not a reset", n, err)
	}
	if r := waitEnded(t, refusing); r.Status != 403 || len(r.Tries) != 0 {
		t.Errorf("status %d, tries %v; want 403 and none", r.Status, r.Tries)
	}
}
