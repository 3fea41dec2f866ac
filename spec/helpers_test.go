package spec

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gong-proxy/gong/runtime"
	"github.com/gong-proxy/gong/runtime/conf"
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
	dir := t.TempDir()
	g := &gong{dir: dir, errLog: &syncBuffer{},
		confPath: filepath.Join(dir, "kong.conf"), ymlPath: filepath.Join(dir, "kong.yml"),
		accessLog: filepath.Join(dir, "access.log")}
	base := "prefix = " + dir + "\ndatabase = off\ndeclarative_config = " + g.ymlPath +
		"\nproxy_stream_access_log = " + g.accessLog + " basic\nlog_level = info\n" +
		"admin_listen = off\nstatus_listen = off\n"
	writeFile(t, g.confPath, base+confExtra)
	writeFile(t, g.ymlPath, yml)
	opts.Conf = conf.Options{Path: g.confPath, Dir: dir}
	c, _, err := conf.Load(opts.Conf)
	if err != nil {
		t.Fatalf("kong.conf: %v", err)
	}
	opts.Config, opts.ErrorLog = c, g.errLog
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
	data, err := os.ReadFile(g.accessLog)
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

// freePort returns a loopback port nothing listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		return freePort(t) // the UDP port is taken: try another
	}
	pc.Close()
	return ln.Addr().(*net.TCPAddr).Port
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

// serveEcho answers lines on every connection ln accepts, until the test
// ends, and returns ln's address.
func serveEcho(t testing.TB, ln net.Listener, name string) string {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go echoLines(c, name)
		}
	}()
	return ln.Addr().String()
}

// echoLines answers each line read from c with name + ": " + the line.
func echoLines(c net.Conn, name string) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := io.WriteString(c, name+": "+line); err != nil {
			return
		}
	}
}

// startUDPEcho runs a UDP server that answers each datagram with name +
// ": " + the datagram.
func startUDPEcho(t *testing.T, name string) string {
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
			pc.WriteTo(append([]byte(name+": "), buf[:n]...), from)
		}
	}()
	return pc.LocalAddr().String()
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
