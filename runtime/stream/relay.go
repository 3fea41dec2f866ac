package stream

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// parkAfter is how long a direction of a plain TCP relay waits for bytes
// in Go's poller before it parks (see parker).
const parkAfter = 100 * time.Millisecond

// errQuiet reports a direction that saw no byte for parkAfter.
var errQuiet = errors.New("quiet")

// relay copies bytes both ways between the client and the upstream until
// one direction ends (nginx's proxy_half_close off, the default) or both
// do (on: the EOF is passed on as a half-close), an error ends one, or no
// byte has moved for the idle timeout.
//
// Each direction runs in a goroutine of its own while bytes flow. Between
// two plain TCP sockets a direction that stays quiet for parkAfter parks:
// its goroutine ends and the parker wakes it when its socket is readable
// again, so an idle connection costs no goroutine at all. A TLS
// connection's directions block in its Read instead, since tls.Conn may
// hold decrypted bytes its socket does not show.
//
// A metered direction (Session.SetMeters) reads through its Meter into a
// pooled buffer and never splices or parks; the other keeps the fast path.
//
// An idle timer, reset from the time of the last byte, closes the
// connection after the idle timeout (max(read_timeout, write_timeout),
// Kong's proxy_timeout).
type relay struct {
	down, up net.Conn
	downRaw  net.Conn // the client's socket, closed on abort
	idle     time.Duration
	// halfClose passes an EOF on and keeps the other direction going;
	// without it the first EOF ends the relay.
	halfClose bool
	parker    *parker // nil: directions never park
	workers   *workers
	done      func(r *relay, err error)
	noPark    atomic.Bool // the parker failed: block in Go's poller instead

	// paced are the metered directions' readers (nil: unpaced); stop ends
	// their waits when the relay ends.
	paced [2]io.Reader
	stop  context.CancelFunc

	lastActive     atomic.Int64 // unix nanoseconds of the last byte moved
	firstFromUp    atomic.Int64 // unix nanoseconds of the upstream's first byte; 0 before
	sent, received atomic.Int64 // bytes to and from the client

	mu      sync.Mutex // guards the fields below
	state   [2]dirState
	token   [2]int32 // parker tokens, 0 until first parked
	err     error    // the first failure
	idled   bool
	closing bool
	ended   bool
	timer   *time.Timer
}

type dirState uint8

const (
	running dirState = iota
	parked
	finished
)

const (
	toUpstream = iota
	toClient
)

// newRelay makes the relay of a session's two connections; meters pace
// its directions (nil ones are unpaced).
func newRelay(down, downRaw, up net.Conn, idle time.Duration, halfClose bool, p *parker, w *workers, meters [2]Meter, done func(*relay, error)) *relay {
	r := &relay{down: down, downRaw: downRaw, up: up, idle: idle, halfClose: halfClose, parker: p, workers: w, done: done, stop: func() {}}
	if meters[0] == nil && meters[1] == nil {
		return r // the common case: nothing to cancel, no context to make
	}
	ctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	for dir, m := range meters {
		if m != nil {
			_, src, _ := r.ends(dir)
			r.paced[dir] = m.Reader(ctx, src)
		}
	}
	return r
}

// start writes first to the upstream and starts the direction to the
// client on a goroutine of its own; the caller then runs pumpToUpstream,
// saving a goroutine per session. done runs once both directions have
// ended.
func (r *relay) start(first []byte) error {
	if len(first) > 0 {
		if _, err := r.up.Write(first); err != nil {
			return err
		}
		r.received.Add(int64(len(first)))
	}
	r.lastActive.Store(time.Now().UnixNano())
	if r.idle > 0 {
		r.mu.Lock()
		r.timer = time.AfterFunc(r.idle, r.checkIdle)
		r.mu.Unlock()
	}
	r.workers.run(r.pumpToClient)
	return nil
}

// pumpToUpstream and pumpToClient are the two directions, named so stack
// traces say which is which.
func (r *relay) pumpToUpstream() { r.pump(toUpstream) }
func (r *relay) pumpToClient()   { r.pump(toClient) }

func (r *relay) ends(dir int) (dst, src net.Conn, count *atomic.Int64) {
	if dir == toUpstream {
		return r.up, r.down, &r.received
	}
	return r.down, r.up, &r.sent
}

// pump copies one direction until EOF (then half-closes its destination,
// or ends the relay), an error, or a quiet spell long enough to park.
func (r *relay) pump(dir int) {
	dst, src, count := r.ends(dir)
	for {
		err := r.move(dir, dst, src, count)
		switch {
		case err == nil:
			continue
		case err == errQuiet:
			if r.park(dir, src) {
				return
			}
		case err == io.EOF && !r.halfClose:
			// Everything read has been written: as nginx without
			// proxy_half_close, the session ends with its first side. A
			// TLS destination gets its close_notify, as nginx's SSL
			// shutdown sends; a plain one the FIN of close(2).
			if _, plain := dst.(*net.TCPConn); !plain {
				closeWrite(dst)
			}
			r.mu.Lock()
			r.state[dir] = finished
			r.mu.Unlock()
			r.abort()
			return
		case err == io.EOF:
			if !r.lastPlainEOF(dir, dst) {
				closeWrite(dst)
			}
			r.end(dir, nil)
			return
		default:
			r.end(dir, err)
			return
		}
	}
}

