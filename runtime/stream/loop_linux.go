package stream

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sys/unix"

	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/errlog"
)

// The event loops serve the sessions of plain TCP listeners whose
// services they can dial (Config.loopListeners) as nginx's workers do:
// one loop per core waits on its epoll instance and takes each session
// from accept through routing, the dial with its retries and the relay
// to its end with non-blocking system calls on raw sockets, without a
// goroutine of its own and without Go's poller. A session so served
// keeps the bookkeeping of any other (its Session: record, metrics,
// access log, caps, the Admin API's list); only its sockets and its
// relay are the loop's (loopConn).
//
// Plugins may block, so their hooks run on worker goroutines: a routed
// session with plugins goes to one for its preread hook and comes back
// to dial (loopConn.preread), and the rest of its end, with the log
// hook, runs on one. A session whose plugin reads from or writes to the
// client, refuses it, paces its relay or sends it to a DNS name leaves
// the loop for good (loopConn.leave).
//
// The loops accept from a listening socket while the current Config lets
// them serve its sessions; Swap moves a socket between them and its
// accept goroutine (toLoops, fromLoops). A session accepted under a
// Config that does not is handed to a goroutine as a net.TCPConn.

const (
	// loopReadSize is a loop's read buffer; a read that fills it turns
	// its direction to splice(2), through a pipe, until a splice finds
	// less than that waiting.
	loopReadSize = 16 << 10
	// pumpBudget bounds the reads a direction makes before the loop's
	// other sessions have their turn, and acceptBudget the connections a
	// loop accepts from a socket.
	pumpBudget   = 16
	acceptBudget = 64
	// sparePipes is how many idle pipes a loop keeps for splicing, and
	// pipeSize the size each asks for.
	sparePipes = 16
	pipeSize   = 1 << 20
	// acceptPause is how long a loop stops accepting from a socket after
	// accept(2) failed with other than a client's error (out of
	// descriptors), as nginx does.
	acceptPause = 500 * time.Millisecond
)

// Marks in the Pad of an epoll event's data; a session's socket carries
// its slot's generation there, never negative.
const (
	padListener int32 = -1 // Fd is the socket's id
	padWake     int32 = -2
)

// sessionEvents are what a session's socket is watched for,
// edge-triggered: one registration serves the whole session.
const sessionEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

// loopSet is the engine's event loops and the listening sockets they
// accept from.
type loopSet struct {
	all     []*evLoop
	sockets atomic.Pointer[map[int32]*socket] // by id, for the loops' events
	mu      sync.Mutex                        // serialises changes to sockets
	lastID  int32
}

// startLoops starts n event loops; an error means the loops
// are unavailable and every session has a goroutine.
func startLoops(e *Engine, n int) (*loopSet, error) {
	set := &loopSet{}
	set.sockets.Store(&map[int32]*socket{})
	for range n {
		l, err := newLoop(e, set)
		if err != nil {
			for _, l := range set.all {
				l.closeFDs()
			}
			return nil, err
		}
		set.all = append(set.all, l)
	}
	for _, l := range set.all {
		go l.run()
	}
	return set, nil
}

// stop ends the loops once the engine has no session left.
func (set *loopSet) stop() {
	for _, l := range set.all {
		l.stopping.Store(true)
		l.wake()
	}
}

// evLoop is one event loop. Only its goroutine touches its sessions,
// slots, timers and pipes; others reach it through post and wake.
type evLoop struct {
	e      *Engine
	set    *loopSet
	epfd   int
	wakeFD int // an eventfd
	epoch  time.Time
	now    int64 // nanoseconds since epoch, as of the last wait
	buf    []byte
	slots  []loopSlot
	free   []int32
	timers timerHeap
	ready  []*loopConn // sessions whose pump spent its budget
	// acceptMore are sockets whose accepting spent its budget.
	acceptMore []*socket
	pipes      []*pipePair
	// paused are the sockets this loop stopped accepting from until
	// resumeAt (acceptPause).
	paused   []*socket
	resumeAt int64

	stopping atomic.Bool
	mu       sync.Mutex
	posted   []*loopConn // sessions Close asked to end
	back     []loopBack  // sessions back from their preread hook
	// acceptNow are sockets to accept from at once: connections that
	// came while no loop watched them made no event.
	acceptNow []*socket
}

