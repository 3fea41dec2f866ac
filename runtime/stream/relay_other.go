//go:build !linux

package stream

import (
	"errors"
	"net"
	"os"
	"time"
)

// moveTCP waits up to wait (0: without limit) for src to be readable,
// then moves one read's bytes through a pooled buffer. Where splice(2)
// and TIOCINQ are missing, that is the whole fast path.
func moveTCP(dst, src *net.TCPConn, wait time.Duration) (int64, error) {
	if wait > 0 {
		src.SetReadDeadline(time.Now().Add(wait))
	}
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	n, err := src.Read(*bp)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, errQuiet
	}
	if n > 0 {
		if _, werr := dst.Write((*bp)[:n]); werr != nil {
			return int64(n), werr
		}
	}
	return int64(n), err
}
