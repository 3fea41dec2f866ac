package limits

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gong-proxy/gong/internal/testsvc"
	"github.com/gong-proxy/gong/pdk"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func TestWindowAlignsOnTheCalendar(t *testing.T) {
	now := time.Date(2024, 2, 29, 13, 45, 30, 500e6, time.FixedZone("x", 3600))
	want := map[string][2]string{
		"second": {"2024-02-29T12:45:30Z", "2024-02-29T12:45:31Z"},
		"minute": {"2024-02-29T12:45:00Z", "2024-02-29T12:46:00Z"},
		"hour":   {"2024-02-29T12:00:00Z", "2024-02-29T13:00:00Z"},
		"day":    {"2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"},
		"month":  {"2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"},
		"year":   {"2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"},
	}
	for p, w := range want {
		start, end, err := window(p, now)
		if err != nil || start.Format(time.RFC3339) != w[0] || end.Format(time.RFC3339) != w[1] {
			t.Errorf("%s: got %v..%v, %v; want %s..%s", p, start, end, err, w[0], w[1])
		}
	}
	if _, _, err := window("week", now); err == nil || !strings.Contains(err.Error(), "unknown period") {
		t.Errorf("week: %v", err)
	}
}

// hits counts n events on s and returns how many were refused, by period.
func hits(t *testing.T, s pdk.CounterStore, key string, limits []pdk.Limit, n int) map[string]int {
	t.Helper()
	refused := map[string]int{}
	for range n {
		full, err := s.Hit(context.Background(), key, limits)
		if err != nil {
			t.Fatalf("hit: %v", err)
		}
		if full != "" {
			refused[full]++
		}
	}
	return refused
}

// testStores runs f against the local store and a Redis store.
func testStores(t *testing.T, f func(t *testing.T, s pdk.CounterStore, c *clock)) {
	t.Run("local", func(t *testing.T) {
		c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
		f(t, newLocal(c.now), c)
	})
	t.Run("redis", func(t *testing.T) {
		srv := testsvc.StartRedis(t)
		c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
		r := newTestRegistry(t, c)
		s, err := r.Counters(nil).Store(redisConf(srv.Port, nil))
		if err != nil {
			t.Fatal(err)
		}
		f(t, s, c)
	})
}

func newTestRegistry(t *testing.T, c *clock) *Registry {
	r := NewRegistry("node", func(string) {}, nil)
	if c != nil {
		r.now = c.now
	}
	t.Cleanup(r.Close)
	return r
}

func redisConf(port int, extra map[string]any) map[string]any {
	redis := map[string]any{"host": "127.0.0.1", "port": float64(port), "timeout": float64(500)}
	for k, v := range extra {
		redis[k] = v
	}
	return map[string]any{"policy": "redis", "redis": redis}
}

func TestHitRefusesExactlyTheExcess(t *testing.T) {
	testStores(t, func(t *testing.T, s pdk.CounterStore, c *clock) {
		limits := []pdk.Limit{{Period: "second", Max: 3}, {Period: "minute", Max: 5}}
		if got := hits(t, s, "k", limits, 10); got["second"] != 7 || got["minute"] != 0 {
			t.Fatalf("first second: refused %v, want 7 by second", got)
		}
		c.set(c.now().Add(time.Second))
		// 3 counted so far this minute: 2 more pass, then the minute is full.
		if got := hits(t, s, "k", limits, 4); got["second"] != 0 || got["minute"] != 2 {
			t.Fatalf("second second: refused %v, want 2 by minute", got)
		}
		if got := hits(t, s, "other", limits, 3); len(got) != 0 {
			t.Fatalf("another key: refused %v", got)
		}
		c.set(c.now().Add(time.Minute))
		if got := hits(t, s, "k", limits, 3); len(got) != 0 {
			t.Fatalf("next minute: refused %v", got)
		}
	})
}

