package stream

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sys/unix"

	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/errlog"
	"github.com/gong-proxy/gong/runtime/telemetry"
)

// loopConn is a session an event loop serves: its two sockets, raw and
// non-blocking, the dial and its tries, then the relay both ways with
// the same rules as relay's (half-close, idle timeout, counts). Only its
// loop's goroutine touches it, except for the counts the Admin API reads
// and post.
type loopConn struct {
	l     *evLoop
	s     *Session
	svc   *Service
	state loopState
	// away is set while the session's preread hook runs on a worker,
	// which then owns it.
	away atomic.Bool
	// fd are the client's and the upstream's sockets (-1: none or
	// closed), indexed as the direction they are the source of, and slot
	// their registrations (-1: none).
	fd   [2]int
	slot [2]int32
	// The dial: the attempt under way, its peer and host, when the
	// balancer began its pick and when its connect began.
	attempt    int
	peer, host string
	pick       time.Time
	dialStart  time.Time
	trySpan    trace.Span     // of a traced session's attempt under way
	keepAlive  conf.KeepAlive // its listener's so_keepalive, for leave
	connected  bool
	halfClose  bool
	idle       time.Duration
	lastActive int64 // the loop's clock at the last byte moved
	deadline   int64 // of the timer, on the loop's clock
	timer      int   // index in the loop's timers, -1: unarmed
	queued     bool  // in the loop's ready list
	dirs       [2]loopDir

	sent, received atomic.Int64 // bytes to and from the client
	firstUp        int64        // unix nanoseconds of the upstream's first byte; 0 before
}

type loopState uint8

const (
	loopDialing loopState = iota
	loopRelaying
	loopDone
	loopHeader // reading a PROXY header (loopheader_linux.go)
)

// loopDir is one direction of the relay, named by its source side.
type loopDir struct {
	// held are bytes read that the destination did not take yet.
	held     []byte
	pipe     *pipePair // while splicing: the pipe, which piped bytes wait in
	piped    int
	splicing bool
	// quiet: the source has nothing to read until its next event (it
	// starts so: registering a socket reports what it already holds);
	// hup: the source reported its end.
	quiet, hup bool
	eof        bool // read EOF; passed on once held and piped are out
	finished   bool // EOF passed on (half-close)
	more       bool // spent its budget: queued in the loop's ready list
}

// begin routes the session, its span a child of parent when valid, and
// starts it: on its loop, or with its preread hook on a worker.
func (c *loopConn) begin(parent trace.SpanContext) {
	s := c.s
	s.startTrace("tcp", parent)
	if !s.match(s.tcpConnInfo()) {
		return
	}
	if !s.cfg.Hooks.NoPlugins(s.route) {
		c.away.Store(true)
		s.e.workers.run(c.preread)
		return
	}
	if svc := s.prepare(); svc != nil {
		c.start(svc)
	}
}

// start watches the client's socket and dials svc.
func (c *loopConn) start(svc *Service) {
	s := c.s
	c.dirs[toUpstream].quiet = true
	if err := c.l.register(c, toUpstream); err != nil {
		s.Log(errlog.LevelError, "epoll_ctl() failed: "+err.Error())
		s.end(StatusInternalError)
		return
	}
	st := s.cfg.Conf.Stream
	c.svc, c.halfClose, c.idle = svc, st.HalfClose, st.SessionIdle(svc.idle, false)
	s.svc, s.att = svc, svc.peers.start(s.client, false)
	c.dial()
}

// preread runs the preread hook of a session with plugins on a worker
// goroutine. The session then goes back to its loop to dial, or goes on
// here, having left the loop, when a plugin used the client's stream or
// paced the relay, or its service is one the loop cannot dial.
func (c *loopConn) preread() {
	s := c.s
	svc := s.prepare()
	switch {
	case svc == nil: // ended
	case s.lc == nil: // left during preread
		s.proxyTo(svc)
	case !svc.loopDialable() || s.meters[0] != nil || s.meters[1] != nil:
		if err := c.leave(); err != nil {
			s.Log(errlog.LevelError, "cannot leave the event loop: "+err.Error())
			s.end(StatusInternalError)
			return
		}
		s.proxyTo(svc)
	default:
		l := c.l
		l.mu.Lock()
		l.back = append(l.back, loopBack{c, svc})
		l.mu.Unlock()
		l.wake()
	}
}

