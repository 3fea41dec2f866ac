package lua

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	glua "github.com/yuin/gopher-lua"
)

// VM is one Lua state with the standard library, the compat modules and
// the bundle's require searcher. It is not goroutine-safe: one lease, one
// goroutine.
type VM struct {
	L      *glua.LState
	resets []func(*VM) error

	// broken is set when the state can no longer be trusted; Put then
	// closes the VM instead of reusing it.
	broken bool

	// raised and trace are written by the coroutine panic hook of Run: a
	// Lua error goes through LState.Panic, a Go panic does not.
	raised bool
	trace  string

	// co is the Run coroutine, suspended in runLoopProto between Runs
	// (nil until the first Run, and after a Run that did not return).
	// runLoop, hook, yield and done start it.
	co      *glua.LState
	runLoop *glua.LFunction
	hook    *glua.LFunction
	yield   glua.LValue
	done    *glua.LUserData

	// call is the context of the running Run or Call, reused by the next
	// one; a call made while another runs (a Run inside a Go function)
	// gets its own. timeout is PoolOptions.CallTimeout.
	call    callCtx
	timeout time.Duration

	guard    *MemoryGuard
	pool     *Pool
	leased   bool
	idleFrom time.Time
	gone     bool         // closed by its pool; guarded by the pool's lock
	holds    atomic.Int32 // reasons to keep the VM when idle (pending timers)
	worker   int          // ngx.worker.id: unique among the pool's live VMs
}

// WorkerID is ngx.worker.id: the VM's number among its pool's live VMs,
// from 0, kept for its life and reused after it. A VM made by NewVM is 0.
func (vm *VM) WorkerID() int { return vm.worker }

// Pool returns the pool the VM belongs to, nil for a VM made by NewVM.
func (vm *VM) Pool() *Pool { return vm.pool }

// Hold keeps the VM alive while idle (the pool does not shrink it away)
// until release is called: a pending timer needs its VM.
func (vm *VM) Hold() (release func()) {
	vm.holds.Add(1)
	var once sync.Once
	return func() { once.Do(func() { vm.holds.Add(-1) }) }
}

// libs is opened in this order because package must exist before base
// (gopher-lua linit.go). channel is left out: it is gopher-lua's own, not
// Lua's, and values must never cross VMs.
var libs = []struct {
	name string
	open glua.LGFunction
}{
	{glua.LoadLibName, glua.OpenPackage},
	{glua.BaseLibName, glua.OpenBase},
	{glua.TabLibName, glua.OpenTable},
	{glua.IoLibName, glua.OpenIo},
	{glua.OsLibName, glua.OpenOs},
	{glua.StringLibName, glua.OpenString},
	{glua.MathLibName, glua.OpenMath},
	{glua.DebugLibName, glua.OpenDebug},
	{glua.CoroutineLibName, glua.OpenCoroutine},
}

// runLoopProto is the body of a VM's Run coroutine. It installs the Panic
// hook on the thread (Resume resets it) and yields done; then each resume
// brings a function and its arguments, which it calls, yielding done and
// the results. The tail call keeps one frame however many functions ran,
// so one coroutine serves every Run that returns: a new one costs a value
// stack of RegistrySize slots and a Global (about 30 KiB).
var runLoopProto = mustCompile("=(run)", `local hook, yield, done = ...
hook()
local function loop(handler, ...)
  return loop(yield(done, handler(...)))
end
return loop(yield(done))`)

// runLoopSource is the source runLoopProto's frame reports; tracebacks
// leave it out, as they did when each Run had a coroutine of its own.
const runLoopSource = "=(run)"

func mustCompile(name, src string) *glua.FunctionProto {
	p, err := Compile(name, src)
	if err != nil {
		panic(err)
	}
	return p
}

