package tlsmgr

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
)

// recordTypeHandshake is the first byte of a TLS handshake record.
const recordTypeHandshake = 0x16

// ErrHelloTooLarge is returned by ReadClientHello when the ClientHello
// does not fit in maxBytes (nginx: "ssl preread: buffer full").
var ErrHelloTooLarge = errors.New("tls client hello larger than the preread buffer")

// errStopped ends the handshake when choose returns no configuration.
var errStopped = errors.New("stopped after the client hello")

// Hello is what the start of a connection told ReadClientHello.
type Hello struct {
	// IsTLS is false when the first byte is not a TLS handshake record;
	// Kong then routes with no SNI.
	IsTLS bool
	// ServerName is the SNI, "" if the client sent none.
	ServerName string
	// Raw holds every byte read from the connection until choose ran, to
	// be replayed before the rest of it when the handshake does not go on.
	Raw []byte
}

// ReadClientHello reads the start of conn until crypto/tls has parsed a
// whole ClientHello (which may span several TLS records and TCP segments),
// reading at most maxBytes (nginx's preread_buffer_size is 16k), and asks
// choose what to do with it. A configuration from choose completes the
// handshake on the same connection with it, in the same crypto/tls
// handshake that parsed the hello, and the returned *tls.Conn carries the
// stream; its error is the handshake's. nil stops: nothing has been
// written to conn, and Hello.Raw holds the bytes to replay, either with
// NewReplayConn or, for a plain upstream, by writing Raw to it and then
// copying (splicing) conn.
//
// A first byte other than 0x16 is not parsed: choose gets IsTLS false at
// once, and a configuration it returns fails its handshake on those
// bytes, as crypto/tls would. Without a call to choose (a nil *tls.Conn
// and an error), the hello could not be read: a read error (a deadline
// wraps os.ErrDeadlineExceeded), ErrHelloTooLarge past maxBytes, or
// crypto/tls's error for a malformed ClientHello. The parsing is
// crypto/tls's own, as in traefik's clientHelloInfo.
//
// ReadClientHello sets no deadline: the caller bounds the read with the
// conn's, and may move them in choose to bound the handshake.
func ReadClientHello(ctx context.Context, conn net.Conn, maxBytes int, choose func(Hello) *tls.Config) (*tls.Conn, Hello, error) {
	hc := &helloConn{Conn: conn, limit: maxBytes, choose: choose}
	// The first byte decides, as in nginx's ssl_preread.
	var first [1]byte
	if _, err := io.ReadFull(hc, first[:]); err != nil {
		return nil, Hello{Raw: hc.raw}, fmt.Errorf("read client hello: %w", err)
	}
	hc.replay = hc.raw
	if first[0] != recordTypeHandshake {
		hc.hello = Hello{Raw: hc.raw}
		cfg := choose(hc.hello)
		if cfg == nil {
			return nil, hc.hello, nil
		}
		hc.proceed()
		tc := tls.Server(hc, cfg)
		return tc, hc.hello, tc.HandshakeContext(ctx)
	}
	hc.hello.IsTLS = true
	tc := tls.Server(hc, helloConfig)
	err := tc.HandshakeContext(ctx)
	switch {
	case hc.decided:
		hello := hc.hello
		hc.hello = Hello{} // tc keeps hc for the connection's life, not the hello's bytes
		return tc, hello, err
	case errors.Is(err, errStopped):
		return nil, hc.hello, nil
	case hc.err != nil:
		return nil, Hello{IsTLS: true, Raw: hc.raw}, fmt.Errorf("read client hello: %w", hc.err)
	default:
		return nil, Hello{IsTLS: true, Raw: hc.raw}, fmt.Errorf("read client hello: %w", err)
	}
}

// helloConfig starts every handshake ReadClientHello parses: it hands the
// ClientHello to the connection's choose. One shared config costs no
// tls.Config per connection, and its session ticket keys, which crypto/tls
// takes from the first config of a handshake, live as long as the
// process; Manager's configurations seal tickets with their own keys
// (WrapSession), so these serve only configurations that do not.
var helloConfig = &tls.Config{
	GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		return chi.Conn.(*helloConn).chosen(chi)
	},
}

// helloConn hands crypto/tls the bytes of the underlying connection. Until
// choose has decided, it keeps a copy of them, up to limit bytes, and
// drops everything crypto/tls writes (its alert when the handshake stops
// there); once choose returned a configuration it passes reads and writes
// through. Reads are not safe for concurrent use before that.
type helloConn struct {
	net.Conn
	limit   int
	choose  func(Hello) *tls.Config
	hello   Hello
	raw     []byte // every byte read from Conn before the decision
	replay  []byte // bytes of raw not yet given to the reader
	err     error  // the first read error, which crypto/tls may wrap
	decided bool   // choose returned a configuration
}

// chosen is helloConfig's GetConfigForClient for c.
func (c *helloConn) chosen(chi *tls.ClientHelloInfo) (*tls.Config, error) {
	c.hello.ServerName, c.hello.Raw = chi.ServerName, c.raw
	cfg := c.choose(c.hello)
	if cfg == nil {
		return nil, errStopped
	}
	c.proceed()
	return cfg, nil
}

// proceed makes c pass everything through from now on.
func (c *helloConn) proceed() {
	c.decided, c.raw, c.limit, c.choose = true, nil, 0, nil
}

func (c *helloConn) Read(p []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		return n, nil
	}
	if c.decided {
		return c.Conn.Read(p)
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

func (c *helloConn) Write(p []byte) (int, error) {
	if c.decided {
		return c.Conn.Write(p)
	}
	return len(p), nil
}

// NewReplayConn returns a net.Conn that reads prefix and then conn, and
// writes to conn: bytes already read (past a PROXY header, say) are read
// again by whoever takes the connection next. For
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
