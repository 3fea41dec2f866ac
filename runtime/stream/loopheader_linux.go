package stream

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"io"
	"time"

	"github.com/pires/go-proxyproto"
	"golang.org/x/sys/unix"

	"github.com/gong-proxy/gong/runtime/errlog"
)

// A proxy_protocol listener's session on a loop peeks at what the client
// sent until it holds a whole PROXY header (v1 or v2), then takes the
// header alone off the socket: the bytes after it stay for the relay.

// proxyV1Max is the longest v1 header, CRLF included, by the protocol's
// specification; a v2 header is its 16-byte prefix and the length that
// prefix gives, at most proxyproto.MaxV2HeaderSize.
const proxyV1Max = 107

// awaitHeader watches the client's socket for its PROXY header, for at
// most timeout (0: no limit), as readProxyHeader does on goroutines.
func (c *loopConn) awaitHeader(timeout time.Duration) {
	c.state = loopHeader
	c.dirs[toUpstream].quiet = true
	if err := c.l.register(c, toUpstream); err != nil {
		c.s.Log(errlog.LevelError, "epoll_ctl() failed: "+err.Error())
		c.s.end(StatusInternalError)
		return
	}
	if timeout > 0 {
		c.l.setTimer(c, c.l.now+int64(timeout))
	}
}

// readHeader looks at what the client sent so far. With a whole header
// the session goes on as one accepted without (begin), its socket out of
// the loop's epoll until it is dialed (start watches it again).
func (c *loopConn) readHeader() {
	fd := c.fd[toUpstream]
	var n int
	var err error
	for {
		n, _, err = unix.Recvfrom(fd, c.l.buf, unix.MSG_PEEK)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case err == unix.EAGAIN:
		return
	case err != nil:
		c.s.brokenHeader(opError("read", err))
		return
	}
	got := c.l.buf[:n]
	size := proxyHeaderSize(got)
	if size == 0 && n > 0 && !c.dirs[toUpstream].hup {
		return // more to come
	}
	if size <= 0 {
		size = n // the parser says what is wrong with it
	}
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(got[:size]), size))
	if err != nil {
		c.s.brokenHeader(err)
		return
	}
	if took, err := unix.Read(fd, c.l.buf[:size]); took != size { // what was peeked
		c.s.brokenHeader(opError("read", cmp.Or(err, io.ErrUnexpectedEOF)))
		return
	}
	c.l.stopTimer(c)
	c.l.unregister(c, toUpstream)
	c.state = loopDialing
	c.begin(c.s.useProxyHeader(h))
}

// proxyHeaderSize is the length of the PROXY header b starts with; 0
// while b may still become one, -1 when it cannot.
func proxyHeaderSize(b []byte) int {
	switch {
	case hasPrefixOrIsOne(b, proxyproto.SIGV2):
		if len(b) < 16 {
			return 0
		}
		n := binary.BigEndian.Uint16(b[14:16])
		if n > proxyproto.MaxV2HeaderSize {
			return -1
		}
		if len(b) < 16+int(n) {
			return 0
		}
		return 16 + int(n)
	case hasPrefixOrIsOne(b, proxyproto.SIGV1):
		if i := bytes.Index(b, []byte("\r\n")); i >= 0 && i+2 <= proxyV1Max {
			return i + 2
		}
		if len(b) < proxyV1Max {
			return 0
		}
	}
	return -1
}

// hasPrefixOrIsOne reports whether b starts with sig, or is shorter and
// starts sig.
func hasPrefixOrIsOne(b, sig []byte) bool {
	if len(b) < len(sig) {
		return bytes.HasPrefix(sig, b)
	}
	return bytes.HasPrefix(b, sig)
}