// loopBack is a session back from its preread hook, to dial svc.
type loopBack struct {
	c   *loopConn
	svc *Service
}

// loopSlot is a session's socket registered with the loop's epoll; gen
// tells a slot's new occupant from an old event.
type loopSlot struct {
	c    *loopConn
	side int // the session's side: client (toUpstream) or upstream (toClient)
	gen  int32
}

// pipePair is a pipe's read and write ends, which splice(2) moves bytes
// through.
type pipePair struct{ r, w int }

func (p *pipePair) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}

func newLoop(e *Engine, set *loopSet) (*evLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Pad: padWake}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wfd)
		return nil, err
	}
	return &evLoop{e: e, set: set, epfd: epfd, wakeFD: wfd, epoch: time.Now(), buf: make([]byte, loopReadSize)}, nil
}

func (l *evLoop) wake() {
	var one = [8]byte{1}
	unix.Write(l.wakeFD, one[:])
}

// run is the loop: wait, handle the events, the sessions with work left,
// the timers due and the posted closes.
func (l *evLoop) run() {
	events := make([]unix.EpollEvent, 256)
	for !l.stopping.Load() {
		n, err := unix.EpollWait(l.epfd, events, l.waitMillis())
		l.now = int64(time.Since(l.epoch))
		if err != nil && err != unix.EINTR {
			l.e.log.Error(fmt.Sprintf("event loop stopped: epoll_wait() failed: %v", err))
			return
		}
		for _, ev := range events[:max(n, 0)] {
			switch ev.Pad {
			case padWake:
				l.takePosted()
			case padListener:
				// A paused socket's connections wait for its resumption.
				if o := (*l.set.sockets.Load())[ev.Fd]; o != nil && !slices.Contains(l.paused, o) {
					l.accept(o)
				}
			default:
				if s := &l.slots[ev.Fd]; s.gen == ev.Pad && s.c != nil {
					s.c.event(s.side, ev.Events)
				}
			}
		}
		l.runReady()
		more := l.acceptMore
		l.acceptMore = nil
		for _, o := range more {
			l.accept(o)
		}
		l.runTimers()
		if l.resumeAt != 0 && l.now >= l.resumeAt {
			paused := l.paused
			l.paused, l.resumeAt = nil, 0
			for _, o := range paused {
				l.accept(o)
			}
		}
	}
	l.closeFDs()
}

func (l *evLoop) closeFDs() {
	unix.Close(l.epfd)
	unix.Close(l.wakeFD)
	for _, p := range l.pipes {
		p.close()
	}
}

// waitMillis is how long the next wait may last: not at all with
// sessions or sockets that spent their budget, else until the first
// timer or paused socket is due.
func (l *evLoop) waitMillis() int {
	if len(l.ready) > 0 || len(l.acceptMore) > 0 {
		return 0
	}
	due := int64(-1)
	if len(l.timers) > 0 {
		due = l.timers[0].deadline
	}
	if l.resumeAt != 0 && (due < 0 || l.resumeAt < due) {
		due = l.resumeAt
	}
	if due < 0 {
		return -1
	}
	wait := due - int64(time.Since(l.epoch))
	if wait <= 0 {
		return 0
	}
	return int((wait + int64(time.Millisecond) - 1) / int64(time.Millisecond))
}

// post asks the session's loop to end it (Session.Close).
func (c *loopConn) post() {
	l := c.l
	l.mu.Lock()
	l.posted = append(l.posted, c)
	l.mu.Unlock()
	l.wake()
}

