package limits

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gong-proxy/gong/pdk"
)

// batched is a Redis store whose rate counts are kept on the node and sent
// every interval (the plugins' sync_rate), as Kong's rate-limiting does:
// one round trip per interval instead of per session. Between syncs a
// window's count is the total Redis last answered plus this node's own
// counts since, so a fleet may let through up to one interval's worth of
// other nodes' sessions beyond the limit. Concurrency counts go to Redis
// each time.
type batched struct {
	*redisStore // shared with the store's other users, closed by them
	interval    time.Duration

	mu      sync.Mutex
	windows map[string]*batchCount // by Redis key
	stop    chan struct{}
	done    sync.WaitGroup
}

type batchCount struct {
	remote, delta int64
	expiry        time.Duration
	end           time.Time
}

func newBatched(r *redisStore, interval time.Duration) *batched {
	b := &batched{redisStore: r, interval: interval, windows: map[string]*batchCount{}, stop: make(chan struct{})}
	b.done.Add(1)
	go b.loop()
	return b
}

// Hit implements pdk.CounterStore without a round trip.
func (b *batched) Hit(_ context.Context, key string, limits []pdk.Limit) (string, error) {
	now := b.now()
	keys, _, err := windowKeys(key, limits, now)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	counts := make([]*batchCount, len(keys))
	for i, k := range keys {
		c := b.windows[k]
		if c == nil {
			_, end, _ := window(limits[i].Period, now)
			c = &batchCount{expiry: expiry[limits[i].Period], end: end}
			b.windows[k] = c
		}
		if c.remote+c.delta >= limits[i].Max {
			return limits[i].Period, nil
		}
		counts[i] = c
	}
	for _, c := range counts {
		c.delta++
	}
	return "", nil
}

func (b *batched) loop() {
	defer b.done.Done()
	t := time.NewTicker(b.interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			if err := b.sync(); err != nil {
				b.onErr(err)
			}
		}
	}
}

// sync adds each window's counts since the last sync to Redis and reads
// back the fleet's totals; windows that ended are forgotten.
func (b *batched) sync() error {
	now := b.now()
	b.mu.Lock()
	type pending struct {
		delta  int64
		expiry time.Duration
	}
	sent := make(map[string]pending, len(b.windows))
	for k, c := range b.windows {
		if !now.Before(c.end) {
			delete(b.windows, k)
			continue
		}
		sent[k] = pending{c.delta, c.expiry}
	}
	b.mu.Unlock()
	if len(sent) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.interval+b.client.Options().ReadTimeout)
	defer cancel()
	p := b.client.Pipeline()
	totals := make(map[string]*redis.IntCmd, len(sent))
	for k, s := range sent {
		totals[k] = p.IncrBy(ctx, k, s.delta)
		p.ExpireNX(ctx, k, s.expiry)
	}
	if _, err := p.Exec(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, cmd := range totals {
		if c := b.windows[k]; c != nil {
			c.remote = cmd.Val()
			c.delta -= sent[k].delta
		}
	}
	return nil
}

func (b *batched) close() {
	close(b.stop)
	b.done.Wait()
	if err := b.sync(); err != nil {
		b.onErr(err)
	}
}