// NewVM builds a VM for b with the sizes of opts (zero fields take the
// defaults of PoolOptions).
func NewVM(b *Bundle, opts PoolOptions) (*VM, error) {
	opts = opts.withDefaults()
	L := glua.NewState(glua.Options{
		SkipOpenLibs:        true,
		CallStackSize:       opts.CallStackSize,
		RegistrySize:        opts.RegistrySize,
		RegistryMaxSize:     opts.RegistryMaxSize,
		MinimizeStackMemory: true,
	})
	vm := &VM{L: L, guard: opts.MemoryGuard, timeout: opts.CallTimeout}
	if err := vm.init(b); err != nil {
		L.Close()
		return nil, err
	}
	return vm, nil
}

func (vm *VM) init(b *Bundle) error {
	L := vm.L
	guard := L.NewUserData()
	guard.Value = vm.guard
	L.Get(glua.RegistryIndex).(*glua.LTable).RawSetString(guardKey, guard)
	for _, lib := range libs {
		L.Push(L.NewFunction(lib.open))
		L.Push(glua.LString(lib.name))
		if err := L.PCall(1, 0, nil); err != nil {
			return fmt.Errorf("open lua library %q: %w", lib.name, err)
		}
	}
	if err := openCompat(L); err != nil {
		return err
	}
	if b != nil {
		// After package.preload, before the file-system searcher: bundle
		// modules win over stray files on package.path.
		loaders, ok := L.GetField(L.GetGlobal("package"), "loaders").(*glua.LTable)
		if !ok {
			return fmt.Errorf("lua package.loaders missing")
		}
		loaders.Insert(2, L.NewFunction(b.searcher))
	}
	vm.runLoop = L.NewFunctionFromProto(runLoopProto)
	vm.hook = L.NewFunction(vm.installHook)
	vm.yield = L.GetField(L.GetGlobal("coroutine"), "yield")
	vm.done = L.NewUserData()
	return nil
}

// OnReset registers fn to run when the VM goes back to its pool, after the
// stack is cleared. The pdk uses it to unbind connection state and empty
// kong.ctx tables; an error discards the VM.
func (vm *VM) OnReset(fn func(*VM) error) { vm.resets = append(vm.resets, fn) }

// Broken reports whether the VM's state is no longer trusted (timeout,
// cancellation, Go panic, registry overflow). Pool.Put discards such VMs.
func (vm *VM) Broken() bool { return vm.broken }

// Close releases the state. Pool users call Discard instead.
func (vm *VM) Close() {
	vm.call.close()
	vm.L.Close()
}

// enter starts a call under parent: its context, bound to the state, and
// the guard's record of it. A call that nothing can stop (no timeout, no
// guard, a parent never done) keeps gopher-lua's faster loop, which skips
// the check between instructions.
func (vm *VM) enter(parent context.Context) *callCtx {
	c := &vm.call
	if c.live {
		c = &callCtx{outer: vm.L.Context()}
	}
	now := time.Now()
	gen := c.begin(parent, now, vm.timeout)
	vm.guard.enter(c, gen, now)
	if vm.timeout > 0 || vm.guard != nil || parent.Done() != nil {
		vm.L.SetContext(c)
	}
	return c
}

// leave ends the call enter started; a nested call's end binds the
// outer call's context again.
func (vm *VM) leave(c *callCtx) {
	vm.L.RemoveContext()
	if c.outer != nil {
		vm.L.SetContext(c.outer)
	}
	vm.guard.leave(c)
	c.end()
	if c != &vm.call {
		c.close()
	}
}

// Call runs fn(args...) protected, under ctx: a deadline or cancellation
// stops even a loop that never calls Go, because gopher-lua checks the
// context between instructions. Blocking Go functions must watch
// L.Context() themselves.
func (vm *VM) Call(ctx context.Context, fn glua.LValue, args ...glua.LValue) ([]glua.LValue, error) {
	L := vm.L
	c := vm.enter(ctx)
	defer vm.leave(c)
	base := L.GetTop()
	L.Push(fn)
	for _, a := range args {
		L.Push(a)
	}
	if err := L.PCall(len(args), glua.MultRet, nil); err != nil {
		L.SetTop(base)
		return nil, vm.fail(c, err)
	}
	n := L.GetTop() - base
	var res []glua.LValue
	if n > 0 {
		res = make([]glua.LValue, n)
		for i := range res {
			res[i] = L.Get(base + 1 + i)
		}
	}
	L.SetTop(base)
	return res, nil
}