func (l *evLoop) takePosted() {
	var b [8]byte
	unix.Read(l.wakeFD, b[:])
	l.mu.Lock()
	posted, back, acceptNow := l.posted, l.back, l.acceptNow
	l.posted, l.back, l.acceptNow = nil, nil, nil
	l.mu.Unlock()
	for _, c := range posted {
		if !c.away.Load() { // an away session's close waits for its return
			c.finish(nil)
		}
	}
	for _, b := range back {
		b.c.away.Store(false)
		if b.c.s.isClosed() {
			b.c.finish(nil)
		} else {
			b.c.start(b.svc)
		}
	}
	for _, o := range acceptNow {
		l.accept(o)
	}
}

// runReady gives the sessions that spent their budget another turn;
// those that spend it again wait for the next, after the next events.
func (l *evLoop) runReady() {
	ready := l.ready
	l.ready = nil
	for _, c := range ready {
		c.queued = false
		for dir := range c.dirs {
			if c.state == loopRelaying && c.dirs[dir].more {
				c.dirs[dir].more = false
				c.pump(dir)
			}
		}
	}
}

func (l *evLoop) runTimers() {
	for len(l.timers) > 0 && l.timers[0].deadline <= l.now {
		heap.Pop(&l.timers).(*loopConn).timedOut()
	}
}

// setTimer (re)arms the session's one timer: its connect timeout, then
// its idle timeout.
func (l *evLoop) setTimer(c *loopConn, at int64) {
	c.deadline = at
	if c.timer >= 0 {
		heap.Fix(&l.timers, c.timer)
	} else {
		heap.Push(&l.timers, c)
	}
}

func (l *evLoop) stopTimer(c *loopConn) {
	if c.timer >= 0 {
		heap.Remove(&l.timers, c.timer)
	}
}

// timerHeap orders sessions by deadline; each knows its index (timer,
// -1 when unarmed).
type timerHeap []*loopConn

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].timer, h[j].timer = i, j
}
func (h *timerHeap) Push(x any) {
	c := x.(*loopConn)
	c.timer = len(*h)
	*h = append(*h, c)
}
func (h *timerHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.timer = -1
	return c
}

// register watches a session's socket.
func (l *evLoop) register(c *loopConn, side int) error {
	var i int32
	if n := len(l.free); n > 0 {
		i, l.free = l.free[n-1], l.free[:n-1]
	} else {
		l.slots = append(l.slots, loopSlot{})
		i = int32(len(l.slots) - 1)
	}
	s := &l.slots[i]
	s.c, s.side = c, side
	ev := unix.EpollEvent{Events: sessionEvents, Fd: i, Pad: s.gen}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd[side], &ev); err != nil {
		l.release(i)
		return err
	}
	c.slot[side] = i
	return nil
}

// unregister stops watching a session's socket, which stays open.
func (l *evLoop) unregister(c *loopConn, side int) {
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd[side], nil)
	l.release(c.slot[side])
	c.slot[side] = -1
}

// release frees a slot whose socket is closed (which took it out of
// epoll).
func (l *evLoop) release(i int32) {
	s := &l.slots[i]
	s.c = nil
	s.gen = (s.gen + 1) & 0x7fffffff
	l.free = append(l.free, i)
}

func (l *evLoop) pipe() (*pipePair, error) {
	if n := len(l.pipes); n > 0 {
		p := l.pipes[n-1]
		l.pipes = l.pipes[:n-1]
		return p, nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	// As Go's own splice pipes: a splice moves up to pipeSize, where the
	// default pipe takes 64 KiB. The system may cap it lower
	// (/proc/sys/fs/pipe-max-size); the default size then serves.
	unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, pipeSize)
	return &pipePair{fds[0], fds[1]}, nil
}