// leave makes a session away from its loop (during its preread hook) an
// ordinary one: its client socket becomes a net.TCPConn, and its
// goroutine carries it on. It is done at most once.
func (c *loopConn) leave() error {
	s := c.s
	if c.fd[toUpstream] < 0 {
		return net.ErrClosed
	}
	f := os.NewFile(uintptr(c.fd[toUpstream]), "")
	conn, err := net.FileConn(f)
	f.Close() // FileConn holds a copy
	c.fd[toUpstream] = -1
	if err != nil {
		return err
	}
	tc := conn.(*net.TCPConn)
	tc.SetKeepAliveConfig(keepAlive(c.keepAlive)) // FileConn turns it on, with Go's defaults
	s.mu.Lock()
	s.lc, s.down, s.stream = nil, tc, tc
	s.mu.Unlock()
	return nil
}

// onLoop reports that the loop, not a worker, has the session.
func (c *loopConn) onLoop() bool { return !c.away.Load() }

// dial connects to the next peer the balancer gives, up to the service's
// tries; each connect finishes in dialed or timedOut.
func (c *loopConn) dial() {
	s, svc := c.s, c.svc
	for ; c.attempt < svc.tries; c.attempt++ {
		c.pick = time.Now()
		peer, host, err := svc.peers.next(context.Background(), s.att)
		if err != nil {
			s.Log(errlog.LevelError, err.Error(), "service", svc.name)
			s.end(StatusServiceUnavailable)
			return
		}
		c.peer, c.host, c.dialStart = peer, host, time.Now()
		if s.trace != nil {
			c.trySpan = s.attemptSpan(svc, c.attempt, peer)
		}
		if err = c.connect(peer); err == nil {
			c.state = loopDialing
			c.l.setTimer(c, c.l.now+int64(svc.connect))
			return
		}
		c.tryFailed(err)
	}
	s.end(StatusBadGateway)
}

// connect opens the upstream socket and starts connecting it to peer;
// epoll reports the outcome (dialed).
func (c *loopConn) connect(peer string) error {
	ap, err := netip.ParseAddrPort(peer)
	if err != nil {
		return err
	}
	sa, family := sockaddrOf(ap)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	c.fd[toClient] = fd
	c.dirs[toClient] = loopDir{quiet: true}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		return err
	}
	return c.l.register(c, toClient)
}

// dialed finishes a connect the upstream socket reported on.
func (c *loopConn) dialed() {
	errno, err := unix.GetsockoptInt(c.fd[toClient], unix.SOL_SOCKET, unix.SO_ERROR)
	switch {
	case err != nil:
		c.retry(err)
	case errno != 0:
		c.retry(unix.Errno(errno))
	default:
		c.established()
	}
}

// endTrySpan ends the span of the attempt under way, failed with err
// unless nil.
func (c *loopConn) endTrySpan(err error) {
	if c.trySpan == nil {
		return
	}
	if err != nil {
		telemetry.Fail(c.trySpan, err)
	}
	c.trySpan.End()
	c.trySpan = nil
}

// retry ends a failed attempt and dials the next.
func (c *loopConn) retry(err error) {
	c.l.stopTimer(c)
	c.tryFailed(err)
	c.attempt++
	c.dial()
}

// tryFailed records a failed attempt, closing its socket.
func (c *loopConn) tryFailed(err error) {
	c.endTrySpan(err)
	c.closeSide(toClient)
	c.s.tried(Try{Addr: c.peer, Start: c.pick, Latency: c.dialStart.Sub(c.pick), Host: c.host}, c.dialStart)
	c.s.connectFailed(c.svc, c.attempt, c.peer, err)
}

