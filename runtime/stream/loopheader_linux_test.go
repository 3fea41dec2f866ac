package stream

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/pires/go-proxyproto"
)

func TestProxyHeaderSize(t *testing.T) {
	v1 := "PROXY TCP4 203.0.113.7 127.0.0.1 5000 6000\r\n"
	v2 := proxyV2Header(t, 5000)
	for _, tc := range []struct {
		name string
		b    string
		want int
	}{
		{"nothing yet", "", 0},
		{"v1 signature begun", "PRO", 0},
		{"v1 without its CRLF", v1[:20], 0},
		{"v1 whole, bytes after", v1 + "data", len(v1)},
		{"v1 with no CRLF in 107 bytes", "PROXY " + strings.Repeat("1", 120), -1},
		{"v2 signature begun", v2[:5], 0},
		{"v2 prefix alone", v2[:16], 0},
		{"v2 whole, bytes after", v2 + "data", len(v2)},
		{"v2 longer than the parser takes", v2[:14] + "\xff\xff", -1},
		{"not a header", "GET / HTTP/1.1\r\n", -1},
	} {
		if got := proxyHeaderSize([]byte(tc.b)); got != tc.want {
			t.Errorf("%s: %d; want %d", tc.name, got, tc.want)
		}
	}
}

// proxyV2Header is a v2 header from 203.0.113.7:port.
func proxyV2Header(t testing.TB, port int) string {
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: port}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6000})
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A proxy_protocol listener's sessions read their header on the loop:
// sent whole or in parts, v1 or v2, with the client's first bytes in the
// same packet; the client is the header's source.
func TestLoopProxyHeader(t *testing.T) {
	up := echoServer(t)
	// The route matches the header's source only.
	yml := strings.Replace(serviceYML("tcp", "127.0.0.1", up.Port, ""), "ip: 127.0.0.1", "ip: 203.0.113.7", 1)
	e, tcp, h, _ := loopEngine(t, yml, "stream_listen = 127.0.0.1:0 proxy_protocol\ntrusted_ips = 127.0.0.1\n")
	v1 := func(port int) string { return fmt.Sprintf("PROXY TCP4 203.0.113.7 127.0.0.1 %d 6000\r\n", port) }
	for i, parts := range [][]string{
		{v1(5000) + "hello"},
		{v1(5001)[:9], v1(5001)[9:30], v1(5001)[30:] + "hello"},
		{proxyV2Header(t, 5002) + "hello"},
	} {
		client := fmt.Sprintf("203.0.113.7:%d", 5000+i)
		c := dialDeadline(t, "tcp", tcp)
		for _, p := range parts {
			if _, err := io.WriteString(c, p); err != nil {
				t.Fatal(err)
			}
		}
		got := make([]byte, 5)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello" {
			t.Fatalf("%q: echo %q, %v", parts, got, err)
		}
		if i := slices.IndexFunc(e.Sessions(), func(s *Session) bool { return s.Info().Client.String() == client }); i < 0 || e.Sessions()[i].lc == nil {
			t.Errorf("%q: no session from %s on a loop", parts, client)
		}
		c.Close()
		if r := waitEnded(t, h); r.Status != StatusOK || r.BytesReceived != 5 || r.Remote.String() != client {
			t.Errorf("%q: status %d, received %d, remote %v; want 200, 5 (the header is not the client's), %s",
				parts, r.Status, r.BytesReceived, r.Remote, client)
		}
	}
}

// A header that is not one, one the client ends before it is whole, and
// one that never comes each end the session with 400 and a line in the
// error log; the last after nginx_sproxy_proxy_protocol_timeout.
func TestLoopBrokenProxyHeader(t *testing.T) {
	up := echoServer(t)
	_, tcp, h, log := loopEngine(t, serviceYML("tcp", "127.0.0.1", up.Port, ""),
		"stream_listen = 127.0.0.1:0 proxy_protocol\nnginx_sproxy_proxy_protocol_timeout = 300ms\n")
	for _, tc := range []struct {
		name, send    string
		closeWrite    bool
		want, notWant string
	}{
		{"not a header", "GET / HTTP/1.1\r\n\r\n", false, "proxy protocol signature not present", "i/o timeout"},
		// at the client's end, not at the timeout
		{"cut short", "PROXY TCP4 203.0", true, "while reading PROXY protocol", "i/o timeout"},
		{"never sent", "", false, "i/o timeout while reading PROXY protocol", ""},
	} {
		c := dialDeadline(t, "tcp", tcp)
		io.WriteString(c, tc.send)
		if tc.closeWrite {
			c.(*net.TCPConn).CloseWrite()
		}
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s: read %d bytes; want the connection closed", tc.name, n)
		}
		c.Close()
		if r := waitEnded(t, h); r.Status != StatusBadRequest {
			t.Errorf("%s: status %d; want 400", tc.name, r.Status)
		}
		if l := log.String(); !strings.Contains(l, tc.want) || tc.notWant != "" && strings.Contains(l, tc.notWant) {
			t.Errorf("%s: want %q and not %q in the error log", tc.name, tc.want, tc.notWant)
		}
	}
}

// A session closed (Admin API) while its PROXY header is awaited ends
// with 400 and a broken-header line, as on goroutines.
func TestLoopSessionClosedAwaitingHeader(t *testing.T) {
	up := echoServer(t)
	e, tcp, h, log := loopEngine(t, serviceYML("tcp", "127.0.0.1", up.Port, ""), "stream_listen = 127.0.0.1:0 proxy_protocol\n")
	c := dialDeadline(t, "tcp", tcp)
	io.WriteString(c, "PROXY TCP4")
	eventuallyTrue(t, "the session listed", func() bool { return len(e.Sessions()) == 1 })
	e.Sessions()[0].Close()
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("read %d bytes; want the connection closed", n)
	}
	if r := waitEnded(t, h); r.Status != StatusBadRequest {
		t.Errorf("status %d; want 400", r.Status)
	}
	if want := "use of closed network connection while reading PROXY protocol"; !strings.Contains(log.String(), want) {
		t.Errorf("no %q in the error log", want)
	}
}
