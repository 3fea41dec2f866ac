package spec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gong-proxy/gong/runtime"
	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/stream"
)

// gong is a server started in process by a test, with its files.
type gong struct {
	srv       *runtime.Server
	dir       string
	errLog    *syncBuffer
	confPath  string
	ymlPath   string
	accessLog string
}

// syncBuffer is an io.Writer safe for the server's goroutines and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startGong writes kong.conf (extra lines appended to a test base) and
// kong.yml into a temporary prefix and starts a server on them.
func startGong(t testing.TB, confExtra, yml string) *gong {
	t.Helper()
	return startGongWith(t, confExtra, yml, runtime.Options{})
}

// startGongWith is startGong with server options (Conf, Config and
// ErrorLog are filled in).
func startGongWith(t testing.TB, confExtra, yml string, opts runtime.Options) *gong {
	t.Helper()
	return startGongIn(t, t.TempDir(), confExtra, yml, opts)
}

// startGongIn is startGongWith in the prefix dir, which may hold an
// earlier server's files.
func startGongIn(t testing.TB, dir, confExtra, yml string, opts runtime.Options) *gong {
	t.Helper()
	g := &gong{dir: dir, errLog: &syncBuffer{},
		confPath: filepath.Join(dir, "kong.conf"), ymlPath: filepath.Join(dir, "kong.yml"),
		accessLog: filepath.Join(dir, "access.log")}
	base := "prefix = " + dir + "\ndatabase = off\ndeclarative_config = " + g.ymlPath +
		"\nproxy_stream_access_log = " + g.accessLog + " basic\nlog_level = info\n" +
		"admin_listen = off\nstatus_listen = off\n"
	writeFile(t, g.confPath, base+confExtra)
	writeFile(t, g.ymlPath, yml)
	// The environment is the caller's opts.Conf.Env only: the test
	// process's own never leaks in.
	opts.Conf = conf.Options{Path: g.confPath, Dir: dir, Env: opts.Conf.Env}
	c, _, err := conf.Load(opts.Conf)
	if err != nil {
		t.Fatalf("kong.conf: %v", err)
	}
	opts.Config, opts.ErrorLog = c, g.errLog
	if opts.Sockets == nil {
		opts.Sockets = sockets
	}
	g.srv, err = runtime.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.srv.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(g.stop)
	return g
}

// stop ends the server (idempotent) and returns once its logs are flushed.
func (g *gong) stop() {
	select {
	case <-g.srv.Done():
		return
	default:
	}
	g.srv.Stop()
}

// accessLines stops the server and returns its access log.
func (g *gong) accessLines(t *testing.T) []string {
	t.Helper()
	g.stop()
	return readLines(t, g.accessLog)
}

// waitSessionsEnded waits until the access log has n lines: n sessions
// have ended.
func (g *gong) waitSessionsEnded(t *testing.T, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d sessions end", n), func() bool {
		data, _ := os.ReadFile(g.accessLog)
		return strings.Count(string(data), "\n") >= n
	})
}

// waitErrLog waits until the error log contains want.
func (g *gong) waitErrLog(t *testing.T, what, want string) {
	t.Helper()
	eventually(t, what, func() bool { return strings.Contains(g.errLog.String(), want) })
}

// readLines returns the lines of the file at path.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// svc is a kong.yml service block forwarding to addr, with routes.
func svc(name, addr, extra, routes string) string {
	h, p := hostPort(addr)
	return fmt.Sprintf("  - name: %s\n    protocol: tcp\n    host: %s\n    port: %s\n%s    routes:\n%s", name, h, p, extra, routes)
}

// echoYML is a kong.yml with one service, name, forwarding to addr, and
// one TCP route to it by destination port.
func echoYML(name, addr string, port int) string {
	return "_format_version: \"3.0\"\nservices:\n" + svc(name, addr, "", fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{port: %d}]\n", port))
}

// Tests call t.Parallel() unless they change process-wide state
// (t.Setenv, GC settings, the PostgreSQL server the database tests share),
// measure the whole process (goroutines, pipe descriptors, RSS), or depend
// on timings of a few hundred milliseconds or on thousands of sessions.

// sockets are the listening sockets listenPort binds; every server
// startGong starts may take those its listen entries name.
var sockets = &stream.Inherited{}

