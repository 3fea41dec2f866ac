package pdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gong-proxy/gong/lua"
	"github.com/gong-proxy/gong/luanum"
	glua "github.com/yuin/gopher-lua"
)

// MaxPendingTimers is lua_max_pending_timers' default: ngx.timer.at
// refuses new timers beyond it.
const MaxPendingTimers = 1024

// timerTimeout bounds one timer callback, as phases are bounded: a
// callback still running then is stopped and its VM discarded.
const timerTimeout = time.Minute

// Timers runs the ngx.timer callbacks of one generation's VMs. A callback
// runs later on the VM that created it (its closures and arguments are
// that VM's values), which it leases from the pool like a connection
// does, so it never runs beside another user of the VM and never delays
// the connection that created it. It is safe for concurrent use.
type Timers struct {
	// Logger receives the errors of callbacks. If nil, they are dropped.
	Logger Logger

	// ctx is the parent of every callback's context; CloseWithin
	// cancels it when its time is up.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	pending map[*timerJob]struct{}
	running int
	closing bool
	wg      sync.WaitGroup
}

// NewTimers returns an empty timer set.
func NewTimers() *Timers {
	ctx, cancel := context.WithCancel(context.Background())
	return &Timers{pending: map[*timerJob]struct{}{}, ctx: ctx, cancel: cancel}
}

// timerJob is one scheduled callback. The function and its arguments stay
// in the VM's registry under id until the job ends.
type timerJob struct {
	vm      *lua.VM
	b       *Binding
	id      int
	every   time.Duration // 0 for ngx.timer.at
	due     time.Time
	t       *time.Timer
	release func() // lets the pool close the idle VM again
	// event, when set, is a kong.worker_events event for the VM's
	// dispatcher, which stays registered under id.
	event *eventJob
}

// Close is CloseWithin(timerTimeout).
func (ts *Timers) Close() { ts.CloseWithin(timerTimeout) }

// CloseWithin ends the timers: pending callbacks whose time has come run
// normally, later ones run at once with premature = true (nginx does that
// when a worker exits), and ngx.timer.every stops repeating. Callbacks
// still running after d are stopped (their VMs discarded); false reports
// that. It returns when every callback has returned; the pool must still
// be open.
func (ts *Timers) CloseWithin(d time.Duration) bool {
	ts.mu.Lock()
	ts.closing = true
	var early []*timerJob
	for j := range ts.pending {
		if j.t.Stop() {
			early = append(early, j)
		}
	}
	ts.mu.Unlock()
	now := time.Now()
	for _, j := range early {
		go ts.fire(j, j.due.After(now)) // its schedule counted it in wg
	}
	ended := make(chan struct{})
	go func() {
		ts.wg.Wait()
		close(ended)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ended:
		ts.cancel()
		return true
	case <-t.C:
	}
	ts.logf(LevelWarn, "timer callbacks still running %s after their configuration closed were stopped", d)
	ts.cancel()
	<-ended
	return false
}

// counts returns the pending and running callbacks.
func (ts *Timers) counts() (pending, running int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.pending), ts.running
}

// schedule registers job to fire after delay; false when the set is full
// or closed.
func (ts *Timers) schedule(j *timerJob, delay time.Duration) error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closing {
		return errors.New("process exiting")
	}
	if len(ts.pending) >= MaxPendingTimers {
		return errors.New("too many pending timers")
	}
	ts.pending[j] = struct{}{}
	j.due = time.Now().Add(delay)
	ts.wg.Add(1)
	j.t = time.AfterFunc(delay, func() { ts.fire(j, false) })
	return nil
}

// fire runs one callback on its VM and reschedules ngx.timer.every.
func (ts *Timers) fire(j *timerJob, premature bool) {
	defer ts.wg.Done()
	ts.mu.Lock()
	delete(ts.pending, j)
	ts.running++
	ts.mu.Unlock()
	again := ts.run(j, premature)
	ts.mu.Lock()
	ts.running--
	ts.mu.Unlock()
	if again && j.every > 0 && ts.schedule(j, j.every) == nil {
		return
	}
	j.release()
}

// run leases the job's VM and calls the callback with premature and its
// arguments; it reports whether the VM is still there to run it again.
func (ts *Timers) run(j *timerJob, premature bool) bool {
	pool := j.vm.Pool()
	// The wait for the VM ends when the pool closes or CloseWithin gives up.
	if err := pool.GetVM(ts.ctx, j.vm); err != nil {
		if j.event != nil && errors.Is(err, lua.ErrVMGone) {
			j.event.hub.forget(j.vm) // the worker is gone, with its handlers
			return false
		}
		ts.logf(LevelErr, "timer dropped: %v", err)
		return false
	}
	ctx, cancel := context.WithTimeout(ts.ctx, timerTimeout)
	defer cancel()
	L := j.vm.L
	jobs := timerRegistry(L)
	entry, _ := jobs.RawGetInt(j.id).(*glua.LTable)
	if j.event == nil && (j.every == 0 || premature) {
		jobs.RawSetInt(j.id, glua.LNil)
	}
	if entry == nil {
		pool.Put(j.vm)
		return false
	}
	args := []glua.LValue{glua.LBool(premature)}
	if j.event != nil {
		args = append(args, eventArgs(L, j.event)...)
	}
	for i := 2; i <= entry.Len(); i++ {
		args = append(args, entry.RawGetInt(i))
	}
	// A timer has no request: a fresh State with no session and its own
	// ngx.ctx.
	j.b.State = &State{timer: true}
	if _, err := j.vm.Call(ctx, entry.RawGetInt(1), args...); err != nil {
		ts.logf(LevelErr, "lua entry thread aborted: runtime error: %v", err)
	}
	j.b.State = nil
	alive := !j.vm.Broken()
	pool.Put(j.vm)
	return alive
}

