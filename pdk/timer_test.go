package pdk

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gong-proxy/gong/lua"
)

// lockedLogger is a Logger for goroutines other than the test's.
type lockedLogger struct {
	mu    sync.Mutex
	lines []string
	added chan struct{}
}

func (l *lockedLogger) Log(_ LogLevel, line string) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	select {
	case l.added <- struct{}{}:
	default:
	}
}

// leaseRun runs code on a leased VM of pool in phase, then returns the VM.
func leaseRun(t *testing.T, pool *lua.Pool, phase Phase, code string) string {
	t.Helper()
	vm, err := pool.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Put(vm)
	BindingOf(vm.L).State = &State{Phase: phase}
	return runString(t, vm, code)
}

func TestTimerRunsOnItsVM(t *testing.T) {
	timers := NewTimers()
	pool, reports := reportPool(t, nil, Options{Timers: timers}, "")
	defer pool.Close()
	defer timers.Close()
	leaseRun(t, pool, PhaseLog, `
		marker = "this vm"
		assert(ngx.timer.at(0, function(premature, a, b)
			report(table.concat({tostring(premature), a, b, marker, ngx.get_phase()}, " "))
		end, "x", 2))`)
	if got := next(t, reports); got != "false x 2 this vm timer" {
		t.Errorf("callback saw %q", got)
	}
}

func TestTimerEveryAndClose(t *testing.T) {
	timers := NewTimers()
	pool, reports := reportPool(t, nil, Options{Timers: timers}, "")
	defer pool.Close()
	leaseRun(t, pool, PhaseLog, `
		local n = 0
		assert(ngx.timer.every(0.001, function(premature)
			n = n + 1
			if n <= 3 then report("tick " .. n) end
		end))
		assert(ngx.timer.at(3600, function(premature) report("late " .. tostring(premature)) end))`)
	for i := 1; i <= 3; i++ {
		if got := next(t, reports); got != fmt.Sprintf("tick %d", i) {
			t.Fatalf("every: %q", got)
		}
	}
	timers.Close()
	// Close ran the hour-long timer at once, prematurely.
	for {
		got := next(t, reports)
		if strings.HasPrefix(got, "late") {
			if got != "late true" {
				t.Errorf("pending timer at close: %q; want premature", got)
			}
			break
		}
	}
	if p, r := timers.counts(); p != 0 || r != 0 {
		t.Errorf("after Close: %d pending, %d running", p, r)
	}
	if got := leaseRun(t, pool, PhaseLog, `local ok, err = ngx.timer.at(0, function() end) return err`); got != "process exiting" {
		t.Errorf("timer after Close: %q", got)
	}
}

func TestTimerLimitsAndErrors(t *testing.T) {
	log := &lockedLogger{added: make(chan struct{}, 1)}
	timers := NewTimers()
	timers.Logger = log
	pool, _ := reportPool(t, nil, Options{Timers: timers}, "")
	defer pool.Close()
	got := leaseRun(t, pool, PhaseLog, fmt.Sprintf(`
		for i = 1, %d do assert(ngx.timer.at(3600, function() end)) end
		local ok, err = ngx.timer.at(3600, function() end)
		return ngx.timer.pending_count() .. " " .. tostring(ok) .. " " .. err`, MaxPendingTimers))
	if want := fmt.Sprintf("%d nil too many pending timers", MaxPendingTimers); got != want {
		t.Errorf("got %q; want %q", got, want)
	}
	timers.Close()

	timers = NewTimers()
	timers.Logger = log
	pool2, _ := reportPool(t, nil, Options{Timers: timers}, "")
	defer pool2.Close()
	defer timers.Close()
	leaseRun(t, pool2, PhaseLog, `assert(ngx.timer.at(0, function() error("boom") end))`)
	for {
		next(t, log.added)
		log.mu.Lock()
		found := strings.Contains(strings.Join(log.lines, "\n"), "lua entry thread aborted: runtime error: ")
		log.mu.Unlock()
		if found {
			break
		}
	}
}

func TestSleep(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	if got := runString(t, e.vm, `local t = ngx.now(); ngx.sleep(0.02); return tostring(ngx.now() - t >= 0.015)`); got != "true" {
		t.Errorf("ngx.sleep(0.02) returned early")
	}
}

// next returns the next value of ch or fails after 10 seconds.
func next[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-t.Context().Done():
	case <-time.After(10 * time.Second):
	}
	t.Fatal("nothing arrived within 10s")
	panic("unreachable")
}

func TestTimerFromSetup(t *testing.T) {
	timers := NewTimers()
	// as an init_worker handler would
	pool, reports := reportPool(t, nil, Options{Timers: timers}, `assert(ngx.timer.at(0, function() report(ngx.get_phase()) end))`)
	defer pool.Close()
	defer timers.Close()
	vm, err := pool.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	pool.Put(vm)
	if got := next(t, reports); got != "timer" {
		t.Errorf("timer started in setup ran in %q", got)
	}
}
