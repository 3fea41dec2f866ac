package runtime

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
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
// Each direction runs in a goroutine of its own, started fresh, so a held
// connection costs two small stacks and nothing else: the goroutine that
// accepted and routed it (with a stack grown by that work) has returned.
// The last direction to end calls done.
//
// Between two plain TCP sockets bytes move with splice(2) (see
// spliceTCP). To still notice idleness, a timer probes the copies: it sets
// a past read deadline on each live direction, which returns from its wait
// with the bytes moved so far, reports them, and goes on. Per-chunk
// bookkeeping would cost more than these two system calls per direction
// and probe.
type relay struct {
	down, up net.Conn
	idle     time.Duration
	done     func(r *relay, err error)

	mu          sync.Mutex // guards the fields below and the read deadlines
	live        int        // directions still copying
	interrupted [2]bool    // a probe interrupted this direction and awaits its report
	pending     int        // directions yet to report to the current probe
	moved       bool       // bytes moved since the previous probe
	quiet       int        // quiet probes in a row
	timer       *time.Timer
	idled       bool
	finished    [2]bool // this direction reached EOF or failed
	err         error   // the first failure

	sent, received atomic.Int64 // bytes to and from the client
}

const (
	toUpstream = iota
	toClient
)

// start writes first to the upstream, then relays in two goroutines; done
// runs once both directions have ended.
func (r *relay) start(first []byte) error {
	if len(first) > 0 {
		if _, err := r.up.Write(first); err != nil {
			return err
		}
		r.received.Add(int64(len(first)))
	}
	r.live = 2
	if r.idle > 0 {
		r.timer = time.AfterFunc(r.idle/quietProbes, r.probe)
	}
	go r.pumpToUpstream()
	go r.pumpToClient()
	return nil
}

// pumpToUpstream and pumpToClient are the two directions, named so stack
// traces say which is which.
func (r *relay) pumpToUpstream() { r.pump(toUpstream, r.up, r.down, &r.received) }
func (r *relay) pumpToClient()   { r.pump(toClient, r.down, r.up, &r.sent) }

// pump copies src to dst until EOF, then half-closes dst. A failure on
// either side ends the whole session.
func (r *relay) pump(dir int, dst, src net.Conn, count *atomic.Int64) {
	for {
		n, err := copyOnce(dst, src)
		count.Add(n)
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && r.report(dir, n > 0, src) {
			continue
		}
		if err != nil {
			if !r.wasIdled() {
				r.fail(err)
			}
		} else {
			closeWrite(dst)
		}
		r.end(dir)
		return
	}
}

// fail records the first error and closes both sides so the other
// direction ends too.
func (r *relay) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
	r.down.Close()
	r.up.Close()
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
// The last direction to end stops the timer and calls done.
func (r *relay) end(dir int) {
	r.mu.Lock()
	r.live--
	r.finished[dir] = true
	if r.interrupted[dir] {
		r.interrupted[dir] = false
		r.pending--
		if r.pending == 0 && !r.idled {
			r.decide()
		}
	}
	last, err := r.live == 0, r.err
	r.mu.Unlock()
	if last {
		if r.timer != nil {
			r.timer.Stop()
		}
		r.done(r, err)
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

// spliceTCP moves src to dst until EOF or an error, with splice(2) for
// anything larger than a small read.
//
// TCPConn.ReadFrom alone would splice everything, but it holds a pipe pair
// (two descriptors and a kernel buffer) for as long as it waits for data,
// so every idle connection would hold two, and a small message would cost
// four system calls where read and write take two. So each round waits
// for src to be readable holding nothing, reads up to smallRead bytes with
// one recv into a pooled buffer and writes them; if the buffer filled, the
// bytes still queued go through splice (a LimitedReader of exactly that
// many, which ReadFrom still splices and which returns the pipe to Go's
// pool at once).
func spliceTCP(dst, src *net.TCPConn) (int64, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		n, queued, err := readSmall(rc, dst)
		total += int64(n)
		if err != nil || n == 0 {
			return total, err // n == 0 without an error is EOF
		}
		if queued > 0 {
			m, err := dst.ReadFrom(&io.LimitedReader{R: src, N: int64(queued)})
			total += m
			if err != nil {
				return total, err
			}
		}
	}
}

// smallRead is the most spliceTCP copies through user space per round.
const smallRead = 4 << 10

var smallBuffers = sync.Pool{New: func() any { b := make([]byte, smallRead); return &b }}

// readSmall waits, in the poller and within src's read deadline, until src
// is readable, then moves what one recv returns to dst. It reports the
// bytes moved (0 at EOF) and, when the buffer filled, how many more are
// queued. The buffer is borrowed only while there is data to copy.
func readSmall(rc syscall.RawConn, dst net.Conn) (moved, queued int, err error) {
	var bp *[]byte
	var n int
	var opErr error
	err = rc.Read(func(fd uintptr) bool {
		bp = smallBuffers.Get().(*[]byte)
		var e error
		n, _, e = syscall.Recvfrom(int(fd), *bp, syscall.MSG_DONTWAIT)
		switch {
		case e == syscall.EAGAIN || e == syscall.EINTR:
			smallBuffers.Put(bp)
			bp = nil
			return false // not readable yet: wait in the poller
		case e != nil:
			opErr, n = e, 0
		case n == smallRead:
			syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&queued)))
		}
		return true
	})
	if bp != nil {
		defer smallBuffers.Put(bp)
	}
	if err == nil {
		err = opErr
	}
	if err != nil || n <= 0 {
		return 0, 0, err
	}
	if _, err := dst.Write((*bp)[:n]); err != nil {
		return 0, 0, err
	}
	return n, queued, nil
}
