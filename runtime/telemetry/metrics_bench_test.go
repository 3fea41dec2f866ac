package telemetry

import (
	"testing"
	"time"
)

// BenchmarkSessionSeries is what one routed session costs the metrics:
// counted active, then ended with its status, latencies and bytes.
func BenchmarkSessionSeries(b *testing.B) {
	rs := NewMetrics(Sources{}).Series("echo", "plain")
	b.ReportAllocs()
	for b.Loop() {
		rs.Opened()
		rs.Closed()
		rs.Ended(Session{Status: 200, Proxied: true, Duration: 3 * time.Millisecond, KongLatency: time.Millisecond, Received: 64, Sent: 64})
	}
}
