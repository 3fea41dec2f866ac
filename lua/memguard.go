package lua

import (
	"context"
	"errors"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	glua "github.com/yuin/gopher-lua"
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
	// lastCollect is when CheckAlloc last collected (Unix ns).
	lastCollect atomic.Int64

	mu    sync.Mutex
	calls map[*callCtx]guardedCall

	stop chan struct{}
	done chan struct{}
}

// guardedCall is a running call of a VM: its number and start.
type guardedCall struct {
	gen   uint64
	start time.Time
}

// NewMemoryGuard starts a guard that samples every interval; limit 0
// leaves calls unguarded until SetLimit.
func NewMemoryGuard(limit uint64, interval time.Duration) *MemoryGuard {
	g := &MemoryGuard{calls: map[*callCtx]guardedCall{}, stop: make(chan struct{}), done: make(chan struct{})}
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

// enter registers call gen of c, begun at start; leave must be called
// when it ends. Without a limit, calls are not registered.
func (g *MemoryGuard) enter(c *callCtx, gen uint64, start time.Time) {
	if g == nil || g.limit.Load() == 0 {
		return
	}
	g.mu.Lock()
	g.calls[c] = guardedCall{gen, start}
	g.mu.Unlock()
}

// leave unregisters c's call, if enter registered it.
func (g *MemoryGuard) leave(c *callCtx) {
	if g == nil {
		return
	}
	g.mu.Lock()
	delete(g.calls, c)
	g.mu.Unlock()
}

func (g *MemoryGuard) watch(interval time.Duration) {
	defer close(g.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastGC time.Time
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		limit := g.limit.Load()
		if limit == 0 {
			continue
		}
		if c, _ := g.longest(10 * interval); c == nil {
			continue
		}
		if readMetric(heapObjects) <= limit || time.Since(lastGC) < time.Second {
			continue
		}
		// Objects include garbage not yet swept: count only what is live.
		runtime.GC()
		lastGC = time.Now()
		if readMetric(heapObjects) <= limit {
			continue
		}
		if c, call := g.longest(10 * interval); c != nil {
			g.mu.Lock()
			if g.calls[c].gen == call.gen {
				delete(g.calls, c) // stopped once: not chosen again while it unwinds
			}
			g.mu.Unlock()
			c.stop(call.gen, context.Canceled, ErrMemory)
		}
	}
}

// longest returns the call that has run longest, if it has run at least
// min.
func (g *MemoryGuard) longest(min time.Duration) (*callCtx, guardedCall) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var oldest *callCtx
	var call guardedCall
	for c, gc := range g.calls {
		if oldest == nil || gc.start.Before(call.start) {
			oldest, call = c, gc
		}
	}
	if oldest == nil || time.Since(call.start) < min {
		return nil, guardedCall{}
	}
	return oldest, call
}

// Sampling cannot stop one huge allocation: string.rep("x", 2^36) asks Go
// for 64 GiB at once, and a Go allocation that fails ends the process.
// So every Go function that allocates a size Lua chose asks CheckAlloc
// first.

// smallAlloc is the size below which CheckAlloc lets an allocation
// through unchecked: alone it cannot threaten the process, and many of
// them are what the sampling stops.
const smallAlloc = 64 << 10

// maxAllocUnlimited bounds one allocation when no limit is set: LuaJIT's
// own largest string (LJ_MAX_STR), so no setting makes a single request
// from Lua fatal.
const maxAllocUnlimited = 1<<31 - 256

const guardKey = "gong.lua.guard"

// heapObjects is the metric of the heap's object bytes, live or not yet
// swept.
const heapObjects = "/memory/classes/heap/objects:bytes"

// collectEvery is the least time between two collections CheckAlloc
// forces.
const collectEvery = 100 * time.Millisecond

// heapLive is the metric of the heap the last collection found live.
const heapLive = "/gc/heap/live:bytes"

// CheckAlloc raises Lua's "not enough memory" error in L when n bytes in
// one piece are more than the VM's memory limit still allows: the limit
// less the heap the last garbage collection found live. n is a float so
// that sizes Lua computes past the range of int are refused rather than
// wrapped. Go functions reachable from Lua call it before allocating a
// size that Lua code controls.
func CheckAlloc(L *glua.LState, n float64) {
	if n < smallAlloc {
		return
	}
	var g *MemoryGuard
	if ud, ok := L.Get(glua.RegistryIndex).(*glua.LTable).RawGetString(guardKey).(*glua.LUserData); ok {
		g, _ = ud.Value.(*MemoryGuard)
	}
	if !g.allows(n) {
		L.Error(glua.LString(ErrMemory.Error()), 0)
	}
}

// CheckAppend is CheckAlloc for appending n bytes to buf: it checks
// what append would allocate when buf has to grow (the needed length
// and a quarter more, at the sizes that matter).
func CheckAppend(L *glua.LState, buf []byte, n int) {
	if need := len(buf) + n; need > cap(buf) {
		CheckAlloc(L, float64(need)*1.25)
	}
}

// allows reports whether n more bytes fit under the limit. It counts the
// heap live at the last collection, not the objects in use now, which
// include garbage. That figure can be stale after a large object died:
// before refusing, it collects, at most once per collectEvery so that a
// plugin asking again and again cannot keep the process collecting.
func (g *MemoryGuard) allows(n float64) bool {
	var limit uint64
	if g != nil {
		limit = g.limit.Load()
	}
	if limit == 0 {
		return n <= maxAllocUnlimited
	}
	if n+float64(readMetric(heapLive)) <= float64(limit) {
		return true
	}
	last := g.lastCollect.Load()
	if n > float64(limit) || time.Since(time.Unix(0, last)) < collectEvery ||
		!g.lastCollect.CompareAndSwap(last, time.Now().UnixNano()) {
		return false
	}
	runtime.GC()
	return n+float64(readMetric(heapLive)) <= float64(limit)
}

// readMetric reads one runtime/metrics value in bytes.
func readMetric(name string) uint64 {
	sample := []metrics.Sample{{Name: name}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}
