package stream

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// moveTCP waits up to wait (0: without limit) for src to be readable,
// then moves what is queued: a small read through a pooled buffer, and, when that filled
// up, the rest with splice(2).
//
// TCPConn.ReadFrom alone would splice everything, but it holds a pipe pair
// (two descriptors and a kernel buffer) for as long as it waits, and a
// small message would cost four system calls where read and write take
// two. A LimitedReader of exactly the queued bytes keeps ReadFrom on the
// splice path and returns the pipe to Go's pool at once.
func moveTCP(dst, src *net.TCPConn, wait time.Duration) (int64, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	if wait > 0 {
		src.SetReadDeadline(time.Now().Add(wait))
	}
	n, queued, err := readSmall(rc, dst)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, errQuiet
		}
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	total := int64(n)
	if queued > 0 {
		m, err := dst.ReadFrom(&io.LimitedReader{R: src, N: int64(queued)})
		total += m
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return total, err
		}
	}
	return total, nil
}

// smallRead is the most moveTCP copies through user space per round.
const smallRead = 4 << 10

var smallBuffers = sync.Pool{New: func() any { b := make([]byte, smallRead); return &b }}

// readSmall waits, in Go's poller and within src's read deadline, until
// src is readable, then moves what one recv returns to dst. It reports
// the bytes moved (0 at EOF) and, when the buffer filled, how many more
// are queued. The buffer is borrowed only while there is data to copy.
func readSmall(rc syscall.RawConn, dst net.Conn) (moved, queued int, err error) {
	var bp *[]byte
	var n int
	var opErr error
	err = rc.Read(func(fd uintptr) bool {
		bp = smallBuffers.Get().(*[]byte)
		var e error
		n, _, e = unix.Recvfrom(int(fd), *bp, unix.MSG_DONTWAIT)
		switch {
		case e == unix.EAGAIN || e == unix.EINTR:
			smallBuffers.Put(bp)
			bp = nil
			return false // not readable yet: wait in the poller
		case e != nil:
			opErr, n = e, 0
		case n == smallRead:
			queued, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ)
		}
		return true
	})
	if bp != nil {
		defer smallBuffers.Put(bp)
	}
	if err == nil {
		err = opErr
	}
	if err != nil || n <= 0 {
		return 0, 0, err
	}
	if _, err := dst.Write((*bp)[:n]); err != nil {
		return 0, 0, err
	}
	return n, queued, nil
}
