package tlsmgr

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// clientHelloBytes returns the first record a Go client sends.
func clientHelloBytes(t *testing.T, serverName string, alpn []string) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer s.Close()
	go func() {
		tls.Client(c, &tls.Config{ServerName: serverName, NextProtos: alpn, InsecureSkipVerify: true}).Handshake()
		c.Close()
	}()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(s, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(s, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// terminateAfterHello reads conn's ClientHello, completes the handshake
// with the manager's config and echoes one line back in upper case.
func terminateAfterHello(t *testing.T, conn net.Conn, m *Manager) (Hello, error) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	tc, hello, err := ReadClientHello(context.Background(), conn, 16<<10, func(Hello) *tls.Config { return m.ServerConfig() })
	if err != nil {
		return hello, err
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(tc, buf); err != nil {
		return hello, err
	}
	_, err = tc.Write(bytes.ToUpper(buf))
	return hello, err
}

// stopAfterHello reads conn's ClientHello and stops there.
func stopAfterHello(conn net.Conn, limit int) (Hello, error) {
	tc, hello, err := ReadClientHello(context.Background(), conn, limit, func(Hello) *tls.Config { return nil })
	if tc != nil {
		return hello, errors.New("a handshake went on after choose returned nil")
	}
	return hello, err
}

// talk runs a TLS client over conn that sends "hello" and expects "HELLO".
func talk(conn net.Conn, cfg *tls.Config) error {
	tc := tls.Client(conn, cfg)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := tc.Write([]byte("hello")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(tc, buf); err != nil {
		return err
	}
	if string(buf) != "HELLO" {
		return errors.New("unexpected reply " + string(buf))
	}
	return nil
}

func helloManager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Options{Default: []Cert{selfSigned(t, "d", "default", "ecdsa")}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestReadClientHelloTerminates(t *testing.T) {
	tests := []struct {
		name       string
		serverName string
		alpn       []string
	}{
		{"sni and alpn", "peek.test", []string{"h2", "x-gong"}},
		{"no sni", "", nil},
	}
	m := helloManager(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := tcpPair(t)
			errc := make(chan error, 1)
			go func() {
				errc <- talk(client, &tls.Config{ServerName: tt.serverName, NextProtos: tt.alpn, InsecureSkipVerify: true})
			}()
			hello, err := terminateAfterHello(t, server, m)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("client: %v", err)
			}
			if !hello.IsTLS || hello.ServerName != tt.serverName {
				t.Errorf("hello = {IsTLS:%v ServerName:%q}; want {true %q}", hello.IsTLS, hello.ServerName, tt.serverName)
			}
			if len(hello.Raw) == 0 || hello.Raw[0] != recordTypeHandshake {
				t.Errorf("Raw does not start with a handshake record: % x", hello.Raw[:min(8, len(hello.Raw))])
			}
		})
	}
}

// splitConn re-frames the client's first record (the ClientHello) into
// records of at most size bytes and sends each record in two writes.
type splitConn struct {
	net.Conn
	size int
	done bool
}

func (c *splitConn) Write(p []byte) (int, error) {
	if c.done || len(p) < 5 || p[0] != recordTypeHandshake {
		return c.Conn.Write(p)
	}
	c.done = true
	n := 5 + int(binary.BigEndian.Uint16(p[3:5]))
	body := p[5:n]
	for len(body) > 0 {
		chunk := body[:min(c.size, len(body))]
		body = body[len(chunk):]
		rec := append([]byte{p[0], p[1], p[2], 0, 0}, chunk...)
		binary.BigEndian.PutUint16(rec[3:], uint16(len(chunk)))
		half := len(rec) / 2
		if _, err := c.Conn.Write(rec[:half]); err != nil {
			return 0, err
		}
		if _, err := c.Conn.Write(rec[half:]); err != nil {
			return 0, err
		}
	}
	if n < len(p) {
		if _, err := c.Conn.Write(p[n:]); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func TestReadSplitClientHello(t *testing.T) {
	m := helloManager(t)
	// net.Pipe delivers each write separately, like separate segments.
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	errc := make(chan error, 1)
	go func() {
		errc <- talk(&splitConn{Conn: client, size: 40}, &tls.Config{ServerName: "split.test", NextProtos: []string{"h2"}, InsecureSkipVerify: true})
	}()
	hello, err := terminateAfterHello(t, server, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("client: %v", err)
	}
	if hello.ServerName != "split.test" {
		t.Errorf("ServerName = %q; want split.test", hello.ServerName)
	}
	records := 0
	for raw := hello.Raw; len(raw) >= 5; raw = raw[5+int(binary.BigEndian.Uint16(raw[3:5])):] {
		records++
	}
	if records < 3 {
		t.Errorf("Raw holds %d records; want the ClientHello split over several", records)
	}
}

func TestReadHelloPlain(t *testing.T) {
	client, server := tcpPair(t)
	data := []byte("PING plain protocol\r\n")
	go func() {
		client.Write(data)
		client.(*net.TCPConn).CloseWrite()
	}()
	server.SetDeadline(time.Now().Add(5 * time.Second))
	hello, err := stopAfterHello(server, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	if hello.IsTLS || hello.ServerName != "" {
		t.Errorf("hello = {IsTLS:%v ServerName:%q}; want not TLS", hello.IsTLS, hello.ServerName)
	}
	got, err := io.ReadAll(NewReplayConn(server, hello.Raw))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("replayed %q; want %q", got, data)
	}
}

func TestReadHelloTimeout(t *testing.T) {
	hello := clientHelloBytes(t, "slow.test", nil)
	tests := []struct {
		name string
		sent []byte
	}{
		{"nothing sent", nil},
		{"partial hello", hello[:10]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := tcpPair(t)
			if _, err := client.Write(tt.sent); err != nil {
				t.Fatal(err)
			}
			server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			got, err := stopAfterHello(server, 16<<10)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("ReadClientHello error = %v; want deadline exceeded", err)
			}
			if !bytes.Equal(got.Raw, tt.sent) {
				t.Errorf("Raw = % x; want % x", got.Raw, tt.sent)
			}
		})
	}
}

func TestReadHelloTooLarge(t *testing.T) {
	client, server := tcpPair(t)
	if _, err := client.Write(clientHelloBytes(t, "big.test", nil)); err != nil {
		t.Fatal(err)
	}
	server.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := stopAfterHello(server, 64)
	if !errors.Is(err, ErrHelloTooLarge) {
		t.Fatalf("ReadClientHello error = %v; want ErrHelloTooLarge", err)
	}
	if len(got.Raw) != 64 {
		t.Errorf("len(Raw) = %d; want 64", len(got.Raw))
	}
}

func TestReadHelloMalformed(t *testing.T) {
	client, server := tcpPair(t)
	garbage := []byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x63, 0x00, 0x00, 0x00}
	if _, err := client.Write(garbage); err != nil {
		t.Fatal(err)
	}
	server.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := stopAfterHello(server, 16<<10)
	if err == nil {
		t.Fatal("ReadClientHello accepted a malformed hello")
	}
	if !got.IsTLS {
		t.Error("IsTLS = false for a handshake record")
	}
}