// move copies a direction and counts what it moved: between two plain TCP
// sockets everything until src has been quiet for parkAfter (copyTCP),
// otherwise one Read (through the direction's meter when it has one).
func (r *relay) move(dir int, dst, src net.Conn, count *atomic.Int64) error {
	var from io.Reader = src
	if p := r.paced[dir]; p != nil {
		from = p
	} else if d, ok := dst.(*net.TCPConn); ok {
		if s, ok := src.(*net.TCPConn); ok {
			wait := parkAfter
			if r.parker == nil || r.noPark.Load() {
				wait = 0 // nowhere to park: wait in Go's poller
			}
			return r.copyTCP(d, s, wait, count)
		}
	}
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	n, err := from.Read(*bp)
	if n > 0 {
		_, werr := dst.Write((*bp)[:n])
		r.moved(count, int64(n))
		if werr != nil {
			return werr
		}
	}
	return err
}

// moved counts n bytes of a direction and dates the relay's last
// activity, returning that time (unix nanoseconds).
func (r *relay) moved(count *atomic.Int64, n int64) int64 {
	count.Add(n)
	now := time.Now().UnixNano()
	r.lastActive.Store(now)
	if count == &r.sent && r.firstFromUp.Load() == 0 {
		r.firstFromUp.Store(now)
	}
	return now
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// park hands a quiet direction to the parker; false means it must keep
// running (the relay is closing, or the parker failed).
func (r *relay) park(dir int, src net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return false
	}
	if r.token[dir] == 0 {
		r.token[dir] = r.parker.newToken()
	}
	r.state[dir] = parked
	if err := r.parker.park(r.token[dir], r, dir, src.(*net.TCPConn)); err != nil {
		r.state[dir] = running
		r.noPark.Store(true)
		return false
	}
	return true
}

// resumer is what the parker wakes: a relay (dir is its direction), or
// the upstream reader of a quiet UDP session (udpReader).
type resumer interface{ resume(dir int) }

// resume runs a parked direction again; the parker calls it when the
// direction's socket is readable.
func (r *relay) resume(dir int) {
	r.mu.Lock()
	if r.state[dir] != parked {
		r.mu.Unlock()
		return
	}
	r.state[dir] = running
	r.mu.Unlock()
	if dir == toUpstream {
		r.workers.run(r.pumpToUpstream)
	} else {
		r.workers.run(r.pumpToClient)
	}
}

// lastPlainEOF reports that dir, at EOF, is the last direction to end and
// writes to a plain TCP socket: the session closes that socket next, and
// close(2) sends the FIN a shutdown(2) would (nothing is left unread), so
// the half-close is skipped. A TLS destination still half-closes, since
// its close_notify goes out there.
func (r *relay) lastPlainEOF(dir int, dst net.Conn) bool {
	if _, plain := dst.(*net.TCPConn); !plain {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state[1-dir] == finished
}

// end marks a direction finished. An error closes both sides so the other
// direction ends too. The last direction to end calls done.
func (r *relay) end(dir int, err error) {
	r.mu.Lock()
	r.state[dir] = finished
	closing := r.closing
	if err != nil && r.err == nil && !r.idled && !closing {
		r.err = err
	}
	r.mu.Unlock()
	if err != nil && !closing { // a closing relay's errors are its own doing
		r.abort()
		return
	}
	r.finishIfDone()
}

// abort closes both sides; parked directions, which have no goroutine to
// notice, end here.
func (r *relay) abort() {
	r.mu.Lock()
	r.closing = true
	for dir := range r.state {
		if r.state[dir] == parked {
			r.state[dir] = finished
		}
	}
	r.mu.Unlock()
	r.stop()
	r.downRaw.Close()
	r.up.Close()
	r.finishIfDone()
}

// closedBoth reports that the relay has closed both sockets (abort).
func (r *relay) closedBoth() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closing
}

// Close ends the relay at once (Server.Stop).
func (r *relay) Close() error {
	r.abort()
	return nil
}

func (r *relay) finishIfDone() {
	r.mu.Lock()
	if r.ended || r.state[toUpstream] != finished || r.state[toClient] != finished {
		r.mu.Unlock()
		return
	}
	r.ended = true
	r.stop()
	if r.timer != nil {
		r.timer.Stop()
	}
	for _, t := range r.token {
		if t != 0 {
			r.parker.unpark(t)
		}
	}
	err := r.err
	r.mu.Unlock()
	r.done(r, err)
}

// checkIdle runs from the idle timer: it closes a relay whose last byte is
// an idle timeout old, or waits for the rest of the timeout.
func (r *relay) checkIdle() {
	quiet := time.Duration(time.Now().UnixNano() - r.lastActive.Load())
	if quiet < r.idle {
		r.mu.Lock()
		if !r.ended {
			r.timer.Reset(r.idle - quiet)
		}
		r.mu.Unlock()
		return
	}
	r.mu.Lock()
	r.idled = true
	r.mu.Unlock()
	r.abort()
}

// closeWrite half-closes c when it can, so the peer sees EOF while the
// other direction goes on.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