func (ts *Timers) logf(level LogLevel, format string, args ...any) {
	if ts.Logger != nil {
		ts.Logger.Log(level, fmt.Sprintf(format, args...))
	}
}

// timerRegistry is the VM's table of pending callbacks: id -> {fn, args...}.
func timerRegistry(L *glua.LState) *glua.LTable {
	return registryValue(L, "gong.pdk.timers", func() glua.LValue { return L.NewTable() }).(*glua.LTable)
}

// openTimer builds ngx.timer.
func (p *pdk) openTimer(L *glua.LState) *glua.LTable {
	return L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"at":    func(L *glua.LState) int { return p.timerAt(L, false) },
		"every": func(L *glua.LState) int { return p.timerAt(L, true) },
		"running_count": func(L *glua.LState) int {
			_, running := p.timers().counts()
			L.Push(glua.LNumber(running))
			return 1
		},
		"pending_count": func(L *glua.LState) int {
			pending, _ := p.timers().counts()
			L.Push(glua.LNumber(pending))
			return 1
		},
	})
}

func (p *pdk) timers() *Timers {
	if p.opts.Timers == nil {
		p.opts.Timers = NewTimers()
	}
	return p.opts.Timers
}

// timerAt is ngx.timer.at(delay, callback, ...) and, with every,
// ngx.timer.every(interval, callback, ...): it returns 1, or nil and an
// error.
func (p *pdk) timerAt(L *glua.LState, every bool) int {
	if _, err := p.startTimer(L, 2, every); err != "" {
		return pushErr(L, err)
	}
	L.Push(glua.LNumber(1))
	return 1
}

// timerStart is kong.timer's internal at(delay, every, callback, ...):
// the timer's id for cancel, or nil and an error.
func (p *pdk) timerStart(L *glua.LState) int {
	id, err := p.startTimer(L, 3, glua.LVAsBool(L.Get(2)))
	if err != "" {
		return pushErr(L, err)
	}
	L.Push(glua.LNumber(id))
	return 1
}

// startTimer schedules the callback at argument fnAt, with the
// arguments after it, to run after the delay in argument 1, and returns
// its registry id, or an error text.
func (p *pdk) startTimer(L *glua.LState, fnAt int, every bool) (int, string) {
	delay := float64(L.CheckNumber(1))
	fn := L.CheckFunction(fnAt)
	if delay < 0 {
		L.ArgError(1, "invalid delay")
	}
	if every && delay <= 0 {
		L.ArgError(1, "invalid interval")
	}
	vm := p.b.vm
	if vm == nil || vm.Pool() == nil {
		return 0, "no timers in this context"
	}
	entry := L.NewTable()
	entry.Append(fn)
	for i := fnAt + 1; i <= L.GetTop(); i++ {
		entry.RawSetInt(i-fnAt+1, L.Get(i))
	}
	jobs := timerRegistry(L)
	p.timerSeq++
	d := time.Duration(delay * float64(time.Second))
	j := &timerJob{vm: vm, b: p.b, id: p.timerSeq, release: vm.Hold()}
	if every {
		j.every = d
	}
	jobs.RawSetInt(j.id, entry)
	if err := p.timers().schedule(j, d); err != nil {
		jobs.RawSetInt(j.id, glua.LNil)
		j.release()
		return 0, err.Error()
	}
	return j.id, ""
}

// ngxSleep is ngx.sleep(seconds): a blocking wait of this VM only, cut
// short by the phase deadline. stream-lua refuses it in log, and Kong makes
// it a blocking sleep in init_worker, logging a notice.
func (p *pdk) ngxSleep(L *glua.LState) int {
	d := time.Duration(float64(L.CheckNumber(1)) * float64(time.Second))
	if d < 0 {
		L.ArgError(1, "invalid sleep duration")
	}
	s := p.b.State
	if s != nil && !s.timer {
		switch s.Phase {
		case PhaseLog, PhaseBalancer:
			L.RaiseError("API disabled in the context of %s", ngxContext(s.Phase))
		case PhaseInitWorker:
			p.emit(s, LevelNotice, fmt.Sprintf("executing a blocking 'sleep' (%s seconds)", luanum.Format(d.Seconds())))
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctxDone(L):
	}
	return 0
}

// ctxDone is the Done channel of the phase context, nil (never) without
// one.
func ctxDone(L *glua.LState) <-chan struct{} {
	if ctx := L.Context(); ctx != nil {
		return ctx.Done()
	}
	return nil
}
