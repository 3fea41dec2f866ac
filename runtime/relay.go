package runtime

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// quietProbes is how many quiet probes in a row make a connection idle;
// probes come every idle/quietProbes, so an idle connection is closed
// between 1 and 1+1/quietProbes times the idle timeout after its last byte.
const quietProbes = 4

// relay copies bytes both ways between the client and the upstream until
// both directions end, or no byte has moved for the idle timeout.
//
// Between two plain TCP sockets each direction is one TCPConn.ReadFrom,
// which Go runs as splice(2): the bytes never enter user space. To still
// notice idleness, a timer probes the copies: it sets a past read deadline
// on each live direction, which returns from ReadFrom with the bytes moved
// so far, reports them, and goes on. Per-chunk bookkeeping would defeat
// splice; this costs two system calls per direction and probe.
type relay struct {
	down, up net.Conn
	idle     time.Duration

	mu          sync.Mutex // guards the fields below and the read deadlines
	live        int        // directions still copying
	interrupted [2]bool    // a probe interrupted this direction and awaits its report
	pending     int        // directions yet to report to the current probe
	moved       bool       // bytes moved since the previous probe
	quiet       int        // quiet probes in a row
	timer       *time.Timer
	idled       bool
	finished    [2]bool // this direction reached EOF or failed

	sent, received int64 // bytes to and from the client
}

const (
	toUpstream = iota
	toClient
)

// run relays until the session ends and returns whether it ended idle.
// first is written to the upstream before anything else.
func (r *relay) run(first []byte) (idled bool, err error) {
	if len(first) > 0 {
		if _, err := r.up.Write(first); err != nil {
			return false, err
		}
		r.received += int64(len(first))
	}
	r.live = 2
	if r.idle > 0 {
		r.timer = time.AfterFunc(r.idle/quietProbes, r.probe)
	}
	done := make(chan error, 1)
	go r.pumpToClient(done)
	errUp := r.pump(toUpstream, r.up, r.down, &r.received)
	errDown := <-done
	if r.timer != nil {
		r.timer.Stop()
	}
	return r.idled, errors.Join(errUp, errDown)
}

// pumpToClient runs the upstream-to-client direction; it is its own
// function so stack traces name it.
func (r *relay) pumpToClient(done chan<- error) {
	done <- r.pump(toClient, r.down, r.up, &r.sent)
}

// pump copies src to dst until EOF, then half-closes dst. A failure on
// either side ends the whole session.
func (r *relay) pump(dir int, dst, src net.Conn, count *int64) error {
	for {
		n, err := copyOnce(dst, src)
		*count += n
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && r.report(dir, n > 0, src) {
			continue
		}
		r.end(dir)
		if err != nil {
			if r.wasIdled() {
				return nil
			}
			r.down.Close()
			r.up.Close()
			return err
		}
		closeWrite(dst)
		return nil
	}
}

// report hands a probe the result of one interrupted copy and says
// whether to go on copying.
func (r *relay) report(dir int, moved bool, src net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.interrupted[dir] || r.idled {
		return false
	}
	r.interrupted[dir] = false
	r.moved = r.moved || moved
	src.SetReadDeadline(time.Time{})
	r.pending--
	if r.pending == 0 {
		r.decide()
	}
	return !r.idled
}

// probe interrupts every live direction so it reports what it moved.
func (r *relay) probe() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live == 0 || r.idled {
		return
	}
	past := time.Unix(1, 0)
	r.pending = 0
	for dir, live := range r.liveDirs() {
		if live {
			r.interrupted[dir] = true
			r.pending++
			r.source(dir).SetReadDeadline(past)
		}
	}
}

// decide runs when every live direction has reported to a probe. r.mu is
// held.
func (r *relay) decide() {
	if r.moved {
		r.quiet = 0
	} else {
		r.quiet++
	}
	r.moved = false
	if r.quiet >= quietProbes {
		r.idled = true
		r.down.Close()
		r.up.Close()
		return
	}
	r.timer.Reset(r.idle / quietProbes)
}

// end marks a direction finished; a probe waiting for it stops waiting.
func (r *relay) end(dir int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live--
	r.finished[dir] = true
	if r.interrupted[dir] {
		r.interrupted[dir] = false
		r.pending--
		if r.pending == 0 && !r.idled {
			r.decide()
		}
	}
}

func (r *relay) wasIdled() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.idled
}

func (r *relay) liveDirs() [2]bool {
	return [2]bool{!r.finished[toUpstream], !r.finished[toClient]}
}

func (r *relay) source(dir int) net.Conn {
	if dir == toUpstream {
		return r.down
	}
	return r.up
}

// copyOnce copies until EOF or an error. Between two TCP sockets it
// splices (spliceTCP); anything else (TLS) goes through a pooled buffer.
func copyOnce(dst, src net.Conn) (int64, error) {
	if d, ok := dst.(*net.TCPConn); ok {
		if s, ok := src.(*net.TCPConn); ok {
			return spliceTCP(d, s)
		}
	}
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// closeWrite half-closes c when it can, so the peer sees EOF while the
// other direction goes on.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// spliceTCP moves src to dst with splice(2) until EOF or an error.
//
// TCPConn.ReadFrom alone would splice too, but it holds a pipe pair (two
// descriptors and a kernel buffer) for as long as it waits for data, so
// every idle connection would hold two of them. Instead this waits for
// src to be readable holding nothing, asks the kernel how many bytes are
// queued, and splices exactly those through a LimitedReader, which
// ReadFrom still splices and which returns the pipe to Go's pool at once.
func spliceTCP(dst, src *net.TCPConn) (int64, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		queued, eof, err := waitQueued(rc)
		if err != nil || eof {
			return total, err
		}
		n, err := dst.ReadFrom(&io.LimitedReader{R: src, N: int64(queued)})
		total += n
		if err != nil {
			return total, err
		}
	}
}

// waitQueued blocks, in the poller and within src's read deadline, until
// the socket has bytes queued or has reached EOF.
func waitQueued(rc syscall.RawConn) (queued int, eof bool, err error) {
	var one [1]byte
	var opErr error
	err = rc.Read(func(fd uintptr) bool {
		n, _, e := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case e == syscall.EAGAIN || e == syscall.EINTR:
			return false // not readable yet: wait in the poller
		case e != nil:
			opErr = e
		case n == 0:
			eof = true
		default:
			_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&queued)))
			if errno != 0 || queued == 0 {
				queued = 1 // the peek saw a byte; splice at least that
			}
		}
		return true
	})
	if err == nil {
		err = opErr
	}
	return queued, eof, err
}