// putPipe keeps an empty pipe for the next splice, or closes it.
func (l *evLoop) putPipe(p *pipePair) {
	if len(l.pipes) < sparePipes {
		l.pipes = append(l.pipes, p)
		return
	}
	p.close()
}

// accept takes the connections waiting on o, until there are none (its
// registration is edge-triggered).
func (l *evLoop) accept(o *socket) {
	for range acceptBudget {
		o.lmu.RLock()
		if o.lfd < 0 {
			o.lmu.RUnlock()
			return
		}
		// syscall's, not unix's: unix asks every IPv4 socket its protocol
		// (SO_PROTOCOL, for L2TP), a system call per connection.
		fd, sa, err := syscall.Accept4(o.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		o.lmu.RUnlock()
		switch err {
		case nil:
			l.serve(o, fd, addrPortOf(sa))
		case unix.EAGAIN:
			return
		case unix.EINTR, unix.ECONNABORTED, unix.EPROTO, unix.EPERM:
			// the client's failure, not the socket's
		default:
			l.e.log.Log(context.Background(), errlog.LevelCrit, fmt.Sprintf("accept() failed on %s: %v", o.key.Addr, err))
			l.paused = append(l.paused, o)
			l.resumeAt = l.now + int64(acceptPause)
			return
		}
	}
	l.acceptMore = append(l.acceptMore, o)
}

// serve begins the session of a connection accepted on o: on this loop
// when the current Config lets it, else on a goroutine.
func (l *evLoop) serve(o *socket, fd int, peer netip.AddrPort) {
	e := l.e
	cfg := e.acquire()
	ln := cfg.Listeners[o.key]
	if reason := e.admit(cfg, &o.caps, ln.MaxSessions, ln.MaxRate); reason != "" {
		e.refuse(&o.caps, reason)
		unix.Close(fd)
		cfg.Done()
		return
	}
	e.conns.Add(1)
	if !cfg.loops[o.key] {
		l.handOff(cfg, o, ln, fd)
		return
	}
	local := o.local
	if !local.IsValid() {
		sa, err := syscall.Getsockname(fd)
		if err != nil {
			l.handOff(cfg, o, ln, fd) // let net report it as it would
			return
		}
		local = addrPortOf(sa)
	}
	s := e.newSession(cfg, false, local, peer)
	c := &loopConn{l: l, s: s, fd: [2]int{fd, -1}, slot: [2]int32{-1, -1}, timer: -1, keepAlive: ln.KeepAlive}
	s.caps, s.lc = &o.caps, c
	e.track(s)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) // as Go's net and nginx's tcp_nodelay do
	if ln.KeepAlive.Enabled {
		setKeepAlive(fd, ln.KeepAlive)
	}
	if ln.ProxyProtocol {
		c.awaitHeader(cfg.Conf.Stream.ProxyProtocolTimeout)
		return
	}
	c.begin(trace.SpanContext{})
}

// setKeepAlive turns TCP keepalive on for an accepted socket as
// so_keepalive asks, in whole seconds rounded up as Go's net sets them;
// what the setting leaves out keeps the system's default.
func setKeepAlive(fd int, ka conf.KeepAlive) {
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	secs := func(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }
	for _, o := range [...]struct{ opt, v int }{
		{unix.TCP_KEEPIDLE, secs(ka.Idle)},
		{unix.TCP_KEEPINTVL, secs(ka.Interval)},
		{unix.TCP_KEEPCNT, ka.Count},
	} {
		if o.v > 0 {
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, o.opt, o.v)
		}
	}
}

// handOff serves a connection the loop accepted on a goroutine, as the
// accept goroutine would have.
func (l *evLoop) handOff(cfg *Config, o *socket, ln conf.Listener, fd int) {
	f := os.NewFile(uintptr(fd), "")
	c, err := net.FileConn(f)
	f.Close() // FileConn holds a copy
	if err != nil {
		l.e.log.Error(fmt.Sprintf("accept() on %s: %v", o.key.Addr, err))
		o.caps.release(l.e)
		cfg.Done()
		l.e.conns.Done()
		return
	}
	tc := c.(*net.TCPConn)
	tc.SetKeepAliveConfig(keepAlive(ln.KeepAlive)) // FileConn turns keepalive on
	l.e.workers.run(func() { l.e.serveTCP(cfg, o, tc) })
}

