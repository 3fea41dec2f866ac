package stream

import (
	"crypto/tls"
	"io"
	"time"
)

// Bounds of the graceful close of a refused session: the bytes drained
// from the client and the time waited for its close.
const (
	drainBytes   = 64 << 10
	drainTimeout = time.Second
)

// closeRefused starts closing the client side of a session the preread
// hook ended (a refusal or a plugin error) and reports whether drain must
// finish the close.
//
// Closing a socket with unread bytes makes the kernel send a reset in
// place of FIN, and the client may see the reset before what was sent to
// it. So a TLS session gets a close_notify alert and FIN, and a session
// whose client sent bytes no one read gets FIN; both are then drained. A
// plain session with nothing unread closes at once: its FIN goes out
// first, and nothing waits on a client that is not sending.
func (s *Session) closeRefused() bool {
	tc, isTLS := s.stream.(*tls.Conn)
	if !isTLS && !unreadBytes(s.down) {
		s.down.Close()
		return false
	}
	s.down.SetWriteDeadline(time.Now().Add(drainTimeout))
	if isTLS {
		tc.CloseWrite()
	}
	s.down.CloseWrite()
	return true
}

// drain reads what the client sends, at most drainBytes for at most
// drainTimeout, until it closes, then closes the socket.
func (s *Session) drain() {
	s.down.SetReadDeadline(time.Now().Add(drainTimeout))
	io.CopyN(io.Discard, s.down, drainBytes)
	s.down.Close()
}
