//go:build unix

package stream

import "golang.org/x/sys/unix"

func setReusePort(fd uintptr) error {
	return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
}

func setIPv6Only(fd uintptr, on bool) error {
	v := 0
	if on {
		v = 1
	}
	return unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v)
}

// setBacklog sets a listening socket's backlog: the system takes a second
// listen(2) as a new one.
func setBacklog(fd uintptr, n int) { unix.Listen(int(fd), n) }
