package spec

import (
	"fmt"
	"testing"
)

// BenchmarkTCPIdleCtxSession: the live heap one idle TCP connection adds
// (client, gong and echo server ends, all in this process), on a route
// without plugins and on one whose preread leaves values in kong.ctx and
// ngx.ctx (ctxkeeper: three numbers, a string, a nested table), carried
// in Go while the connection is idle. The difference is the cost of the
// carried values and the plugin's state per session.
func BenchmarkTCPIdleCtxSession(b *testing.B) {
	b.Run("no-plugin", func(b *testing.B) {
		echo := startEcho(b, "e")
		p := listenPort(b)
		startGong(b, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), echoYML("e", echo, p))
		idleHeap(b, fmt.Sprintf("127.0.0.1:%d", p))
	})
	b.Run("ctx-carried", func(b *testing.B) {
		_, addr, _ := ctxKeeperGong(b, false, "")
		idleHeap(b, addr)
	})
}

// idleHeap opens b.N idle connections to addr and reports the live heap
// they add, per connection.
func idleHeap(b *testing.B, addr string) {
	closeAll(openIdle(b, addr, 1)) // one-time costs: VMs, pools
	heap := liveHeapKiB()
	b.ResetTimer()
	conns := openIdle(b, addr, b.N)
	b.StopTimer()
	b.ReportMetric(float64(liveHeapKiB()-heap)/float64(b.N), "heap-KiB/conn")
	closeAll(conns)
}
