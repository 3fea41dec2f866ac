package pdk

import (
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/gong-proxy/gong/lua"
)

// TestQueue runs the bundled kong.tools.queue on a pool with timers: a
// full batch goes out at once, a failed batch is retried, and what waits
// for the coalescing delay goes out when the timers close.
func TestQueue(t *testing.T) {
	src, err := fs.ReadFile(lua.Lib, "lib/kong/tools/queue.lua")
	if err != nil {
		t.Fatal(err)
	}
	timers := NewTimers()
	pool, reports := reportPool(t, map[string]string{"kong.tools.queue": string(src)}, Options{Timers: timers}, "")
	defer pool.Close()
	leaseRun(t, pool, PhaseLog, `
		local Queue = require "kong.tools.queue"
		local failed = false
		local function handler(conf, entries)
			if entries[1] == "a" and not failed then
				failed = true
				return nil, "try again"
			end
			report(conf.tag .. ":" .. table.concat(entries, ","))
			return true
		end
		local conf = Queue.get_plugin_params("test", { queue = {
			max_batch_size = 2, max_coalescing_delay = 30, max_entries = 10,
			max_retry_time = 60, initial_retry_delay = 0.01, max_retry_delay = 1,
			concurrency_limit = 1 } }, "q")
		for _, v in ipairs({ "a", "b", "c" }) do
			assert(Queue.enqueue(conf, handler, { tag = "t" }, v))
		end`)
	if got := next(t, reports); got != "t:a,b" {
		t.Errorf("first batch %q; want t:a,b", got)
	}
	timers.Close()
	if got := next(t, reports); got != "t:c" {
		t.Errorf("batch at close %q; want t:c", got)
	}
}

// TestQueueLedgerCountsLost: the ledger counts, by the plugin that made
// the queue, an entry dropped from a full queue, a batch given up at
// close, and entries still queued when a callback is stopped at the
// close deadline.
func TestQueueLedgerCountsLost(t *testing.T) {
	src, err := fs.ReadFile(lua.Lib, "lib/kong/tools/queue.lua")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	lost := map[string]int{}
	ledger := NewQueueLedger(func(plugin string, n int) {
		mu.Lock()
		lost[plugin] += n
		mu.Unlock()
	})
	lostOf := func(plugin string) int {
		mu.Lock()
		defer mu.Unlock()
		return lost[plugin]
	}
	timers := NewTimers()
	pool, _ := reportPool(t, map[string]string{"kong.tools.queue": string(src)}, Options{Timers: timers, Queues: ledger}, "")
	defer pool.Close()
	vm, err := pool.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	BindingOf(vm.L).State = &State{Phase: PhaseLog, Plugin: "failing-log"}
	runString(t, vm, `
		local Queue = require "kong.tools.queue"
		local conf = Queue.get_plugin_params("failing-log", { queue = {
			max_batch_size = 10, max_coalescing_delay = 30, max_entries = 2,
			max_retry_time = 60, initial_retry_delay = 1, max_retry_delay = 1,
			concurrency_limit = 1 } }, "failing")
		for _, v in ipairs({ "a", "b", "c" }) do
			Queue.enqueue(conf, function() return nil, "sink down" end, nil, v)
		end`)
	BindingOf(vm.L).State = &State{Phase: PhaseLog, Plugin: "stuck-log"}
	runString(t, vm, `
		local Queue = require "kong.tools.queue"
		local conf = Queue.get_plugin_params("stuck-log", { queue = {
			max_batch_size = 10, max_coalescing_delay = 30, max_entries = 10,
			max_retry_time = 60, initial_retry_delay = 1, max_retry_delay = 1,
			concurrency_limit = 1 } }, "stuck")
		for _, v in ipairs({ "a", "b" }) do
			Queue.enqueue(conf, function() ngx.sleep(60) return true end, nil, v)
		end`)
	pool.Put(vm)
	if got := lostOf("failing-log"); got != 1 {
		t.Errorf("entries lost from the full queue: %d; want 1", got)
	}
	began := time.Now()
	if timers.CloseWithin(200 * time.Millisecond) {
		t.Error("CloseWithin reports every callback ended; the stuck one was stopped")
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("CloseWithin(200ms) took %s", took)
	}
	// Both queues' timers run on the one VM: the failing queue's last
	// try may have come before the stuck one took the VM, or not at all.
	if got := ledger.Settle(); got != 2 && got != 4 {
		t.Errorf("Settle found %d entries still queued; want the stuck queue's 2, and maybe the failing one's 2", got)
	}
	if a, b := lostOf("failing-log"), lostOf("stuck-log"); a != 3 || b != 2 {
		t.Errorf("lost entries: failing-log %d, stuck-log %d; want 3 and 2", a, b)
	}
}
