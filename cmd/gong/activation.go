package main

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/gong-proxy/gong/runtime/stream"
)

// socketActivation returns the sockets a service manager opened for this
// process, by systemd's protocol: LISTEN_FDS descriptors from 3, for the
// process LISTEN_PID names (or any, when it is unset). Each serves the
// listen entry (stream_listen, admin_listen, status_listen) with its
// address. It returns nil when none were passed.
func socketActivation() (*stream.Inherited, error) {
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil, nil
	}
	if pid := os.Getenv("LISTEN_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return nil, nil // meant for another process
	}
	for _, v := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} {
		os.Unsetenv(v)
	}
	sockets := &stream.Inherited{}
	for fd := 3; fd < 3+n; fd++ {
		f := os.NewFile(uintptr(fd), "socket activation "+strconv.Itoa(fd))
		ln, errTCP := net.FileListener(f)
		if errTCP == nil {
			sockets.AddTCP(ln)
			f.Close() // FileListener holds a copy
			continue
		}
		pc, errUDP := net.FilePacketConn(f)
		f.Close()
		if errUDP != nil {
			return nil, fmt.Errorf("socket activation: descriptor %d (LISTEN_FDS=%d) is neither a listening TCP socket (%v) nor a UDP socket (%v)", fd, n, errTCP, errUDP)
		}
		sockets.AddUDP(pc)
	}
	return sockets, nil
}