// Require loads module name as Lua's require does (once per VM).
func (vm *VM) Require(ctx context.Context, name string) (glua.LValue, error) {
	res, err := vm.Call(ctx, vm.L.GetGlobal("require"), glua.LString(name))
	if err != nil {
		return glua.LNil, err
	}
	if len(res) == 0 {
		return glua.LNil, nil
	}
	return res[0], nil
}

// Run runs fn(args...) on the VM's Run coroutine under ctx. A Go
// function that returns L.Yield(values...) ends it early, as Kong's
// kong.response.exit does with coroutine.yield: Run then reports yielded
// and the values, and the coroutine is abandoned, never resumed (the next
// Run starts another, as after an error). gopher-lua reports a function
// that returns nothing as one nil result. Call is still the cheaper choice
// when no early exit is needed.
func (vm *VM) Run(ctx context.Context, fn glua.LValue, args ...glua.LValue) (yielded bool, results []glua.LValue, err error) {
	L := vm.L
	// Taken while it runs: a Run nested in this one starts its own.
	th := vm.co
	vm.co = nil
	if th == nil {
		if th = vm.startRunLoop(); th == nil {
			return false, nil, &Error{Kind: Panic, Msg: "the Run coroutine did not start"}
		}
	}
	c := vm.enter(ctx)
	defer vm.leave(c)
	if L.Context() != nil {
		th.SetContext(c)
	}
	vm.raised, vm.trace = false, ""
	argv := make([]glua.LValue, 0, len(args)+1)
	argv = append(argv, fn)
	argv = append(argv, args...)
	st, rerr, vals := L.Resume(th, vm.runLoop, argv...)
	th.RemoveContext()
	if st == glua.ResumeYield {
		if len(vals) > 0 && vals[0] == vm.done {
			vm.co = th
			if vals = vals[1:]; len(vals) == 0 {
				vals = []glua.LValue{glua.LNil}
			}
			return false, vals, nil
		}
		return true, vals, nil
	}
	msg := rerr.Error()
	var e *Error
	switch {
	case c.Err() != nil:
		e = contextError(c, msg, vm.trace, rerr)
	case !vm.raised && isCallStackOverflow(msg):
		e = stackOverflow("", rerr)
		vm.broken = true
	case !vm.raised:
		// threadRun recovered a panic that never went through the Lua
		// error path: a Go panic in a Go function.
		e = &Error{Kind: Panic, Msg: msg, Err: rerr}
	default:
		e = &Error{Kind: Runtime, Msg: msg, Traceback: vm.trace, Err: rerr}
	}
	if e.Untrusted() {
		vm.broken = true
	}
	return false, nil, e
}

// startRunLoop makes a Run coroutine and runs it to its first yield; nil
// if it did not get there.
func (vm *VM) startRunLoop() *glua.LState {
	th, cancel := vm.L.NewThread()
	if cancel != nil { // inside another Run: each Run binds its own context
		cancel()
		th.RemoveContext()
	}
	st, _, vals := vm.L.Resume(th, vm.runLoop, vm.hook, vm.yield, vm.done)
	if st != glua.ResumeYield || len(vals) == 0 || vals[0] != vm.done {
		return nil
	}
	return th
}

// installHook runs first on a Run coroutine and routes its Lua errors
// through tracePanic. T is the coroutine's state.
func (vm *VM) installHook(T *glua.LState) int {
	T.Panic = vm.tracePanic
	return 0
}

