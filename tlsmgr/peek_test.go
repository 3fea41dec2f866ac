package tlsmgr

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"slices"
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

// terminateAfterPeek peeks conn, then completes a TLS handshake over the
// replayed bytes and echoes one line back in upper case.
func terminateAfterPeek(t *testing.T, conn net.Conn, m *Manager) (Hello, error) {
	t.Helper()
	hello, err := PeekClientHello(conn, 16<<10, 5*time.Second)
	if err != nil {
		return hello, err
	}
	tc := tls.Server(NewReplayConn(conn, hello.Raw), m.ServerConfig())
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(tc, buf); err != nil {
		return hello, err
	}
	_, err = tc.Write(bytes.ToUpper(buf))
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

func peekManager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Options{Default: []Cert{selfSigned(t, "d", "default", "ecdsa")}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPeekClientHello(t *testing.T) {
	tests := []struct {
		name       string
		serverName string
		alpn       []string
	}{
		{"sni and alpn", "peek.test", []string{"h2", "x-gong"}},
		{"no sni", "", nil},
	}
	m := peekManager(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := tcpPair(t)
			errc := make(chan error, 1)
			go func() {
				errc <- talk(client, &tls.Config{ServerName: tt.serverName, NextProtos: tt.alpn, InsecureSkipVerify: true})
			}()
			hello, err := terminateAfterPeek(t, server, m)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("client: %v", err)
			}
			if !hello.IsTLS || hello.ServerName != tt.serverName || !slices.Equal(hello.ALPN, tt.alpn) {
				t.Errorf("hello = {IsTLS:%v ServerName:%q ALPN:%q}; want {true %q %q}",
					hello.IsTLS, hello.ServerName, hello.ALPN, tt.serverName, tt.alpn)
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

func TestPeekSplitClientHello(t *testing.T) {
	m := peekManager(t)
	// net.Pipe delivers each write separately, like separate segments.
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	errc := make(chan error, 1)
	go func() {
		errc <- talk(&splitConn{Conn: client, size: 40}, &tls.Config{ServerName: "split.test", NextProtos: []string{"h2"}, InsecureSkipVerify: true})
	}()
	hello, err := terminateAfterPeek(t, server, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("client: %v", err)
	}
	if hello.ServerName != "split.test" || !slices.Equal(hello.ALPN, []string{"h2"}) {
		t.Errorf("hello = %q %q; want split.test [h2]", hello.ServerName, hello.ALPN)
	}
	records := 0
	for raw := hello.Raw; len(raw) >= 5; raw = raw[5+int(binary.BigEndian.Uint16(raw[3:5])):] {
		records++
	}
	if records < 3 {
		t.Errorf("Raw holds %d records; want the ClientHello split over several", records)
	}
}

func TestPeekPlain(t *testing.T) {
	client, server := tcpPair(t)
	data := []byte("PING plain protocol\r\n")
	go func() {
		client.Write(data)
		client.(*net.TCPConn).CloseWrite()
	}()
	hello, err := PeekClientHello(server, 16<<10, 5*time.Second)
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

func TestPeekTimeout(t *testing.T) {
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
			got, err := PeekClientHello(server, 16<<10, 50*time.Millisecond)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("PeekClientHello error = %v; want deadline exceeded", err)
			}
			if !bytes.Equal(got.Raw, tt.sent) {
				t.Errorf("Raw = % x; want % x", got.Raw, tt.sent)
			}
			// The deadline is cleared: later reads wait for data.
			go client.Write([]byte("x"))
			server.SetReadDeadline(time.Now().Add(5 * time.Second))
			var b [1]byte
			if _, err := server.Read(b[:]); err != nil {
				t.Errorf("read after the peek: %v", err)
			}
		})
	}
}

func TestPeekTooLarge(t *testing.T) {
	client, server := tcpPair(t)
	if _, err := client.Write(clientHelloBytes(t, "big.test", nil)); err != nil {
		t.Fatal(err)
	}
	got, err := PeekClientHello(server, 64, 5*time.Second)
	if !errors.Is(err, ErrHelloTooLarge) {
		t.Fatalf("PeekClientHello error = %v; want ErrHelloTooLarge", err)
	}
	if len(got.Raw) != 64 {
		t.Errorf("len(Raw) = %d; want 64", len(got.Raw))
	}
}

func TestPeekMalformed(t *testing.T) {
	client, server := tcpPair(t)
	garbage := []byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x63, 0x00, 0x00, 0x00}
	if _, err := client.Write(garbage); err != nil {
		t.Fatal(err)
	}
	got, err := PeekClientHello(server, 16<<10, 5*time.Second)
	if err == nil {
		t.Fatal("PeekClientHello accepted a malformed hello")
	}
	if !got.IsTLS {
		t.Error("IsTLS = false for a handshake record")
	}
}

// TestPeekWritesNothing checks that the peek neither answers the client
// nor consumes more than it reports.
func TestPeekWritesNothing(t *testing.T) {
	client, server := tcpPair(t)
	hello := clientHelloBytes(t, "quiet.test", nil)
	if _, err := client.Write(hello); err != nil {
		t.Fatal(err)
	}
	got, err := PeekClientHello(server, 16<<10, 5*time.Second)
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