// addrPortOf is a socket address as Go's net reports it.
func addrPortOf(sa syscall.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *syscall.SockaddrInet6:
		ip := netip.AddrFrom16(a.Addr)
		if a.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				ip = ip.WithZone(ifi.Name)
			}
		}
		return netip.AddrPortFrom(ip, uint16(a.Port))
	}
	return netip.AddrPort{}
}

// sockaddrOf is the socket address of a peer, its domain and family.
func sockaddrOf(ap netip.AddrPort) (unix.Sockaddr, int) {
	if ip := ap.Addr(); ip.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}, unix.AF_INET
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	if z := ap.Addr().Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		}
	}
	return sa, unix.AF_INET6
}

// toLoops moves o's accepting from its goroutine to the loops: a copy of
// the socket out of Go's poller goes into each loop's epoll, and the
// listener closes. On failure o stays with its goroutine.
func (set *loopSet) toLoops(o *socket) error {
	sc, ok := o.ln.(syscall.Conn)
	if !ok {
		return fmt.Errorf("a %T has no descriptor", o.ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	fd := -1
	cerr := rc.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	if err = errors.Join(cerr, err); err != nil {
		return err
	}
	set.mu.Lock()
	defer set.mu.Unlock()
	if o.id == 0 {
		set.lastID++
		o.id = set.lastID
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET | unix.EPOLLEXCLUSIVE, Fd: o.id, Pad: padListener}
	for i, l := range set.all {
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			for _, l := range set.all[:i] {
				unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
			}
			unix.Close(fd)
			return fmt.Errorf("epoll_ctl: %v", err)
		}
	}
	o.handing.Store(true)
	o.ln.Close()
	o.loop.Wait() // its goroutine is gone
	o.handing.Store(false)
	o.ln, o.accepting, o.fromFile = nil, false, false
	o.lmu.Lock()
	o.lfd = fd
	o.lmu.Unlock()
	sockets := map[int32]*socket{o.id: o}
	for id, s := range *set.sockets.Load() {
		sockets[id] = s
	}
	set.sockets.Store(&sockets)
	l := set.all[0]
	l.mu.Lock()
	l.acceptNow = append(l.acceptNow, o)
	l.mu.Unlock()
	l.wake()
	return nil
}

// fromLoops takes o's accepting back from the loops to a goroutine
// (Swap starts it), on a listener made from the socket. On failure the
// loops keep it and hand its sessions off one by one.
func (set *loopSet) fromLoops(o *socket) error {
	o.lmu.RLock()
	dup, err := unix.FcntlInt(uintptr(o.lfd), unix.F_DUPFD_CLOEXEC, 0)
	o.lmu.RUnlock()
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dup), "")
	ln, err := net.FileListener(f)
	f.Close() // FileListener holds a copy
	if err != nil {
		return err
	}
	set.closeLoopFD(o)
	o.ln, o.fromFile = ln, true
	return nil
}

// closeLoopFD takes o out of the loops and closes its descriptor, which
// no loop uses past the lock.
func (set *loopSet) closeLoopFD(o *socket) {
	o.lmu.Lock()
	defer o.lmu.Unlock()
	if o.lfd < 0 {
		return
	}
	set.mu.Lock()
	for _, l := range set.all {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, o.lfd, nil)
	}
	sockets := map[int32]*socket{}
	for id, s := range *set.sockets.Load() {
		if id != o.id {
			sockets[id] = s
		}
	}
	set.sockets.Store(&sockets)
	set.mu.Unlock()
	unix.Close(o.lfd)
	o.lfd = -1
}
