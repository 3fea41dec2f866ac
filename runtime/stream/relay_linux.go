package stream

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// copyTCP moves what src receives to dst until src has been quiet for
// wait (errQuiet; 0: never), EOF (io.EOF) or an error. Small reads go through a
// pooled buffer and, when one fills it, the rest that is queued goes with
// splice(2).
//
// TCPConn.ReadFrom alone would splice everything, but it holds a pipe pair
// (two descriptors and a kernel buffer) for as long as it waits, and a
// small message would cost four system calls where read and write take
// two. A LimitedReader of exactly the queued bytes keeps ReadFrom on the
// splice path and returns the pipe to Go's pool at once.
//
// The read deadline that ends a quiet spell is set once per spell, not
// per read: when it passes while bytes still move, it is set again from
// the last byte.
func (r *relay) copyTCP(dst, src *net.TCPConn, wait time.Duration, count *atomic.Int64) error {
	rc, err := src.SyscallConn()
	if err != nil {
		return err
	}
	b := &burst{r: r, dst: dst, count: count, last: time.Now().UnixNano()}
	read := b.read // made once per spell, not per read
	for {
		if wait > 0 {
			src.SetReadDeadline(time.Unix(0, b.last).Add(wait))
		} else {
			src.SetReadDeadline(time.Time{})
		}
		b.queued, b.eof, b.err = 0, false, nil
		err := rc.Read(read)
		if err == nil {
			err = b.err
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if time.Now().UnixNano()-b.last < int64(wait) {
				continue // bytes moved within wait: not quiet yet
			}
			return errQuiet
		case err != nil:
			return err
		case b.eof:
			return io.EOF
		}
		m, err := dst.ReadFrom(&io.LimitedReader{R: src, N: int64(b.queued)})
		if m > 0 {
			b.last = r.moved(count, m)
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
	}
}

// smallRead is the most copyTCP copies through user space per read.
const smallRead = 4 << 10

var smallBuffers = sync.Pool{New: func() any { b := make([]byte, smallRead); return &b }}

// burst moves what a socket receives to dst, one read at a time, within
// one RawConn.Read (read is its callback), until EOF, an error, or a read
// that fills the buffer (queued then says how many more bytes wait).
//
// After a read that did not fill the buffer the queue was empty, so it
// waits in Go's poller at once, without the read that would only say
// EAGAIN: the poller is edge-triggered and marks the socket readable for
// any byte that arrives after that read. This holds only within one
// RawConn.Read, which forgets readiness when it begins; so a burst never
// leaves it between reads. The buffer is borrowed only while there is
// data to copy.
type burst struct {
	r      *relay
	dst    net.Conn
	count  *atomic.Int64
	last   int64 // unix nanoseconds of the last byte moved
	queued int
	eof    bool
	err    error
}

func (b *burst) read(fd uintptr) bool {
	bp := smallBuffers.Get().(*[]byte)
	defer smallBuffers.Put(bp)
	var n int
	var e error
	for {
		n, e = unix.Read(int(fd), *bp) // the socket is non-blocking
		if e != unix.EINTR {
			break
		}
	}
	switch {
	case e == unix.EAGAIN:
		return false // not readable yet: wait in the poller
	case e != nil:
		b.err = e
		return true
	case n == 0:
		b.eof = true
		return true
	}
	_, werr := b.dst.Write((*bp)[:n])
	b.last = b.r.moved(b.count, int64(n))
	if werr != nil {
		b.err = werr
		return true
	}
	if n == smallRead {
		b.queued, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ)
		return b.queued > 0 // more than a buffer: splice it
	}
	return false // the queue is empty: wait for more
}

// unreadBytes reports whether c has received bytes not read yet.
func unreadBytes(c *net.TCPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return true
	}
	n := 1
	rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) })
	return n > 0
}
