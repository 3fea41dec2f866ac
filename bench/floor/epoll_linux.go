package main

import (
	"net/netip"
	"runtime"
	"syscall"
)

// epollProxy runs one event loop per core, each on its own listening
// socket (SO_REUSEPORT spreads the connections), each loop on a locked
// thread: accept, connect, read and write are non-blocking system calls
// driven by edge-triggered epoll, as in nginx.
func epollProxy(listen, up netip.AddrPort) error {
	if !listen.Addr().Is4() || !up.Addr().Is4() {
		return syscall.EAFNOSUPPORT
	}
	errs := make(chan error)
	for range runtime.GOMAXPROCS(0) {
		go func() { errs <- serveLoop(listen, up) }()
	}
	return <-errs
}

// side is one socket of a proxied pair.
type side struct {
	fd, peer   int
	connecting bool   // the upstream socket until connect completes
	pending    []byte // bytes for this socket that did not fit yet
}

// soReusePort is Linux's SO_REUSEPORT, which package syscall lacks.
const soReusePort = 0xf

// edge is the events a proxied socket is watched for, edge-triggered
// (EPOLLET, 1<<31, which package syscall declares negative).
const edge = syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | 1<<31

func serveLoop(listen, up netip.AddrPort) error {
	runtime.LockOSThread()
	ln, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	syscall.SetsockoptInt(ln, syscall.SOL_SOCKET, soReusePort, 1)
	syscall.SetsockoptInt(ln, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(ln, &syscall.SockaddrInet4{Port: int(listen.Port()), Addr: listen.Addr().As4()}); err != nil {
		return err
	}
	if err := syscall.Listen(ln, 4096); err != nil {
		return err
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, ln, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(ln)}); err != nil {
		return err
	}
	upAddr := &syscall.SockaddrInet4{Port: int(up.Port()), Addr: up.Addr().As4()}
	sides := map[int]*side{}
	closePair := func(s *side) {
		for _, fd := range [2]int{s.fd, s.peer} {
			if _, ok := sides[fd]; ok {
				delete(sides, fd)
				syscall.Close(fd)
			}
		}
	}
	buf := make([]byte, 16<<10)
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(ep, events, -1)
		if err == syscall.EINTR {
			continue
		} else if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == ln {
				acceptAll(ln, ep, upAddr, sides)
				continue
			}
			s := sides[fd]
			if s == nil {
				continue // closed earlier in this batch
			}
			if s.connecting && ev.Events&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
				if e, _ := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ERROR); e != 0 {
					closePair(s)
					continue
				}
				s.connecting = false
			}
			if !serve(ev.Events, s, sides[s.peer], buf) {
				closePair(s)
			}
		}
	}
}

// acceptAll accepts what the listener has queued, starting each
// connection's upstream connect.
func acceptAll(ln, ep int, upAddr syscall.Sockaddr, sides map[int]*side) {
	for {
		c, _, err := syscall.Accept4(ln, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		u, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			syscall.Close(c)
			continue
		}
		syscall.SetsockoptInt(c, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		syscall.SetsockoptInt(u, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		err = syscall.Connect(u, upAddr)
		if err != nil && err != syscall.EINPROGRESS {
			syscall.Close(c)
			syscall.Close(u)
			continue
		}
		sides[c] = &side{fd: c, peer: u}
		sides[u] = &side{fd: u, peer: c, connecting: err != nil}
		syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, c, &syscall.EpollEvent{Events: edge, Fd: int32(c)})
		syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, u, &syscall.EpollEvent{Events: edge, Fd: int32(u)})
	}
}

// serve handles events of a connected socket s whose peer is p: writes
// what waits for s, moves what s received to p; false ends the pair.
func serve(events uint32, s, p *side, buf []byte) bool {
	if events&syscall.EPOLLOUT != 0 && !s.connecting && len(s.pending) > 0 && !flush(s) {
		return false
	}
	if events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		return relay(s, p, buf)
	}
	return true
}

// relay moves what s's socket holds to its peer, keeping what the peer
// cannot take yet; false ends the pair (EOF or an error).
func relay(s, p *side, buf []byte) bool {
	for {
		r, err := syscall.Read(s.fd, buf)
		if err == syscall.EAGAIN {
			return true
		}
		if err != nil || r == 0 {
			return false
		}
		if p.connecting || len(p.pending) > 0 {
			p.pending = append(p.pending, buf[:r]...)
		} else {
			w, err := syscall.Write(p.fd, buf[:r])
			if err != nil && err != syscall.EAGAIN {
				return false
			}
			if w = max(w, 0); w < r {
				p.pending = append(p.pending, buf[w:r]...)
			}
		}
		if r < len(buf) {
			return true // the queue is empty: edge-triggered epoll says when more comes
		}
	}
}

// flush writes s's pending bytes; false on an error.
func flush(s *side) bool {
	w, err := syscall.Write(s.fd, s.pending)
	if err != nil && err != syscall.EAGAIN {
		return false
	}
	s.pending = s.pending[max(w, 0):]
	return true
}
