package pdk

import (
	"io/fs"
	"testing"

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
