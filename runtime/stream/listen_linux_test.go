package stream

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gong-proxy/gong/runtime/conf"
)

// sockopt reads an integer socket option of c.
func sockopt(t *testing.T, c syscall.Conn, level, opt int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, opt) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

func TestListenSocketFlags(t *testing.T) {
	tests := []struct {
		name      string
		l         conf.Listener
		reuse     int
		keepalive int
	}{
		{"plain", conf.Listener{Host: "127.0.0.1"}, 0, 0},
		{"reuseport", conf.Listener{Host: "127.0.0.1", ReusePort: true}, 1, 0},
		{"so_keepalive=on", conf.Listener{Host: "127.0.0.1", KeepAlive: conf.KeepAlive{Enabled: true}}, 0, 1},
		{"so_keepalive idle", conf.Listener{Host: "127.0.0.1", KeepAlive: conf.KeepAlive{Enabled: true, Idle: 7e9}}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, _, err := ListenSocket(tt.l)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			tl := ln.(*net.TCPListener)
			if got := sockopt(t, tl, unix.SOL_SOCKET, unix.SO_REUSEPORT); got != tt.reuse {
				t.Errorf("SO_REUSEPORT = %d; want %d", got, tt.reuse)
			}
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			accepted, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer accepted.Close()
			ac := accepted.(*net.TCPConn)
			if got := sockopt(t, ac, unix.SOL_SOCKET, unix.SO_KEEPALIVE); got != tt.keepalive {
				t.Errorf("SO_KEEPALIVE on accepted socket = %d; want %d", got, tt.keepalive)
			}
			if tt.l.KeepAlive.Idle > 0 {
				if got := sockopt(t, ac, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE); got != 7 {
					t.Errorf("TCP_KEEPIDLE = %d; want 7", got)
				}
			}
		})
	}
}

func TestListenSocketBacklogAndUDP(t *testing.T) {
	ln, _, err := ListenSocket(conf.Listener{Host: "127.0.0.1", Backlog: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// ss shows a listening socket's backlog as its Send-Q.
	port := ln.Addr().(*net.TCPAddr).Port
	out, err := exec.Command("ss", "-ltnH", fmt.Sprintf("sport = :%d", port)).Output()
	if err != nil {
		t.Fatalf("ss (iproute2): %v", err)
	}
	if f := strings.Fields(string(out)); len(f) < 3 || f[2] != "3" {
		t.Errorf("ss reports %q; want a backlog (Send-Q) of 3", out)
	}
	_, pc, err := ListenSocket(conf.Listener{Host: "127.0.0.1", UDP: true, ReusePort: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if got := sockopt(t, pc.(*net.UDPConn), unix.SOL_SOCKET, unix.SO_REUSEPORT); got != 1 {
		t.Errorf("SO_REUSEPORT on udp = %d; want 1", got)
	}
}

// sessionHooks hands each routed session to the test at preread.
type sessionHooks struct{ sessions chan *Session }

func (h sessionHooks) Preread(s *Session) (int, bool) { h.sessions <- s; return 0, false }
func (h sessionHooks) Log(*Session)                   {}
func (h sessionHooks) NoPlugins(*Route) bool          { return false }

// TestUpstreamSocketWithoutKeepalive: gong's upstream sockets have no TCP
// keepalive, as nginx's stream proxy without proxy_socket_keepalive. The
// service's host is a name, so that the session has goroutines and its
// upstream a net.Conn; the event loops open theirs with socket(2) and no
// option.
func TestUpstreamSocketWithoutKeepalive(t *testing.T) {
	up := upstreamServer(t, func(c net.Conn) { io.Copy(c, c) })
	h := sessionHooks{sessions: make(chan *Session, 1)}
	tcp, _ := testEngine(t, h, serviceYML("tcp", "localhost", up.Port, ""))
	c := dialDeadline(t, "tcp", tcp)
	var s *Session
	select {
	case s = <-h.sessions:
	case <-time.After(10 * time.Second):
		t.Fatal("no session reached preread within 10 s")
	}
	io.WriteString(c, "ping")
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		t.Fatalf("echo through the proxy: %v", err)
	}
	s.mu.Lock()
	upConn := s.up.(*net.TCPConn)
	s.mu.Unlock()
	if got := sockopt(t, upConn, unix.SOL_SOCKET, unix.SO_KEEPALIVE); got != 0 {
		t.Errorf("SO_KEEPALIVE on the upstream socket = %d; want 0", got)
	}
}
