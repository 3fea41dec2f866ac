package testsvc

import (
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"
)

// boundSocket is a TCP socket bound to a free loopback port, closed when
// the test ends; until then no other socket can take the port.
func boundSocket(t testing.TB) (fd, port int) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, sa.(*syscall.SockaddrInet4).Port
}

// RefusedAddr is a loopback address that refuses connections: its port
// is bound, and nothing listens.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	_, port := boundSocket(t)
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// HangingAddr is a loopback address whose connects hang, for connect
// timeouts: its listener never accepts, and its accept queue is filled
// so that the kernel drops further SYNs.
func HangingAddr(t testing.TB) *net.TCPAddr {
	t.Helper()
	fd, port := boundSocket(t)
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	for range 4 {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			break // the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}
