package stream

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gong-proxy/gong/runtime/conf"
)

// The caps a new session must pass, and the reason label each gives a
// refused session in the metrics and the error log.
const (
	// refusedWorkerConnections: the process has
	// nginx_events_worker_connections sessions in flight.
	refusedWorkerConnections = "worker_connections"
	// refusedMaxSessions: the listener has max_sessions in flight.
	refusedMaxSessions = "max_sessions"
	// refusedMaxRate: the listener began max_rate sessions in the last
	// second.
	refusedMaxRate = "max_rate"
)

// listenerCaps counts one listening socket's sessions against its
// max_sessions and max_rate flags. It lives with the socket, across
// reloads; the limits come from the Config current at each admission.
type listenerCaps struct {
	name     string       // the listener in metrics and logs: "<addr>", "<addr> udp"
	sessions atomic.Int64 // in flight
	rate     tokenBucket

	// refused counts refusals since the last log line, which lastLog
	// (unix nanoseconds) dates: a flood logs once a second.
	refused atomic.Int64
	lastLog atomic.Int64
}

// tokenBucket admits up to rate events a second, in bursts of at most
// rate.
type tokenBucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// take spends a token if one is left at now, refilling rate a second.
func (b *tokenBucket) take(rate int, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens = float64(rate)
	} else {
		b.tokens = min(float64(rate), b.tokens+now.Sub(b.last).Seconds()*float64(rate))
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// admit takes a place for a new session on the listener c under the
// caps of cfg and its listener flags max; it returns "" when admitted
// (release gives the place back) or the cap that refused it.
func (e *Engine) admit(cfg *Config, c *listenerCaps, maxSessions, maxRate int) string {
	if limit := int64(cfg.Conf.Stream.WorkerConnections); e.sessions.Add(1) > limit && limit > 0 {
		e.sessions.Add(-1)
		return refusedWorkerConnections
	}
	if c.sessions.Add(1) > int64(maxSessions) && maxSessions > 0 {
		c.sessions.Add(-1)
		e.sessions.Add(-1)
		return refusedMaxSessions
	}
	if maxRate > 0 && !c.rate.take(maxRate, time.Now()) {
		c.release(e)
		return refusedMaxRate
	}
	return ""
}

// release gives back a place admit took.
func (c *listenerCaps) release(e *Engine) {
	c.sessions.Add(-1)
	e.sessions.Add(-1)
}

// refuse counts a session refused for reason and logs, at most once a
// second, how many were refused since the last line.
func (e *Engine) refuse(c *listenerCaps, reason string) {
	e.metrics.Refused(c.name, reason)
	c.refused.Add(1)
	now := time.Now().UnixNano()
	last := c.lastLog.Load()
	if now-last < int64(time.Second) || !c.lastLog.CompareAndSwap(last, now) {
		return
	}
	n := c.refused.Swap(0)
	e.log.Warn(fmt.Sprintf("%d new sessions refused on %s: %s reached", n, c.name, reason))
}

// capsName is how metrics and logs name a listener: its address, then
// " udp" for a UDP one, as in stream_listen.
func capsName(l conf.Listener) string {
	if l.UDP {
		return l.Addr() + " udp"
	}
	return l.Addr()
}
