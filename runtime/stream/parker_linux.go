package stream

import (
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// parker holds the quiet directions of plain TCP relays without a
// goroutine each: it watches their sockets in an epoll instance of its own
// (one-shot, level-triggered) and resumes a direction when its socket
// becomes readable. Go's own poller keeps the sockets too; epoll allows a
// socket in several instances, and closing a socket removes it from all.
type parker struct {
	epfd  int
	wake  [2]int // a pipe whose read end, token 0, stops the loop
	mu    sync.Mutex
	next  int32
	dirs  map[int32]parkedDir // parked directions by token
	added map[int32]bool      // tokens registered with epoll (ADD done, MOD next)
}

type parkedDir struct {
	r   *relay
	dir int
}

func newParker() (*parker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &parker{epfd: epfd, dirs: map[int32]parkedDir{}, added: map[int32]bool{}}
	if err := unix.Pipe2(p.wake[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: 0}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		p.closeFDs()
		return nil, err
	}
	go p.loop()
	return p, nil
}

func (p *parker) closeFDs() {
	unix.Close(p.epfd)
	unix.Close(p.wake[0])
	unix.Close(p.wake[1])
}

// close stops the loop; parked directions are ended by their relays.
func (p *parker) close() {
	unix.Write(p.wake[1], []byte{0})
}

func (p *parker) newToken() int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	if p.next <= 0 {
		p.next = 1 // 0 is the wake pipe
	}
	return p.next
}

// park watches c for readability on behalf of one relay direction.
func (p *parker) park(token int32, r *relay, dir int, c *net.TCPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	op := unix.EPOLL_CTL_ADD
	if p.added[token] {
		op = unix.EPOLL_CTL_MOD
	}
	var ctlErr error
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: token}
	err = rc.Control(func(fd uintptr) { ctlErr = unix.EpollCtl(p.epfd, op, int(fd), &ev) })
	if err == nil {
		err = ctlErr
	}
	if err != nil {
		return err
	}
	p.added[token] = true
	p.dirs[token] = parkedDir{r, dir}
	return nil
}

// unpark forgets a direction whose relay is closing; closing its socket
// removes it from epoll.
func (p *parker) unpark(token int32) {
	p.mu.Lock()
	delete(p.dirs, token)
	delete(p.added, token)
	p.mu.Unlock()
}

// loop waits for parked sockets to become readable and resumes their
// directions.
func (p *parker) loop() {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == 0 {
				p.closeFDs()
				return
			}
			p.mu.Lock()
			d, ok := p.dirs[ev.Fd]
			delete(p.dirs, ev.Fd)
			p.mu.Unlock()
			if ok {
				d.r.resume(d.dir)
			}
		}
	}
}
