package stream

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// udpReader relays a UDP session's upstream datagrams to its client, and
// ends the session once it has been idle (no datagram either way) for the
// service's timeout.
//
// While datagrams come it reads on a goroutine of its own, through a
// pooled buffer borrowed only while a datagram is there. After parkAfter without one it parks the upstream socket
// in the engine's parker, gives the buffer back and lets the goroutine
// end, so an idle session costs no goroutine and no buffer: the parker
// resumes it when the socket is readable. An idle timer, reset from the
// time of the last datagram, ends the session.
type udpReader struct {
	s  *Session
	up *net.UDPConn

	mu      sync.Mutex // guards the fields below
	state   dirState
	token   int32 // parker token, 0 until first parked
	noPark  bool  // the parker failed or is absent: block in Go's poller
	closing bool
	ended   bool
	timer   *time.Timer
}

// datagramBuffers hold one datagram each, of the largest size UDP allows.
var datagramBuffers = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

func (r *udpReader) start() {
	r.mu.Lock()
	r.noPark = r.s.e.parker == nil
	r.timer = time.AfterFunc(r.s.idle, r.checkIdle)
	r.mu.Unlock()
	go r.run()
}

// run relays datagrams until the socket is quiet for parkAfter (then it
// parks), or fails or is closed (then the session ends).
func (r *udpReader) run() {
	s := r.s
	rc, err := r.up.SyscallConn()
	if err != nil {
		r.finish()
		return
	}
	relay := func(p []byte) error {
		now := time.Now().UnixNano()
		s.last.Store(now)
		if s.firstUp.Load() == 0 {
			s.firstUp.Store(now)
		}
		if _, err := s.pc.WriteToUDPAddrPort(p, s.client); err != nil {
			return err
		}
		s.sent.Add(int64(len(p)))
		return nil
	}
	for {
		r.mu.Lock()
		wait := !r.noPark
		r.mu.Unlock()
		if wait {
			r.up.SetReadDeadline(time.Now().Add(parkAfter))
		} else {
			r.up.SetReadDeadline(time.Time{})
		}
		err := readDatagram(rc, relay)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if r.park() {
				return
			}
			continue
		}
		if err != nil {
			r.finish()
			return
		}
	}
}

// readDatagram waits, in Go's poller and within the socket's read
// deadline, for a datagram and passes it to deliver. The buffer is
// borrowed from a pool only while a datagram is there to read, so a
// waiting reader holds none.
func readDatagram(rc syscall.RawConn, deliver func(p []byte) error) error {
	var opErr error
	err := rc.Read(func(fd uintptr) bool {
		bp := datagramBuffers.Get().(*[]byte)
		defer datagramBuffers.Put(bp)
		n, e := syscall.Read(int(fd), *bp) // the socket is non-blocking
		switch {
		case e == syscall.EAGAIN || e == syscall.EINTR:
			return false // nothing yet: wait in the poller
		case e != nil:
			opErr = e
		default:
			opErr = deliver((*bp)[:n])
		}
		return true
	})
	if err == nil {
		err = opErr
	}
	return err
}

// park hands the quiet socket to the parker; false means run must go on
// reading (the reader is closing, or the parker failed: from now on it
// blocks instead).
func (r *udpReader) park() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return false
	}
	if r.token == 0 {
		r.token = r.s.e.parker.newToken()
	}
	if err := r.s.e.parker.park(r.token, r, 0, r.up); err != nil {
		r.noPark = true
		return false
	}
	r.state = parked
	return true
}

// resume reads again; the parker calls it when the socket is readable.
func (r *udpReader) resume(int) {
	r.mu.Lock()
	if r.state != parked {
		r.mu.Unlock()
		return
	}
	r.state = running
	r.mu.Unlock()
	go r.run()
}

// finish ends a reader whose socket failed or was closed.
func (r *udpReader) finish() {
	r.mu.Lock()
	r.state = finished
	r.mu.Unlock()
	r.finishIfDone()
}

// abort closes the upstream socket: a running reader ends on the error,
// a parked one, which has no goroutine to notice, here.
func (r *udpReader) abort() {
	r.mu.Lock()
	r.closing = true
	if r.state == parked {
		r.state = finished
	}
	r.mu.Unlock()
	r.up.Close()
	r.finishIfDone()
}

// finishIfDone ends the session once the reader has finished, once.
func (r *udpReader) finishIfDone() {
	r.mu.Lock()
	if r.ended || r.state != finished {
		r.mu.Unlock()
		return
	}
	r.ended = true
	r.timer.Stop()
	if r.token != 0 {
		r.s.e.parker.unpark(r.token)
	}
	r.mu.Unlock()
	r.s.table.leave(r.s)
	r.s.end(StatusOK)
}

// checkIdle runs from the idle timer: it ends a session whose last
// datagram is an idle timeout old, or waits for the rest of the timeout.
func (r *udpReader) checkIdle() {
	s := r.s
	quiet := time.Since(time.Unix(0, s.last.Load()))
	if quiet < s.idle || !s.table.leaveIdle(s) {
		r.mu.Lock()
		if !r.ended {
			r.timer.Reset(max(s.idle-quiet, time.Millisecond))
		}
		r.mu.Unlock()
		return
	}
	r.abort()
}