// established starts the relay of a connected session.
func (c *loopConn) established() {
	s := c.s
	c.endTrySpan(nil)
	s.tried(Try{Addr: c.peer, Start: c.pick, Latency: c.dialStart.Sub(c.pick), Host: c.host}, c.dialStart)
	s.connectedTry()
	c.connected = true
	c.state = loopRelaying
	c.lastActive = c.l.now
	if c.idle > 0 {
		c.l.setTimer(c, c.l.now+int64(c.idle))
	} else {
		c.l.stopTimer(c)
	}
	// What either side sent, or its end, while the dial went on.
	c.pump(toUpstream)
	if c.state == loopRelaying {
		c.pump(toClient)
	}
}

// timedOut runs when the session's timer is due: a connect timeout, or
// the idle timeout unless bytes moved since it was armed.
func (c *loopConn) timedOut() {
	switch c.state {
	case loopDialing:
		c.tryFailed(context.DeadlineExceeded)
		c.attempt++
		c.dial()
	case loopRelaying:
		if quietFor := c.l.now - c.lastActive; quietFor < int64(c.idle) {
			c.l.setTimer(c, c.lastActive+int64(c.idle))
			return
		}
		c.finish(nil)
	case loopHeader:
		c.s.brokenHeader(os.ErrDeadlineExceeded)
	}
}

// event acts on what epoll reported for a side's socket.
func (c *loopConn) event(side int, ev uint32) {
	readable := ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	if readable {
		d := &c.dirs[side]
		d.quiet = false
		if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			d.hup = true
		}
	}
	switch c.state {
	case loopDialing:
		// The client's bytes wait for the relay.
		if side == toClient {
			c.dialed()
		}
	case loopRelaying:
		if readable {
			c.pump(side)
		}
		// The direction this side is the destination of, when it waits
		// for room.
		if other := 1 - side; c.state == loopRelaying && ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 && c.dirs[other].holding() {
			c.pump(other)
		}
	case loopHeader:
		if readable {
			c.readHeader()
		}
	}
}

func (d *loopDir) holding() bool { return len(d.held) > 0 || d.piped > 0 }

