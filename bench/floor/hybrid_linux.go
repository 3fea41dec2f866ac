package main

import (
	"net"
	"runtime"
	"sync"
	"syscall"
)

// hybridProxy accepts and dials with Go's net package, a goroutine per
// connection until its upstream is connected, then takes both sockets
// out of Go's poller (a duplicate descriptor each, and the connections
// closed) and hands them to an epoll loop per core that relays them as
// epollProxy does: what moving only the relay out of goroutines would
// save.
func hybridProxy(listen, upstream string) error {
	loops := make([]*relayLoop, runtime.GOMAXPROCS(0))
	for i := range loops {
		ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return err
		}
		loops[i] = &relayLoop{ep: ep, pairs: map[int][2]*side{}}
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
			cfd, cerr := detach(c)
			ufd, uerr := detach(u)
			if cerr != nil || uerr != nil {
				syscall.Close(cfd)
				syscall.Close(ufd)
				return
			}
			l.add([2]*side{{fd: cfd, peer: ufd}, {fd: ufd, peer: cfd}})
		}()
	}
}

// relayLoop relays pairs of sockets: a client's and its upstream's.
type relayLoop struct {
	ep    int
	mu    sync.Mutex
	pairs map[int][2]*side // by either socket
}

// detach returns a duplicate of c's descriptor and closes c, which takes
// the socket out of Go's poller; the duplicate keeps the socket open.
func detach(c net.Conn) (int, error) {
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, dupErr := -1, error(nil)
	if err := rc.Control(func(f uintptr) { fd, dupErr = syscall.Dup(int(f)) }); err != nil {
		return -1, err
	}
	return fd, dupErr
}

func (l *relayLoop) add(p [2]*side) {
	l.mu.Lock()
	for _, s := range p {
		l.pairs[s.fd] = p
	}
	l.mu.Unlock()
	for _, s := range p {
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
			p, ok := l.pairs[int(ev.Fd)]
			l.mu.Unlock()
			if !ok {
				continue // closed earlier in this batch
			}
			s, peer := p[0], p[1]
			if s.fd != int(ev.Fd) {
				s, peer = peer, s
			}
			if !serve(ev.Events, s, peer, buf) {
				l.mu.Lock()
				delete(l.pairs, s.fd)
				delete(l.pairs, peer.fd)
				l.mu.Unlock()
				syscall.Close(s.fd) // closing removes a socket from epoll
				syscall.Close(peer.fd)
			}
		}
	}
}
