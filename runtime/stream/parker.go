package stream

import (
	"sync"
	"syscall"
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
	r   resumer
	dir int
}

// resumer is what parks: a relay (dir is its direction), or the upstream
// reader of a quiet UDP session (udpReader).
type resumer interface{ resume(dir int) }

func newParker() (*parker, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &parker{epfd: epfd, dirs: map[int32]parkedDir{}, added: map[int32]bool{}}
	if err := syscall.Pipe2(p.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: 0}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		p.closeFDs()
		return nil, err
	}
	go p.loop()
	return p, nil
}

func (p *parker) closeFDs() {
	syscall.Close(p.epfd)
	syscall.Close(p.wake[0])
	syscall.Close(p.wake[1])
}

// close stops the loop; parked directions are ended by their relays.
func (p *parker) close() {
	syscall.Write(p.wake[1], []byte{0})
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

// park watches c for readability on behalf of r.
func (p *parker) park(token int32, r resumer, dir int, c syscall.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	op := syscall.EPOLL_CTL_ADD
	if p.added[token] {
		op = syscall.EPOLL_CTL_MOD
	}
	var ctlErr error
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: token}
	err = rc.Control(func(fd uintptr) { ctlErr = syscall.EpollCtl(p.epfd, op, int(fd), &ev) })
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
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err == syscall.EINTR {
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