// tracePanic replaces LState.Panic on Run coroutines: gopher-lua drops the
// traceback of an error that ends a coroutine, so record it here. It runs
// for errors of this coroutine and of coroutine.wrap'ed children.
func (vm *VM) tracePanic(T *glua.LState) {
	vm.raised = true
	vm.trace = traceback(T)
	panic(&glua.ApiError{Type: glua.ApiErrorRun, Object: T.Get(-1), StackTrace: vm.trace})
}

// Frame is L.GetStack(level) and L.GetInfo(what) in one, except that the
// function a Run called is described as gopher-lua describes a
// coroutine's first function (what "main", name "corountine"), as it was
// when each Run had a coroutine of its own: the run loop under it is not
// the plugin's caller.
func Frame(L *glua.LState, level int, what string) (*glua.Debug, bool) {
	dbg, ok := L.GetStack(level)
	if !ok {
		return dbg, false
	}
	if _, err := L.GetInfo(what, dbg, glua.LNil); err != nil {
		return dbg, false
	}
	if caller, ok := L.GetStack(level + 1); ok {
		if _, err := L.GetInfo("S", caller, glua.LNil); err == nil && caller.Source == runLoopSource {
			dbg.What, dbg.Name = "main", "corountine"
		}
	}
	return dbg, true
}

// traceback formats T's frames as Lua's debug.traceback does.
func traceback(T *glua.LState) string {
	var b strings.Builder
	b.WriteString("stack traceback:")
	for level := 0; level < 20; level++ {
		dbg, ok := Frame(T, level, "Sln")
		if !ok {
			break
		}
		if dbg.Source == runLoopSource {
			continue
		}
		b.WriteString("\n\t")
		if dbg.What == "G" {
			b.WriteString("[G]: in ")
		} else {
			fmt.Fprintf(&b, "%s:%d: in ", dbg.Source, dbg.CurrentLine)
		}
		switch {
		case dbg.Name != "":
			fmt.Fprintf(&b, "function '%s'", dbg.Name)
		case dbg.What == "main":
			b.WriteString("main chunk")
		default:
			b.WriteString("function <?>")
		}
	}
	return b.String()
}

// fail turns a PCall error into an *Error and marks the VM when its state
// is no longer trusted.
func (vm *VM) fail(c *callCtx, err error) *Error {
	var e *Error
	ae, ok := err.(*glua.ApiError)
	switch {
	case !ok:
		e = &Error{Kind: Runtime, Msg: err.Error(), Err: err}
	case c.Err() != nil:
		e = contextError(c, ae.Object.String(), ae.StackTrace, err)
	case ae.Type == glua.ApiErrorPanic && isCallStackOverflow(ae.Object.String()):
		e = stackOverflow(ae.StackTrace, err)
		vm.broken = true
	case ae.Type == glua.ApiErrorPanic:
		e = &Error{Kind: Panic, Msg: ae.Object.String(), Traceback: ae.StackTrace, Err: err}
	case ae.Type == glua.ApiErrorSyntax:
		e = &Error{Kind: Syntax, Msg: ae.Object.String(), Err: err}
	default:
		e = &Error{Kind: Runtime, Msg: ae.Object.String(), Traceback: ae.StackTrace, Err: err}
	}
	if e.Untrusted() {
		vm.broken = true
	}
	return e
}

// With MinimizeStackMemory, gopher-lua v1.1.2's segmented call stack never
// reports itself full, so deep recursion ends in a Go panic "lua callstack
// overflow" instead of Lua's "stack overflow" error. Report it as the Lua
// error it is, but distrust the VM: the panic skipped closing upvalues.
func isCallStackOverflow(msg string) bool { return strings.Contains(msg, "lua callstack overflow") }

func stackOverflow(tb string, cause error) *Error {
	return &Error{Kind: Runtime, Msg: "stack overflow", Traceback: tb, Err: cause}
}
