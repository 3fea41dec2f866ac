package lua

import (
	"context"
	"errors"
	"testing"
	"time"

	glua "github.com/yuin/gopher-lua"
)

// runOrCall calls fn with Run (on a coroutine) or Call (on the VM's main
// state), the two ways a handler runs, and returns the error.
func runOrCall(t *testing.T, vm *VM, fn glua.LValue, run bool) error {
	if run {
		_, _, err := vm.Run(t.Context(), fn)
		return err
	}
	_, err := vm.Call(t.Context(), fn)
	return err
}

// CallTimeout stops a Run or a Call that runs past it, with the Timeout
// error a context deadline gives, and the VM is no longer trusted.
func TestCallTimeoutStopsALoop(t *testing.T) {
	for _, run := range []bool{false, true} {
		vm := newTestVM(t, nil, PoolOptions{CallTimeout: 50 * time.Millisecond})
		fn := runLua(t, vm, `return function() while true do end end`)[0]
		err := runOrCall(t, vm, fn, run)
		var le *Error
		if !errors.As(err, &le) || le.Kind != Timeout || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("run %v: err = %v; want a Timeout *Error wrapping DeadlineExceeded", run, err)
		}
		if !vm.Broken() {
			t.Errorf("run %v: the VM is still trusted after a timeout", run)
		}
		if vm.L.Context() != nil {
			t.Errorf("run %v: context still bound after the call", run)
		}
	}
}

// The timeout is each call's own: calls that together outlast it, each
// far shorter, all succeed, though the VM's context and timer are reused
// from one call to the next.
func TestCallTimeoutIsPerCall(t *testing.T) {
	const timeout = 40 * time.Millisecond
	vm := newTestVM(t, nil, PoolOptions{CallTimeout: timeout})
	fn := runLua(t, vm, `return function(n) local s = 0 for i = 1, n do s = s + i end return s end`)[0]
	calls := 0
	for end := time.Now().Add(4 * timeout); time.Now().Before(end); calls++ {
		_, res, err := vm.Run(t.Context(), fn, glua.LNumber(1000))
		if err != nil || len(res) != 1 || res[0].String() != "500500" {
			t.Fatalf("call %d: %v, %v; want [500500]", calls, res, err)
		}
	}
	if calls < 10 {
		t.Fatalf("only %d calls in 4 timeouts", calls)
	}
}

// The call's context, as a Go function sees it: its deadline is the
// call's timeout, or the caller's when that comes first; the caller's
// values pass through; a cancellation of the caller reaches the loop.
func TestCallContextSeenByGoFunctions(t *testing.T) {
	type key struct{}
	vm := newTestVM(t, nil, PoolOptions{CallTimeout: time.Minute})
	var deadline time.Time
	var value any
	vm.L.SetGlobal("look", vm.L.NewFunction(func(L *glua.LState) int {
		deadline, _ = L.Context().Deadline()
		value = L.Context().Value(key{})
		return 0
	}))
	look, _ := vm.L.GetGlobal("look").(*glua.LFunction)

	before := time.Now()
	if _, _, err := vm.Run(context.WithValue(t.Context(), key{}, "v"), look); err != nil {
		t.Fatal(err)
	}
	if deadline.Before(before.Add(time.Minute)) || deadline.After(time.Now().Add(time.Minute)) {
		t.Errorf("deadline %v; want a minute after the call began (%v)", deadline, before)
	}
	if value != "v" {
		t.Errorf("Value = %v; want the caller's v", value)
	}

	soon := time.Now().Add(time.Second)
	ctx, cancel := context.WithDeadline(t.Context(), soon)
	defer cancel()
	if _, _, err := vm.Run(ctx, look); err != nil {
		t.Fatal(err)
	}
	if !deadline.Equal(soon) {
		t.Errorf("deadline %v; want the caller's earlier %v", deadline, soon)
	}

	ctx, cancel = context.WithCancel(t.Context())
	vm.L.SetGlobal("cancel", vm.L.NewFunction(func(*glua.LState) int { cancel(); return 0 }))
	fn := runLua(t, vm, `return function() cancel() while true do end end`)[0]
	_, _, err := vm.Run(ctx, fn)
	var le *Error
	if !errors.As(err, &le) || le.Kind != Canceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled during the call: %v; want a Canceled *Error", err)
	}
}

