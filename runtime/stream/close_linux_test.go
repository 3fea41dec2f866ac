package stream

import (
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair is a connected client and server socket on loopback.
func tcpPair(t *testing.T) (client net.Conn, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client = dialDeadline(t, "tcp", ln.Addr().String())
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return client, c.(*net.TCPConn)
}

// TestCloseRefusedDrainsOnlyWhenBytesAreUnread: a refused plain session
// whose client sent nothing closes at once, without a drain; one whose
// client's bytes were never read is drained, and its client reads a
// clean EOF, not a reset.
func TestCloseRefusedDrainsOnlyWhenBytesAreUnread(t *testing.T) {
	silent, server := tcpPair(t)
	s := &Session{down: server, stream: server}
	if s.closeRefused() {
		t.Error("a silent client's session is drained; want it closed at once")
	}
	if n, err := io.Copy(io.Discard, silent); n != 0 || err != nil {
		t.Errorf("silent client read %d bytes, then %v; want EOF", n, err)
	}

	talker, server := tcpPair(t)
	io.WriteString(talker, "hello, are you there?\n")
	deadline := time.Now().Add(10 * time.Second)
	for !unreadBytes(server) {
		if time.Now().After(deadline) {
			t.Fatal("the client's bytes never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	s = &Session{down: server, stream: server}
	if !s.closeRefused() {
		t.Fatal("a session with unread bytes is closed at once; want it drained")
	}
	drained := make(chan struct{})
	go func() { s.drain(); close(drained) }()
	if n, err := io.Copy(io.Discard, talker); n != 0 || err != nil {
		t.Errorf("client read %d bytes, then %v; want EOF", n, err)
	}
	talker.Close()
	<-drained
}