// TestStoppedHelloWritesNothing checks that a hello choose stops at is
// neither answered nor consumed past what Raw reports.
func TestStoppedHelloWritesNothing(t *testing.T) {
	client, server := tcpPair(t)
	hello := clientHelloBytes(t, "quiet.test", nil)
	if _, err := client.Write(hello); err != nil {
		t.Fatal(err)
	}
	server.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := stopAfterHello(server, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Raw, hello) {
		t.Errorf("Raw differs from the bytes sent")
	}
	server.Close()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, client)
	if n != 0 || err != nil {
		t.Errorf("client received %d bytes (err %v); want none and EOF", n, err)
	}
}

// TestReplayConnCopy copies through a replay conn in both directions with
// io.Copy, the path that lets *net.TCPConn splice.
func TestReplayConnCopy(t *testing.T) {
	downClient, down := tcpPair(t)
	upClient, up := tcpPair(t)
	rc := NewReplayConn(down, []byte("prefix-"))
	go func() {
		downClient.Write([]byte("rest"))
		downClient.(*net.TCPConn).CloseWrite()
	}()
	if _, err := io.Copy(up, rc); err != nil {
		t.Fatal(err)
	}
	up.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(upClient)
	if err != nil || string(got) != "prefix-rest" {
		t.Errorf("upstream got %q, %v; want prefix-rest", got, err)
	}

	go func() {
		upClient.Write([]byte("reply"))
		upClient.(*net.TCPConn).CloseWrite()
	}()
	if _, err := io.Copy(rc, up); err != nil {
		t.Fatal(err)
	}
	if err := rc.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(downClient)
	if err != nil || string(got) != "reply" {
		t.Errorf("client got %q, %v; want reply", got, err)
	}
	if rc.(interface{ NetConn() net.Conn }).NetConn() != down {
		t.Error("NetConn does not return the wrapped conn")
	}
}