func TestAcquireHoldsAtMostMax(t *testing.T) {
	testStores(t, func(t *testing.T, s pdk.CounterStore, _ *clock) {
		ctx := context.Background()
		var releases []func()
		for i := range 3 {
			release, ok, err := s.Acquire(ctx, "k", 2)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (i < 2) {
				t.Fatalf("acquire %d: ok=%v", i, ok)
			}
			if ok {
				releases = append(releases, release)
			}
		}
		releases[0]()
		releases[0]() // a second call changes nothing
		if _, ok, _ := s.Acquire(ctx, "k", 2); !ok {
			t.Fatal("no room after a release")
		}
		if _, ok, _ := s.Acquire(ctx, "k", 2); ok {
			t.Fatal("a double release made room twice")
		}
	})
}

func TestRedisNodesShareLimits(t *testing.T) {
	srv := testsvc.StartRedis(t)
	ctx := context.Background()
	var stores []pdk.CounterStore
	for range 2 {
		s, err := newTestRegistry(t, nil).Counters(nil).Store(redisConf(srv.Port, nil))
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	limits := []pdk.Limit{{Period: "minute", Max: 10}}
	var refused atomic.Int64
	var wg sync.WaitGroup
	for _, s := range stores {
		wg.Go(func() {
			for range 10 {
				if full, err := s.Hit(ctx, "shared", limits); err != nil {
					t.Error(err)
				} else if full != "" {
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if refused.Load() != 10 {
		t.Fatalf("two nodes, 20 hits on a limit of 10: %d refused", refused.Load())
	}
	if _, ok, _ := stores[0].Acquire(ctx, "c", 1); !ok {
		t.Fatal("first session refused")
	}
	if _, ok, _ := stores[1].Acquire(ctx, "c", 1); ok {
		t.Fatal("the other node took a second session past max 1")
	}
}

func TestRedisForgetsADeadNodeWithinNodeTTL(t *testing.T) {
	srv := testsvc.StartRedis(t)
	ctx := context.Background()
	dying := NewRegistry("dying", func(string) {}, nil)
	s, _ := dying.Counters(nil).Store(redisConf(srv.Port, nil))
	if _, ok, err := s.Acquire(ctx, "c", 1); !ok || err != nil {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	// The node dies: its heartbeat stops, nothing is released.
	rs := dying.redis[0].store
	close(rs.stop)
	rs.done.Wait()
	died := time.Now()

	other, _ := newTestRegistry(t, nil).Counters(nil).Store(redisConf(srv.Port, nil))
	if _, ok, _ := other.Acquire(ctx, "c", 1); ok {
		t.Fatal("the dead node's session was not counted at first")
	}
	deadline := died.Add(NodeTTL + time.Second)
	for {
		if _, ok, _ := other.Acquire(ctx, "c", 1); ok {
			t.Logf("released after %v", time.Since(died).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead node's session still counted %v after it died (bound %v)", time.Since(died), NodeTTL)
		}
		time.Sleep(100 * time.Millisecond) // polling, bounded by the deadline
	}
}

func TestRedisDownIsAnError(t *testing.T) {
	srv := testsvc.StartRedis(t)
	var logged []string
	var mu sync.Mutex
	r := NewRegistry("n", func(s string) { mu.Lock(); logged = append(logged, s); mu.Unlock() }, nil)
	t.Cleanup(r.Close)
	s, _ := r.Counters(nil).Store(redisConf(srv.Port, nil))
	limits := []pdk.Limit{{Period: "second", Max: 100}}
	if _, err := s.Hit(context.Background(), "k", limits); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for range 5 {
		if _, err := s.Hit(context.Background(), "k", limits); err == nil {
			t.Fatal("a hit succeeded with Redis stopped")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logged) != 1 || !strings.Contains(logged[0], "counter store redis 127.0.0.1:") {
		t.Fatalf("want one error logged per interval, got %q", logged)
	}
	srv.Start()
	if _, err := s.Hit(context.Background(), "k", limits); err != nil {
		t.Fatalf("after Redis came back: %v", err)
	}
}

func TestRedisACLUser(t *testing.T) {
	srv := testsvc.StartRedis(t, "--user", "default", "off", "--user", "gong", "on", ">s3cret", "~*", "&*", "+@all")
	r := newTestRegistry(t, nil)
	ok, _ := r.Counters(nil).Store(redisConf(srv.Port, map[string]any{"username": "gong", "password": "s3cret"}))
	if _, err := ok.Hit(context.Background(), "k", []pdk.Limit{{Period: "second", Max: 1}}); err != nil {
		t.Fatalf("with the ACL user: %v", err)
	}
	bad, _ := r.Counters(nil).Store(redisConf(srv.Port, map[string]any{"username": "gong", "password": "wrong"}))
	_, err := bad.Hit(context.Background(), "k", []pdk.Limit{{Period: "second", Max: 1}})
	if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("with a wrong password: %v", err)
	}
}

func TestBatchedSyncsEveryInterval(t *testing.T) {
	srv := testsvc.StartRedis(t)
	conf := redisConf(srv.Port, nil)
	conf["sync_rate"] = 0.1
	var stores []pdk.CounterStore
	for range 2 {
		s, err := newTestRegistry(t, nil).Counters(nil).Store(conf)
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	limits := []pdk.Limit{{Period: "hour", Max: 10}}
	if got := hits(t, stores[0], "k", limits, 6); len(got) != 0 {
		t.Fatalf("node 1: refused %v", got)
	}
	if got := hits(t, stores[1], "k", limits, 1); len(got) != 0 {
		t.Fatalf("node 2: refused %v", got)
	}
	// Once both nodes synced, node 2 sees the 7 counts in Redis.
	b := stores[1].(loggingStore).CounterStore.(*batched)
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		var seen int64
		for _, c := range b.windows {
			seen = c.remote
		}
		b.mu.Unlock()
		if seen == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 2 sees %d of the 7 counts", seen)
		}
		time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline
	}
	if got := hits(t, stores[1], "k", limits, 5); got["hour"] != 2 {
		t.Fatalf("node 2, 5 more on a shared limit of 10 with 7 counted: refused %v, want 2", got)
	}
}

func TestClusterPolicyNeedsDatabaseMode(t *testing.T) {
	_, err := NewRegistry("n", nil, nil).Counters(nil).Store(map[string]any{"policy": "cluster"})
	if !errors.Is(err, errCluster) || !strings.Contains(err.Error(), "database mode") {
		t.Fatalf("got %v", err)
	}
}

// Without a database, policy cluster is refused with the reason; with
// one, its store counts rate windows and refuses concurrency counts.
func TestClusterNeedsTheDatabase(t *testing.T) {
	r := newTestRegistry(t, nil)
	if _, err := r.Counters(nil).Store(map[string]any{"policy": "cluster"}); !errors.Is(err, errCluster) {
		t.Fatalf("cluster without a database: %v, want %v", err, errCluster)
	}
	r.SetDatabase(nil)
	s, err := r.Counters(nil).Store(map[string]any{"policy": "cluster"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Acquire(context.Background(), "k", 1); !errors.Is(err, errClusterConcurrency) {
		t.Errorf("Acquire on cluster: %v, want %v", err, errClusterConcurrency)
	}
}

// Concurrent counts share pipelines, and a Redis that forgot the scripts
// (SCRIPT FLUSH, as after a restart) gets them again: 200 hits from 50
// goroutines on a limit of 120 count exactly 120.
func TestRedisPipelinesConcurrentCounts(t *testing.T) {
	srv := testsvc.StartRedis(t)
	r := newTestRegistry(t, nil)
	s, err := r.Counters(nil).Store(redisConf(srv.Port, nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	limits := []pdk.Limit{{Period: "hour", Max: 120}}
	if _, err := s.Hit(ctx, "warm", limits); err != nil {
		t.Fatal(err)
	}
	if err := r.redis[0].store.client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var counted atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			for range 4 {
				full, err := s.Hit(ctx, "k", limits)
				if err != nil {
					t.Error(err)
					return
				}
				if full == "" {
					counted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if counted.Load() != 120 {
		t.Fatalf("200 concurrent hits on a limit of 120: %d counted", counted.Load())
	}
}