// A Run made by a Go function during another call gets a context of its
// own: its end leaves the outer call's deadline in force, whether the
// outer call is a Run (its loop on the Run coroutine) or a Call (on the
// VM's main state, whose context the nested Run binds and unbinds).
func TestNestedRunKeepsTheOuterTimeout(t *testing.T) {
	for _, outerRun := range []bool{true, false} {
		vm := newTestVM(t, nil, PoolOptions{CallTimeout: 50 * time.Millisecond})
		inner := runLua(t, vm, `return function() return 1 end`)[0]
		vm.L.SetGlobal("nested", vm.L.NewFunction(func(L *glua.LState) int {
			if _, _, err := vm.Run(t.Context(), inner); err != nil {
				L.RaiseError("inner: %v", err)
			}
			return 0
		}))
		fn := runLua(t, vm, `return function() nested() while true do end end`)[0]
		err := runOrCall(t, vm, fn, outerRun)
		var le *Error
		if !errors.As(err, &le) || le.Kind != Timeout {
			t.Fatalf("outer Run %v, loop after a nested Run: %v; want a Timeout *Error", outerRun, err)
		}
	}
}

// Contexts derived from the call's (a cosocket's timeout) register with
// it rather than wait in a goroutine of their own; they are cancelled
// when the call is stopped, and at its end if their maker did not.
func TestContextsDerivedFromACall(t *testing.T) {
	vm := newTestVM(t, nil, PoolOptions{CallTimeout: 50 * time.Millisecond})
	var stopped, leftover context.Context
	var cancels []context.CancelFunc // called only once the test is over
	defer func() {
		for _, cancel := range cancels {
			cancel()
		}
	}()
	registered := -1
	vm.L.SetGlobal("derive", vm.L.NewFunction(func(L *glua.LState) int {
		var cancelLeftover, cancelStopped context.CancelFunc
		leftover, cancelLeftover = context.WithTimeout(L.Context(), time.Minute)
		stopped, cancelStopped = context.WithCancel(L.Context())
		cancels = append(cancels, cancelLeftover, cancelStopped)
		vm.call.mu.Lock()
		registered = len(vm.call.afters)
		vm.call.mu.Unlock()
		return 0
	}))
	if _, err := callLua(t.Context(), vm, `derive() return 1`); err != nil {
		t.Fatal(err)
	}
	if registered != 2 {
		t.Errorf("%d derived contexts registered with the call; want 2", registered)
	}
	for name, ctx := range map[string]context.Context{"timeout": leftover, "cancel": stopped} {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Errorf("the %s context derived during a call is not done after the call's end", name)
		}
	}

	_, err := callLua(t.Context(), vm, `derive() while true do end`)
	var le *Error
	if !errors.As(err, &le) || le.Kind != Timeout {
		t.Fatalf("loop: %v; want a Timeout *Error", err)
	}
	select {
	case <-stopped.Done():
		if !errors.Is(stopped.Err(), context.DeadlineExceeded) {
			t.Errorf("derived context's error %v; want the call's DeadlineExceeded", stopped.Err())
		}
	case <-time.After(10 * time.Second):
		t.Error("a context derived during a stopped call is not done")
	}
}

// A caller's own deadline replaces CallTimeout: a timer callback may run
// longer than a phase.
func TestCallersDeadlineReplacesCallTimeout(t *testing.T) {
	vm := newTestVM(t, nil, PoolOptions{CallTimeout: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	res, err := callLua(ctx, vm, `local t = os.clock() while os.clock() - t < 0.08 do end return "done"`)
	if err != nil || len(res) != 1 || res[0].String() != "done" {
		t.Fatalf("a call of 80 ms under a caller's minute: %v, %v; want done", res, err)
	}
}

// A context left registered at a call's end is cancelled from a
// goroutine that reads the call context's error; the next call, begun
// at once, must not clear that error before it is read (the context
// package panics on a cancellation without one).
func TestLeftoverContextsAcrossCalls(t *testing.T) {
	vm := newTestVM(t, nil, PoolOptions{CallTimeout: time.Minute})
	var left []context.Context
	var cancels []context.CancelFunc
	defer func() {
		for _, cancel := range cancels {
			cancel()
		}
	}()
	vm.L.SetGlobal("derive", vm.L.NewFunction(func(L *glua.LState) int {
		ctx, cancel := context.WithCancel(L.Context())
		left, cancels = append(left, ctx), append(cancels, cancel)
		return 0
	}))
	fn := runLua(t, vm, `return function() derive() end`)[0]
	for range 500 {
		if _, _, err := vm.Run(t.Context(), fn); err != nil {
			t.Fatal(err)
		}
	}
	for i, ctx := range left {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("context %d, left at its call's end, is not done", i)
		}
	}
}
