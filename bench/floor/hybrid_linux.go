package main

import (
	"net"
	"runtime"
	"sync"
	"syscall"
)

// hybridProxy accepts and dials with Go's net package, a goroutine per
// connection until its upstream is connected, then hands both sockets to
// an epoll loop per core that relays them as epollProxy does: what
// moving only the relay out of goroutines would save. Go's poller keeps
// the sockets too (epoll allows a socket in several instances); nothing
// waits on them there.
func hybridProxy(listen, upstream string) error {
	loops := make([]*relayLoop, runtime.GOMAXPROCS(0))
	for i := range loops {
		ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return err
		}
		loops[i] = &relayLoop{ep: ep, pairs: map[int]*connPair{}}
		go loops[i].run()
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	for i := 0; ; i++ {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		l := loops[i%len(loops)]
		go func() {
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				return
			}
			cfd, ufd := fdOf(c), fdOf(u)
			l.add(&connPair{conns: [2]net.Conn{c, u}, sides: [2]*side{{fd: cfd, peer: ufd}, {fd: ufd, peer: cfd}}})
		}()
	}
}

// connPair is a client's connection and its upstream's.
type connPair struct {
	conns [2]net.Conn
	sides [2]*side
}

type relayLoop struct {
	ep    int
	mu    sync.Mutex
	pairs map[int]*connPair // by either socket
}

func fdOf(c net.Conn) int {
	rc, _ := c.(*net.TCPConn).SyscallConn()
	var fd int
	rc.Control(func(f uintptr) { fd = int(f) })
	return fd
}

func (l *relayLoop) add(p *connPair) {
	l.mu.Lock()
	for _, s := range p.sides {
		l.pairs[s.fd] = p
	}
	l.mu.Unlock()
	for _, s := range p.sides {
		// Registering a socket that is readable already reports it at once.
		syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, s.fd, &syscall.EpollEvent{Events: edge, Fd: int32(s.fd)})
	}
}

func (l *relayLoop) run() {
	runtime.LockOSThread()
	buf := make([]byte, 16<<10)
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(l.ep, events, -1)
		if err != nil {
			continue
		}
		for _, ev := range events[:n] {
			l.mu.Lock()
			p := l.pairs[int(ev.Fd)]
			l.mu.Unlock()
			if p == nil {
				continue // closed earlier in this batch
			}
			s, peer := p.sides[0], p.sides[1]
			if s.fd != int(ev.Fd) {
				s, peer = peer, s
			}
			if !serve(ev.Events, s, peer, buf) {
				l.mu.Lock()
				delete(l.pairs, s.fd)
				delete(l.pairs, peer.fd)
				l.mu.Unlock()
				p.conns[0].Close()
				p.conns[1].Close()
			}
		}
	}
}
