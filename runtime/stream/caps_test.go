package stream

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/errlog"
	"github.com/gong-proxy/gong/runtime/telemetry"
)

// capsEngine is an engine without listeners, its error log and a Config
// with nginx_events_worker_connections = workerConnections.
func capsEngine(t *testing.T, workerConnections int) (*Engine, *strings.Builder, *Config) {
	t.Helper()
	var log strings.Builder
	_, logger := errlog.New(&log, errlog.LevelInfo)
	e := New(logger, telemetry.NewMetrics(telemetry.Sources{
		Targets:     func() []telemetry.TargetHealth { return nil },
		VMs:         func() (int, int) { return 0, 0 },
		PinnedVMs:   func() int { return 0 },
		Connections: func() (uint64, int) { return 0, 0 },
		SharedDicts: func() []telemetry.SharedDict { return nil },
		LuaVMsBytes: func() uint64 { return 0 },
	}))
	t.Cleanup(e.Wait)
	c := &conf.Config{}
	c.Stream.WorkerConnections = workerConnections
	return e, &log, &Config{Conf: c}
}

func TestAdmitWorkerConnections(t *testing.T) {
	e, _, cfg := capsEngine(t, 3)
	a, b := &listenerCaps{name: "a"}, &listenerCaps{name: "b"}
	for i, c := range []*listenerCaps{a, b, a} {
		if got := e.admit(cfg, c, 0, 0); got != "" {
			t.Fatalf("session %d under the cap refused: %s", i, got)
		}
	}
	if got := e.admit(cfg, b, 0, 0); got != refusedWorkerConnections {
		t.Fatalf("a 4th session with worker_connections 3: %q; want %q", got, refusedWorkerConnections)
	}
	a.release(e)
	if got := e.admit(cfg, b, 0, 0); got != "" {
		t.Fatalf("a session after one ended: %q", got)
	}
	if n, na, nb := e.sessions.Load(), a.sessions.Load(), b.sessions.Load(); n != 3 || na != 1 || nb != 2 {
		t.Errorf("counted %d sessions (a %d, b %d); want 3 (1, 2)", n, na, nb)
	}
}

func TestAdmitMaxSessions(t *testing.T) {
	e, _, cfg := capsEngine(t, 0)
	c := &listenerCaps{name: "l"}
	for range 2 {
		if got := e.admit(cfg, c, 2, 0); got != "" {
			t.Fatalf("under max_sessions: %q", got)
		}
	}
	if got := e.admit(cfg, c, 2, 0); got != refusedMaxSessions {
		t.Fatalf("over max_sessions: %q; want %q", got, refusedMaxSessions)
	}
	if n := e.sessions.Load(); n != 2 {
		t.Errorf("a refused session still counts: %d sessions; want 2", n)
	}
	c.release(e)
	c.release(e)
	if n, nc := e.sessions.Load(), c.sessions.Load(); n != 0 || nc != 0 {
		t.Errorf("after both ended: %d, %d sessions; want 0", n, nc)
	}
}

func TestAdmitMaxRate(t *testing.T) {
	e, _, cfg := capsEngine(t, 0)
	c := &listenerCaps{name: "l"}
	admitted := 0
	for range 10 {
		if e.admit(cfg, c, 0, 5) == "" {
			admitted++
		}
	}
	if admitted != 5 {
		t.Errorf("admitted %d of 10 sessions at once with max_rate=5; want 5", admitted)
	}
	if n := e.sessions.Load(); n != 5 {
		t.Errorf("%d sessions counted; want the 5 admitted", n)
	}
}

func TestTokenBucket(t *testing.T) {
	var b tokenBucket
	now := time.Unix(1000, 0)
	for i := range 4 {
		if !b.take(4, now) {
			t.Fatalf("take %d of a burst of 4 refused", i)
		}
	}
	if b.take(4, now) {
		t.Fatal("a 5th take in the same instant admitted")
	}
	if !b.take(4, now.Add(250*time.Millisecond)) || b.take(4, now.Add(250*time.Millisecond)) {
		t.Error("a quarter second at 4 a second should give exactly one token")
	}
	if took := countTakes(&b, 4, now.Add(time.Hour)); took != 4 {
		t.Errorf("after a long pause %d takes; want the burst of 4, not more", took)
	}
}

func countTakes(b *tokenBucket, rate int, now time.Time) int {
	n := 0
	for b.take(rate, now) {
		n++
	}
	return n
}

func TestRefuseCountsAndLogsOnceASecond(t *testing.T) {
	e, log, _ := capsEngine(t, 0)
	c := &listenerCaps{name: "127.0.0.1:53 udp"}
	for range 100 {
		e.refuse(c, refusedMaxSessions)
	}
	if n := strings.Count(log.String(), "refused"); n != 1 {
		t.Fatalf("100 refusals in a burst logged %d lines; want 1:\n%s", n, log)
	}
	c.lastLog.Store(time.Now().Add(-time.Second).UnixNano())
	e.refuse(c, refusedMaxSessions)
	if !strings.Contains(log.String(), "[warn] ") || !strings.Contains(log.String(), "100 new sessions refused on 127.0.0.1:53 udp: max_sessions reached") {
		t.Errorf("the next second's line does not count the refusals since the first:\n%s", log)
	}
	rec := httptest.NewRecorder()
	e.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := `gong_stream_sessions_refused_total{listener="127.0.0.1:53 udp",reason="max_sessions"} 101`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
