package lua

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// callCtx is the context a VM's Lua code runs under during one Run or
// Call: it is done when the caller's context is, when the call's time
// (PoolOptions.CallTimeout, for a caller's context without a deadline) is
// up, or when a MemoryGuard stops the call.
// gopher-lua checks it between instructions and Go functions read it with
// L.Context().
//
// A VM keeps one and reuses it from call to call, so a call allocates no
// context, timer or channel: a plugin handler runs for microseconds, and
// a context pair of the standard library per call (deadline, guard) cost
// more than the handler of a small plugin. The price is that it is valid
// only during its call: a Go function must not keep L.Context() past it.
type callCtx struct {
	// parent is the caller's context: its values, its deadline and its
	// cancellation pass through. Set at begin, read during the call.
	parent context.Context
	// deadline is when the call's own time is up; zero: no CallTimeout.
	deadline time.Time
	// unwatch stops passing on the parent's cancellation; nil when the
	// parent can never be done.
	unwatch func() bool
	// outer is the state's context when this call began inside another
	// (a nested Run or Call), bound again when it ends.
	outer context.Context

	// done is what Done returns, read between every two instructions
	// without a lock. stop closes it; the next call gets a new one.
	done atomic.Pointer[chan struct{}]

	mu sync.Mutex
	// gen numbers the calls; a stop for another call than the running
	// one is ignored.
	gen        uint64
	live       bool
	err, cause error
	// afters are the functions AfterFunc registered, by number.
	afters    map[uint64]func()
	afterNext uint64
	// afterRuns counts the afters started and not yet returned: they read
	// Err, so the next call waits for them before it clears it.
	afterRuns sync.WaitGroup
	// timer fires expire. It is armed for a whole CallTimeout and, when a
	// later call's deadline is not yet reached, re-armed for the rest, so
	// a VM that runs many short calls resets no timer per call.
	timer *time.Timer
	armed bool
}

// begin starts a call under parent, at now, with timeout (0: none),
// and returns its number.
func (c *callCtx) begin(parent context.Context, now time.Time, timeout time.Duration) uint64 {
	c.afterRuns.Wait()
	c.mu.Lock()
	c.gen++
	gen := c.gen
	c.live, c.parent = true, parent
	if c.err != nil || c.done.Load() == nil { // the first call, or the last one was stopped
		done := make(chan struct{})
		c.done.Store(&done)
		c.err, c.cause = nil, nil
	}
	c.deadline = time.Time{}
	if _, ok := parent.Deadline(); ok {
		timeout = 0 // the caller's deadline governs, as its own bound
	}
	if timeout > 0 {
		c.deadline = now.Add(timeout)
		switch {
		case c.timer == nil:
			c.timer = time.AfterFunc(timeout, c.expire)
		case !c.armed:
			c.timer.Reset(timeout)
		}
		c.armed = true
	}
	c.mu.Unlock()
	if parent.Done() != nil {
		c.unwatch = context.AfterFunc(parent, func() { c.stop(gen, parent.Err(), context.Cause(parent)) })
	}
	return gen
}

// end ends the running call; a stop that comes after it is ignored.
// When AfterFunc registrations are left (a context derived from the
// call's and not cancelled by its maker), the call's context is cancelled
// for them, as a standard context would be at the end of its call.
func (c *callCtx) end() {
	c.mu.Lock()
	c.live = false
	if len(c.afters) > 0 && c.err == nil {
		c.err, c.cause = context.Canceled, context.Canceled
		close(*c.done.Load())
		c.unsyncedRunAfters()
	}
	c.parent = context.Background()
	c.mu.Unlock()
	if c.unwatch != nil {
		c.unwatch()
		c.unwatch = nil
	}
}

// stop ends call gen with err (context.DeadlineExceeded or Canceled) and
// cause (ErrMemory for the guard): Done closes and Lua raises err's text
// at its next instruction.
func (c *callCtx) stop(gen uint64, err, cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live || gen != c.gen || c.err != nil {
		return
	}
	c.err, c.cause = err, cause
	close(*c.done.Load())
	c.unsyncedRunAfters()
}

// expire is the timer's: it stops a call past its deadline and re-arms
// for one that is not there yet.
func (c *callCtx) expire() {
	c.mu.Lock()
	if !c.live {
		c.armed = false
		c.mu.Unlock()
		return
	}
	gen := c.gen
	if left := time.Until(c.deadline); left > 0 {
		c.timer.Reset(left)
		c.mu.Unlock()
		return
	}
	c.armed = false
	c.mu.Unlock()
	c.stop(gen, context.DeadlineExceeded, context.DeadlineExceeded)
}

// close stops the timer of a VM being closed.
func (c *callCtx) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
}

// stopped returns why the call was stopped: its error and cause, both nil
// if it was not.
func (c *callCtx) stopped() (err, cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err, c.cause
}

func (c *callCtx) Deadline() (time.Time, bool) {
	c.mu.Lock()
	d, parent := c.deadline, c.parent
	c.mu.Unlock()
	if pd, ok := parent.Deadline(); ok && (d.IsZero() || pd.Before(d)) {
		d = pd
	}
	return d, !d.IsZero()
}

func (c *callCtx) Done() <-chan struct{} { return *c.done.Load() }

func (c *callCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *callCtx) Value(key any) any {
	c.mu.Lock()
	parent := c.parent
	c.mu.Unlock()
	return parent.Value(key)
}

// AfterFunc arranges for f to run in its own goroutine once the call is
// stopped or ends; stop unregisters it. context.AfterFunc and the
// contexts derived from c (a cosocket's timeout) use it: without it each
// would start a goroutine to wait on Done.
func (c *callCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live && c.err == nil { // kept past its call: done, as after end
		c.err, c.cause = context.Canceled, context.Canceled
		close(*c.done.Load())
	}
	if c.err != nil {
		c.unsyncedStartAfter(f)
		return func() bool { return false }
	}
	if c.afters == nil {
		c.afters = map[uint64]func(){}
	}
	c.afterNext++
	id := c.afterNext
	c.afters[id] = f
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.afters[id]
		delete(c.afters, id)
		return ok
	}
}

// unsyncedRunAfters starts what AfterFunc registered; c.mu is held.
func (c *callCtx) unsyncedRunAfters() {
	for id, f := range c.afters {
		c.unsyncedStartAfter(f)
		delete(c.afters, id)
	}
}

// unsyncedStartAfter runs f in its own goroutine, counted in afterRuns;
// c.mu is held, and f may take it.
func (c *callCtx) unsyncedStartAfter(f func()) {
	c.afterRuns.Add(1)
	go func() {
		defer c.afterRuns.Done()
		f()
	}()
}