// listenPort binds a TCP listener and a UDP socket on one free loopback
// port and returns the port, for a stream_listen, admin_listen or
// status_listen entry (and a route's destinations) of a server startGong
// starts: the server takes the bound socket of the entry with that address
// (runtime.Options.Sockets), so no other test or process can take the
// port in between. Sockets no server took are closed when the test ends.
func listenPort(t testing.TB) int {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err != nil {
			ln.Close()
			continue // the UDP port is taken: try another
		}
		sockets.AddTCP(ln)
		sockets.AddUDP(pc)
		t.Cleanup(func() { sockets.Drop(ln.Addr().String()) })
		return ln.Addr().(*net.TCPAddr).Port
	}
}

// activationSocket binds a TCP listener on a free loopback port for a gong
// started as a child process, which takes it by socket activation
// (activate): the port is never free in between. The test keeps its copy
// open until it ends, so a gong started again on the port takes the same
// socket.
func activationSocket(t testing.TB) (int, *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // the file is a copy of the socket
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return ln.Addr().(*net.TCPAddr).Port, f
}

// activate hands sockets to the gong cmd will start, as a service manager
// does (LISTEN_FDS, descriptors from 3), with the test's environment.
func activate(cmd *exec.Cmd, sockets ...*os.File) {
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, fmt.Sprintf("LISTEN_FDS=%d", len(sockets)))
	cmd.ExtraFiles = sockets
}

// freshProcessEnv marks a test binary that inFreshProcess started.
const freshProcessEnv = "GONG_SPEC_FRESH_PROCESS"

// inFreshProcess runs t alone in a new process of the test binary, for
// what earlier tests' state would blur (pooled pipes, descriptor limits),
// and fails t with that run's output when it fails. It reports whether
// the caller is that process and should go on with the test.
func inFreshProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(freshProcessEnv) != "" {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), freshProcessEnv+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s in a fresh process: %v\n%s", t.Name(), err, out)
	}
	return false
}

// startEcho runs a TCP server that answers each line with name + ": " +
// the line, so tests see which upstream answered. It returns its address.
func startEcho(t testing.TB, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveEcho(t, ln, name)
}

// serveEcho answers lines on every connection ln accepts as startEcho
// does, until the test ends, and returns ln's address.
func serveEcho(t testing.TB, ln net.Listener, name string) string {
	return serveAnswers(t, ln, func(line string) string { return name + ": " + line })
}

// serveAnswers answers each line read on every connection ln accepts
// with answer(line) and a newline, until the test ends, and returns ln's
// address.
func serveAnswers(t testing.TB, ln net.Listener, answer func(line string) string) string {
	return serveConns(t, ln, func(c net.Conn, _ int) {
		defer c.Close()
		eachLine(c, func(line string) bool {
			_, err := io.WriteString(c, answer(line)+"\n")
			return err == nil
		})
	})
}

// serveConns runs handle on its own goroutine for every connection ln
// accepts, numbered from 1, until the test ends, and returns ln's address.
func serveConns(t testing.TB, ln net.Listener, handle func(c net.Conn, n int)) string {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for n := 1; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c, n)
		}
	}()
	return ln.Addr().String()
}

// eachLine calls fn with each line read from c, without its newline,
// until c ends or fn returns false.
func eachLine(c net.Conn, fn func(line string) bool) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil || !fn(strings.TrimSuffix(line, "\n")) {
			return
		}
	}
}

// startUDPEcho runs a UDP server that answers each datagram with name +
// ": " + the datagram.
func startUDPEcho(t testing.TB, name string) string {
	t.Helper()
	return startUDPServer(t, func(msg string) string { return name + ": " + msg })
}

// startUDPServer runs a UDP server that answers each datagram msg with
// answer(msg), until the test ends, and returns its address.
func startUDPServer(t testing.TB, answer func(msg string) string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(answer(string(buf[:n]))), from)
		}
	}()
	return pc.LocalAddr().String()
}

// dialUDP connects a UDP client to a gong listener with a deadline for the
// whole exchange.
func dialUDP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// udpAsk sends one datagram from c and returns the reply.
func udpAsk(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no UDP reply to %q: %v", msg, err)
	}
	return string(buf[:n])
}

// dial connects to a gong listener with a deadline for the whole exchange.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends one line and returns the answer line.
func exchange(c net.Conn, line string) (string, error) {
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(got, "\n"), err
}

// roundTrip opens a connection, exchanges one line and closes.
func roundTrip(addr, line string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return exchange(c, line)
}

// expectClosed asserts the peer closes c without sending anything.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	buf := make([]byte, 1)
	n, err := c.Read(buf)
	var ne net.Error
	if n > 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("read = %d, %v; want the connection closed by gong", n, err)
	}
}

func hostPort(addr string) (string, string) {
	h, p, _ := net.SplitHostPort(addr)
	return h, p
}

// eventually polls cond until it holds or 10 seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: not within 10s", what)
		}
	}
}
