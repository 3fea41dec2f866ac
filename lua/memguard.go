package lua

import (
	"context"
	"errors"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// ErrMemory is the cause of a call stopped by a MemoryGuard; its Lua
// message is LuaJIT's for a failed allocation.
var ErrMemory = errors.New("not enough memory")

// MemoryGuard stops Lua code that makes the heap outgrow a limit.
// gopher-lua allocates from Go's heap with no per-state accounting, so a
// runaway loop building a table or a string would otherwise grow the
// process until the kernel kills it, long before a phase deadline.
//
// While Lua runs, the guard samples the heap. Past the limit, if a call
// has run for a while (ordinary phases last microseconds; a runaway is the
// one still running), it collects garbage, and if the live heap is still
// past the limit, stops the call that has run longest. The stopped VM is
// discarded, which frees what it held. A heap grown by something else
// than Lua costs a sample per interval and a collection per second at
// most, and stops only calls that have run for long.
type MemoryGuard struct {
	limit atomic.Uint64

	mu    sync.Mutex
	calls map[*guardedCall]struct{}

	stop chan struct{}
	done chan struct{}
}

type guardedCall struct {
	start  time.Time
	cancel context.CancelCauseFunc
}

// NewMemoryGuard starts a guard that samples every interval; limit 0
// leaves calls unguarded until SetLimit.
func NewMemoryGuard(limit uint64, interval time.Duration) *MemoryGuard {
	g := &MemoryGuard{calls: map[*guardedCall]struct{}{}, stop: make(chan struct{}), done: make(chan struct{})}
	g.limit.Store(limit)
	go g.watch(interval)
	return g
}

// SetLimit changes the heap limit in bytes; 0 turns the guard off.
func (g *MemoryGuard) SetLimit(limit uint64) { g.limit.Store(limit) }

// Close stops the guard's sampling.
func (g *MemoryGuard) Close() {
	close(g.stop)
	<-g.done
}

// enter registers a call; leave must be called when it ends. Without a
// limit the context is returned as is, at no cost.
func (g *MemoryGuard) enter(ctx context.Context) (context.Context, func()) {
	if g == nil || g.limit.Load() == 0 {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	c := &guardedCall{start: time.Now(), cancel: cancel}
	g.mu.Lock()
	g.calls[c] = struct{}{}
	g.mu.Unlock()
	return ctx, func() {
		g.mu.Lock()
		delete(g.calls, c)
		g.mu.Unlock()
		cancel(nil)
	}
}

func (g *MemoryGuard) watch(interval time.Duration) {
	defer close(g.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var lastGC time.Time
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		limit := g.limit.Load()
		if limit == 0 || g.longest(10*interval) == nil {
			continue
		}
		metrics.Read(sample)
		if sample[0].Value.Uint64() <= limit || time.Since(lastGC) < time.Second {
			continue
		}
		// Objects include garbage not yet swept: count only what is live.
		runtime.GC()
		lastGC = time.Now()
		metrics.Read(sample)
		if sample[0].Value.Uint64() <= limit {
			continue
		}
		if c := g.longest(10 * interval); c != nil {
			g.mu.Lock()
			delete(g.calls, c) // stopped once; its leave deletes nothing
			g.mu.Unlock()
			c.cancel(ErrMemory)
		}
	}
}

// longest returns the call that has run longest, if it has run at least
// min.
func (g *MemoryGuard) longest(min time.Duration) *guardedCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	var oldest *guardedCall
	for c := range g.calls {
		if oldest == nil || c.start.Before(oldest.start) {
			oldest = c
		}
	}
	if oldest == nil || time.Since(oldest.start) < min {
		return nil
	}
	return oldest
}