// pump moves one direction's bytes until its source is drained, its
// destination full, its end passed on, a failure, or its budget spent
// (then it goes on at the loop's next turn).
func (c *loopConn) pump(dir int) {
	d := &c.dirs[dir]
	if d.finished {
		return
	}
	src, dst := c.fd[dir], c.fd[1-dir]
	for range pumpBudget {
		if full, err := c.flush(dir, dst); err != nil || full {
			if err != nil {
				c.finish(opError("write", err))
			}
			return
		}
		if d.eof {
			c.ended(dir, dst)
			return
		}
		if d.quiet {
			return
		}
		if d.splicing {
			n, err := unix.Splice(src, nil, d.pipe.w, nil, pipeSize, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			switch {
			case err == unix.EINTR:
			case err == unix.EAGAIN:
				d.quiet = true
				c.stopSplicing(d)
				return
			case err != nil:
				c.finish(opError("read", err))
				return
			case n == 0:
				d.eof = true
			default:
				d.piped = int(n)
				if n < loopReadSize {
					d.splicing = false // the pipe goes back once emptied
				}
			}
			continue
		}
		n, err := unix.Read(src, c.l.buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			d.quiet = true
			return
		case err != nil:
			c.finish(opError("read", err))
			return
		case n == 0:
			d.eof = true
			continue
		}
		if n == len(c.l.buf) {
			if p, err := c.l.pipe(); err == nil {
				d.pipe, d.splicing = p, true
			}
		} else if !d.hup {
			d.quiet = true // drained: edge-triggered, more bytes make an event
		}
		w, err := writeSome(dst, c.l.buf[:n])
		c.moved(dir, w)
		if err != nil {
			c.finish(opError("write", err))
			return
		}
		if w < n {
			d.held = append(make([]byte, 0, n-w), c.l.buf[w:n]...)
			return // wait for room
		}
	}
	if !c.queued {
		c.queued = true
		c.l.ready = append(c.l.ready, c)
	}
	d.more = true
}

// flush writes what the direction holds; full reports that the
// destination took less than all of it.
func (c *loopConn) flush(dir, dst int) (full bool, err error) {
	d := &c.dirs[dir]
	if len(d.held) > 0 {
		w, err := writeSome(dst, d.held)
		c.moved(dir, w)
		if err != nil {
			return false, err
		}
		d.held = d.held[w:]
		if len(d.held) > 0 {
			return true, nil
		}
		d.held = nil
	}
	for d.piped > 0 {
		n, err := unix.Splice(d.pipe.r, nil, dst, nil, d.piped, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return true, nil
		case err != nil:
			return false, err
		}
		d.piped -= int(n)
		c.moved(dir, int(n))
	}
	if !d.splicing && d.pipe != nil {
		c.stopSplicing(d)
	}
	return false, nil
}

// stopSplicing gives an empty pipe back to the loop.
func (c *loopConn) stopSplicing(d *loopDir) {
	d.splicing = false
	if d.pipe != nil && d.piped == 0 {
		c.l.putPipe(d.pipe)
		d.pipe = nil
	}
}

// writeSome writes p until it is all written or the socket is full.
func writeSome(fd int, p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Write(fd, p[done:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return done, nil
		case err != nil:
			return done, err
		}
		done += n
	}
	return done, nil
}

// moved counts n bytes of a direction and dates the session's activity.
func (c *loopConn) moved(dir, n int) {
	if n <= 0 {
		return
	}
	c.lastActive = c.l.now
	if dir == toUpstream {
		c.received.Add(int64(n))
		return
	}
	c.sent.Add(int64(n))
	if c.firstUp == 0 {
		c.firstUp = time.Now().UnixNano()
	}
}

// ended passes on a direction's EOF, everything read being written: as
// relay does, without half-close the session ends; with it the
// destination is shut for writing, and the session ends with its second
// direction.
func (c *loopConn) ended(dir, dst int) {
	d := &c.dirs[dir]
	d.finished = true
	if !c.halfClose || c.dirs[1-dir].finished {
		c.finish(nil)
		return
	}
	unix.Shutdown(dst, unix.SHUT_WR)
}

// finish ends the session: its relay's counts go into its record and
// end closes its sockets.
func (c *loopConn) finish(err error) {
	switch c.state {
	case loopDone:
		return
	case loopHeader: // closed while its header was awaited
		c.s.brokenHeader(net.ErrClosed)
		return
	}
	c.state = loopDone
	c.s.relayEnded(c.sent.Load(), c.received.Load(), c.firstUp, err, c.peer)
}

// closeSockets closes the session's sockets and frees what the loop lent
// it (Session.end); it reports whether the upstream was connected.
func (c *loopConn) closeSockets() bool {
	c.state = loopDone
	c.endTrySpan(nil) // closed while dialing
	c.l.stopTimer(c)
	c.closeSide(toUpstream)
	c.closeSide(toClient)
	for i := range c.dirs {
		d := &c.dirs[i]
		if d.pipe != nil {
			d.pipe.close() // it may hold bytes
			d.pipe = nil
		}
		d.held = nil
	}
	return c.connected
}

// closeSide closes one side's socket, which takes it out of epoll.
func (c *loopConn) closeSide(side int) {
	if c.fd[side] < 0 {
		return
	}
	unix.Close(c.fd[side])
	c.fd[side] = -1
	if c.slot[side] >= 0 {
		c.l.release(c.slot[side])
		c.slot[side] = -1
	}
}

// opError words a socket error as Go's net does.
func opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, err)}
}
