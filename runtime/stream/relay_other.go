//go:build !linux

package stream

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// copyTCP waits up to wait (0: without limit) for src to be readable,
// then moves one read's bytes through a pooled buffer. Where splice(2)
// and TIOCINQ are missing, that is the whole fast path.
func (r *relay) copyTCP(dst, src *net.TCPConn, wait time.Duration, count *atomic.Int64) error {
	if wait > 0 {
		src.SetReadDeadline(time.Now().Add(wait))
	}
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	n, err := src.Read(*bp)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errQuiet
	}
	if n > 0 {
		_, werr := dst.Write((*bp)[:n])
		r.moved(count, int64(n))
		if werr != nil {
			return werr
		}
	}
	return err
}

// unreadBytes reports whether c may have received bytes not read yet:
// without TIOCINQ, always.
func unreadBytes(*net.TCPConn) bool { return true }
