package tlsmgr

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// recordTypeHandshake is the first byte of a TLS handshake record.
const recordTypeHandshake = 0x16

// ErrHelloTooLarge is returned by PeekClientHello when the ClientHello does
// not fit in maxBytes (nginx: "ssl preread: buffer full").
var ErrHelloTooLarge = errors.New("tls client hello larger than the peek limit")

// errHelloRead stops the handshake once crypto/tls has parsed the
// ClientHello.
var errHelloRead = errors.New("client hello read")

// Hello is what PeekClientHello learnt from the start of a connection.
type Hello struct {
	// IsTLS is false when the first byte is not a TLS handshake record;
	// Kong then routes with no SNI.
	IsTLS bool
	// ServerName is the SNI, "" if the client sent none.
	ServerName string
	// ALPN lists the protocols the client offered.
	ALPN []string
	// Raw holds every byte read from the connection, to be replayed before
	// the rest of it.
	Raw []byte
}

// PeekClientHello reads the start of conn until crypto/tls has parsed a
// whole ClientHello (which may span several TLS records and TCP segments),
// reading at most maxBytes (nginx's preread_buffer_size is 16k) within
// timeout (preread_timeout, 30s; zero or negative means no time limit).
// Nothing is written to conn. With a time limit, the read deadline is
// cleared on return, replacing any the caller had set. The bytes read are
// in Raw, also when an error is returned; the caller replays them, either
// with NewReplayConn or, for a plain upstream, by writing Raw to it and
// then copying (splicing) the original conn.
//
// A first byte other than 0x16 returns IsTLS false and no error. A timeout
// returns an error wrapping os.ErrDeadlineExceeded; more than maxBytes
// returns ErrHelloTooLarge; a malformed ClientHello returns crypto/tls's
// error. The parsing is crypto/tls's own, as in traefik's clientHelloInfo.
func PeekClientHello(conn net.Conn, maxBytes int, timeout time.Duration) (Hello, error) {
	if timeout > 0 {
		if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return Hello{}, fmt.Errorf("peek client hello: %w", err)
		}
		defer conn.SetReadDeadline(time.Time{})
	}

	rc := &recordingConn{Conn: conn, limit: maxBytes}
	// The first byte decides, as in nginx's ssl_preread.
	var first [1]byte
	if _, err := io.ReadFull(rc, first[:]); err != nil {
		return Hello{Raw: rc.raw}, fmt.Errorf("peek client hello: %w", err)
	}
	if first[0] != recordTypeHandshake {
		return Hello{Raw: rc.raw}, nil
	}

	hello := Hello{IsTLS: true}
	rc.replay = rc.raw
	err := tls.Server(rc, &tls.Config{
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			hello.ServerName = chi.ServerName
			hello.ALPN = append([]string(nil), chi.SupportedProtos...)
			return nil, errHelloRead
		},
	}).Handshake()
	hello.Raw = rc.raw
	switch {
	case errors.Is(err, errHelloRead):
		return hello, nil
	case rc.err != nil:
		return hello, fmt.Errorf("peek client hello: %w", rc.err)
	default:
		return hello, fmt.Errorf("peek client hello: %w", err)
	}
}

// recordingConn hands crypto/tls the bytes of the underlying connection,
// keeping a copy, up to limit bytes, and drops everything crypto/tls
// writes (its alert after errHelloRead). Not safe for concurrent use.
type recordingConn struct {
	net.Conn
	limit  int
	raw    []byte // every byte read from Conn
	replay []byte // bytes of raw not yet given to the reader
	err    error  // the first read error, which crypto/tls may wrap
}

func (c *recordingConn) Read(p []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		return n, nil
	}
	if c.err != nil {
		return 0, c.err
	}
	room := c.limit - len(c.raw)
	if room <= 0 {
		c.err = ErrHelloTooLarge
		return 0, c.err
	}
	if len(p) > room {
		p = p[:room]
	}
	n, err := c.Conn.Read(p)
	c.raw = append(c.raw, p[:n]...)
	if err != nil {
		c.err = err
	}
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) { return len(p), nil }

// NewReplayConn returns a net.Conn that reads prefix and then conn, and
// writes to conn. Use it to hand a peeked connection to tls.Server. For
// proxying without TLS, prefer writing the prefix to the upstream yourself
// and copying conn directly, which keeps splice(2) with no wrapper; the
// replay conn still implements WriteTo and ReadFrom so that io.Copy through
// it reaches the kernel's splice once the prefix is drained.
func NewReplayConn(conn net.Conn, prefix []byte) net.Conn {
	return &replayConn{Conn: conn, prefix: prefix}
}

// replayConn is not safe for concurrent reads; reads and writes may run
// concurrently, as on any net.Conn.
type replayConn struct {
	net.Conn
	prefix []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// WriteTo writes the prefix, then copies the underlying conn with io.Copy,
// so a *net.TCPConn destination splices.
func (c *replayConn) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if len(c.prefix) > 0 {
		n, err := w.Write(c.prefix)
		total += int64(n)
		c.prefix = c.prefix[n:]
		if err != nil {
			return total, err
		}
	}
	n, err := io.Copy(w, c.Conn)
	return total + n, err
}

// ReadFrom copies src into the underlying conn, letting a *net.TCPConn
// splice.
func (c *replayConn) ReadFrom(src io.Reader) (int64, error) {
	return io.Copy(c.Conn, src)
}

// CloseWrite half-closes the underlying conn when it supports it.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("close write: not supported by the underlying connection")
}

// NetConn returns the underlying connection.
func (c *replayConn) NetConn() net.Conn { return c.Conn }
