package pdk

import (
	"sync"

	glua "github.com/yuin/gopher-lua"
)

// QueueLedger counts the entries kong.tools.queue (lua/lib/kong/tools/queue.lua)
// holds in one generation's VMs, by plugin. Queues live in Lua, so an
// entry the queue drops, or one still queued when the generation's
// timers have run for the last time, would otherwise vanish without a
// trace: the ledger reports both as lost. It is safe for concurrent use.
type QueueLedger struct {
	lost func(plugin string, n int)

	mu   sync.Mutex
	held map[string]int
}

// NewQueueLedger returns an empty ledger reporting lost entries to lost
// (nil: only the count of held entries is kept).
func NewQueueLedger(lost func(plugin string, n int)) *QueueLedger {
	return &QueueLedger{lost: lost, held: map[string]int{}}
}

// hold counts n entries entering a queue of plugin.
func (q *QueueLedger) hold(plugin string, n int) {
	q.mu.Lock()
	q.held[plugin] += n
	q.mu.Unlock()
}

// release counts n entries leaving a queue of plugin: delivered, or lost.
// Entries Settle already reported are not counted again.
func (q *QueueLedger) release(plugin string, n int, lost bool) {
	q.mu.Lock()
	n = min(n, q.held[plugin])
	q.held[plugin] -= n
	q.mu.Unlock()
	if lost && n > 0 && q.lost != nil {
		q.lost(plugin, n)
	}
}

// Settle reports every entry still held as lost, and returns how many
// there were. The generation calls it once its timers have ended: what
// its queues hold then will never be sent.
func (q *QueueLedger) Settle() int {
	q.mu.Lock()
	held := q.held
	q.held = map[string]int{}
	q.mu.Unlock()
	total := 0
	for plugin, n := range held {
		if n > 0 && q.lost != nil {
			q.lost(plugin, n)
		}
		total += max(n, 0)
	}
	return total
}

// openQueueLedger is the gong.queue_ledger module kong.tools.queue reports to:
//
//	name = ledger.plugin()            -- the running plugin's name, "unknown" outside one
//	ledger.hold(name, n)              -- n entries queued
//	ledger.release(name, n, lost)     -- n entries left the queue, sent or (lost = true) dropped
//
// Without a ledger (a VM outside a server) the calls do nothing.
func openQueueLedger(L *glua.LState) int {
	b := BindingOf(L)
	ledger := func() *QueueLedger {
		if b == nil || b.opts == nil {
			return nil
		}
		return b.opts.Queues
	}
	L.Push(L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"plugin": func(L *glua.LState) int {
			name := "unknown"
			if b != nil && b.State != nil && b.State.Plugin != "" {
				name = b.State.Plugin
			}
			L.Push(glua.LString(name))
			return 1
		},
		"hold": func(L *glua.LState) int {
			if q := ledger(); q != nil {
				q.hold(L.CheckString(1), L.CheckInt(2))
			}
			return 0
		},
		"release": func(L *glua.LState) int {
			if q := ledger(); q != nil {
				q.release(L.CheckString(1), L.CheckInt(2), L.ToBool(3))
			}
			return 0
		},
	}))
	return 1
}
