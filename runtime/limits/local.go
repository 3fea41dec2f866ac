package limits

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/gong-proxy/gong/pdk"
)

// localShards spreads the local counters over independently locked
// maps, so connections on different keys rarely wait for each other.
const localShards = 64

// MaxLocalKeys bounds the window counters and concurrency keys the local
// store holds at once; past it, new keys are refused with an error (the
// plugins' fault_tolerant decides what happens to the session). Windows
// that ended are swept each second.
const MaxLocalKeys = 1 << 20

// local is the in-process store: Go counters behind sharded mutexes.
type local struct {
	seed   maphash.Seed
	now    func() time.Time
	shards [localShards]localShard
}

type localShard struct {
	mu        sync.Mutex
	windows   map[windowKey]*windowCount
	conns     map[string]int64
	nextSweep time.Time
}

type windowKey struct {
	key, period string
	start       int64 // unix seconds
}

type windowCount struct {
	n   int64
	end time.Time
}

func newLocal(now func() time.Time) *local {
	l := &local{seed: maphash.MakeSeed(), now: now}
	for i := range l.shards {
		l.shards[i].windows = map[windowKey]*windowCount{}
		l.shards[i].conns = map[string]int64{}
	}
	return l
}

func (l *local) shard(key string) *localShard {
	return &l.shards[maphash.String(l.seed, key)%localShards]
}

// Hit implements pdk.CounterStore.
func (l *local) Hit(_ context.Context, key string, limits []pdk.Limit) (string, error) {
	now := l.now()
	sh := l.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.sweep(now)
	var counts [6]*windowCount
	if len(limits) > len(counts) {
		return "", fmt.Errorf("at most %d limits per hit, got %d", len(counts), len(limits))
	}
	for i, lim := range limits {
		start, end, err := window(lim.Period, now)
		if err != nil {
			return "", err
		}
		k := windowKey{key, lim.Period, start.Unix()}
		c := sh.windows[k]
		if c == nil {
			if len(sh.windows)+len(sh.conns) >= MaxLocalKeys/localShards {
				return "", fmt.Errorf("local counters full: %d keys", MaxLocalKeys)
			}
			c = &windowCount{end: end}
			sh.windows[k] = c
		}
		if c.n >= lim.Max {
			return lim.Period, nil
		}
		counts[i] = c
	}
	for _, c := range counts[:len(limits)] {
		c.n++
	}
	return "", nil
}

// sweep drops the windows that ended, at most once a second.
func (sh *localShard) sweep(now time.Time) {
	if now.Before(sh.nextSweep) {
		return
	}
	sh.nextSweep = now.Add(time.Second)
	for k, c := range sh.windows {
		if !now.Before(c.end) {
			delete(sh.windows, k)
		}
	}
}

// Acquire implements pdk.CounterStore.
func (l *local) Acquire(_ context.Context, key string, max int64) (func(), bool, error) {
	sh := l.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n, held := sh.conns[key]
	if n >= max {
		return nil, false, nil
	}
	if !held && len(sh.windows)+len(sh.conns) >= MaxLocalKeys/localShards {
		return nil, false, fmt.Errorf("local counters full: %d keys", MaxLocalKeys)
	}
	sh.conns[key] = n + 1
	var once sync.Once
	return func() { once.Do(func() { l.release(key) }) }, true, nil
}

func (l *local) release(key string) {
	sh := l.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if n := sh.conns[key] - 1; n > 0 {
		sh.conns[key] = n
	} else {
		delete(sh.conns, key)
	}
}