// serveHello serves TLS as serveTLS does, each handshake started by
// ReadClientHello with the config choose picks for the nth connection.
func serveHello(t *testing.T, choose func(n int, h Hello) *tls.Config) string {
	return serveHandshakes(t, func(n int, conn net.Conn) *tls.Conn {
		tc, _, err := ReadClientHello(context.Background(), conn, 16<<10, func(h Hello) *tls.Config { return choose(n, h) })
		if err != nil {
			return nil
		}
		return tc
	})
}

// TestReadClientHelloResumes: a ticket resumes whether its handshake and
// the next were started by ReadClientHello (whose own first config is
// where crypto/tls takes ticket keys from) or by the manager's config
// itself, also on a route's config, with and without
// ssl_session_timeout: the manager seals tickets with its own keys.
func TestReadClientHelloResumes(t *testing.T) {
	def := []Cert{selfSigned(t, "d", "default", "ecdsa")}
	for _, timeout := range []time.Duration{0, time.Hour} {
		m, err := New(Options{Default: def, SessionTickets: true, SessionTimeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		route := m.ServerConfigFor(RouteTLS{NextProtos: []string{"x-gong"}})
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(fmt.Sprintf("%s timeout %v", tls.VersionName(version), timeout), func(t *testing.T) {
				var names []string
				var mu sync.Mutex
				helloAddr := serveHello(t, func(n int, h Hello) *tls.Config {
					mu.Lock()
					names = append(names, h.ServerName)
					mu.Unlock()
					if n%2 == 1 {
						return route
					}
					return m.ServerConfig()
				})
				plainAddr := serveTLS(t, m.ServerConfig())
				cache := tls.NewLRUClientSessionCache(4)
				steps := []struct {
					addr    string
					resumed bool
				}{{plainAddr, false}, {helloAddr, true}, {helloAddr, true}, {plainAddr, true}}
				for i, step := range steps {
					cli := &tls.Config{ServerName: "resume.test", NextProtos: []string{"x-gong"}, MinVersion: version, MaxVersion: version, ClientSessionCache: cache}
					st, err := handshake(t, step.addr, cli)
					if err != nil {
						t.Fatal(err)
					}
					if st.DidResume != step.resumed {
						t.Errorf("connection %d: resumed = %v; want %v", i+1, st.DidResume, step.resumed)
					}
				}
				mu.Lock()
				defer mu.Unlock()
				if !slices.Equal(names, []string{"resume.test", "resume.test"}) {
					t.Errorf("choose saw server names %q", names)
				}
			})
		}
	}
}

// TestReadClientHelloRetry: when the client's key shares are not the
// server's curve, TLS 1.3 asks for a second ClientHello (a
// HelloRetryRequest), which the chosen config reads on the same
// connection; choose runs once.
func TestReadClientHelloRetry(t *testing.T) {
	m, err := New(Options{Default: []Cert{selfSigned(t, "d", "default", "ecdsa")}, CurvePreferences: []tls.CurveID{tls.CurveP384}})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	addr := serveHello(t, func(int, Hello) *tls.Config {
		calls.Add(1)
		return m.ServerConfig()
	})
	st, err := handshake(t, addr, &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP384}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != tls.VersionTLS13 || st.CurveID != tls.CurveP384 || !st.HelloRetryRequest {
		t.Errorf("version %s, curve %v, retried %v; want TLS 1.3 on P-384 after a retry", tls.VersionName(st.Version), st.CurveID, st.HelloRetryRequest)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("choose ran %d times; want 1", n)
	}
}
