package tlsmgr

import (
	"crypto/tls"
	"io"
	"net"
	"time"
)

// Bounds of a graceful close: the bytes drained from the client and the
// time waited for its close.
const (
	DrainBytes   = 64 << 10
	DrainTimeout = time.Second
)

// Shutdown starts the graceful close of a session that ends before it
// proxied anything (a plugin refused it): a close_notify alert when down
// is TLS, then FIN on raw, the client connection. The client reads its
// EOF without an error; Drain finishes the close.
func Shutdown(down net.Conn, raw *net.TCPConn) {
	raw.SetWriteDeadline(time.Now().Add(DrainTimeout))
	if tc, ok := down.(*tls.Conn); ok {
		tc.CloseWrite()
	}
	raw.CloseWrite()
}

// Drain reads what the client sent, at most DrainBytes for at most
// DrainTimeout, until the client closes, then closes raw. Closing a
// socket with unread bytes makes the kernel reset the connection, which
// the client may see before the EOF Shutdown sent.
func Drain(raw *net.TCPConn) {
	raw.SetReadDeadline(time.Now().Add(DrainTimeout))
	io.CopyN(io.Discard, raw, DrainBytes)
	raw.Close()
}
