package stream

import (
	"context"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/gong-proxy/gong/runtime/conf"
)

// ListenSocket opens one stream_listen entry with its socket flags:
// reuseport, ipv6only, backlog= and so_keepalive=. The bind flag needs
// nothing: every entry gets a socket of its own.
func ListenSocket(l conf.Listener) (net.Listener, net.PacketConn, error) {
	lc := net.ListenConfig{
		Control: func(_, _ string, rc syscall.RawConn) error {
			var opErr error
			err := rc.Control(func(fd uintptr) {
				if l.ReusePort {
					opErr = setReusePort(fd)
				}
				if opErr == nil && l.IPv6Only != "" && strings.HasPrefix(l.Host, "[") {
					opErr = setIPv6Only(fd, l.IPv6Only == "on")
				}
			})
			if err != nil {
				return err
			}
			return opErr
		},
	}
	ka := keepAlive(l.KeepAlive)
	lc.KeepAliveConfig = ka
	if !ka.Enable {
		lc.KeepAlive = -1 // nginx leaves SO_KEEPALIVE off unless asked
	}
	if l.UDP {
		pc, err := lc.ListenPacket(context.Background(), "udp", l.Addr())
		return nil, pc, err
	}
	ln, err := lc.Listen(context.Background(), "tcp", l.Addr())
	if err != nil {
		return nil, nil, err
	}
	if l.Backlog > 0 {
		rc, err := ln.(*net.TCPListener).SyscallConn()
		if err == nil {
			rc.Control(func(fd uintptr) { setBacklog(fd, l.Backlog) })
		}
	}
	return ln, nil, nil
}

// keepAlive converts so_keepalive to Go's setting; -1 keeps the system's
// default where nginx leaves a part empty.
func keepAlive(ka conf.KeepAlive) net.KeepAliveConfig {
	if !ka.Enabled {
		return net.KeepAliveConfig{}
	}
	orDefault := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	count := ka.Count
	if count == 0 {
		count = -1
	}
	return net.KeepAliveConfig{Enable: true, Idle: orDefault(ka.Idle), Interval: orDefault(ka.Interval), Count: count}
}
