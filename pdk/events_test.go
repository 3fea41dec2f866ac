package pdk

import (
	"strings"
	"testing"

	"github.com/gong-proxy/gong/lua"
)

// TestKongTimer: named timers run once, refuse a second name, are
// cancelled, paused and resumed, as lua-resty-timer-ng's.
func TestKongTimer(t *testing.T) {
	timers := NewTimers()
	pool, reports := reportPool(t, nil, Options{Timers: timers}, "")
	defer pool.Close()
	defer timers.Close()
	vm, err := pool.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	BindingOf(vm.L).State = &State{Phase: PhaseLog}
	got := runString(t, vm, `
		local name = assert(kong.timer:named_at("once", 0, function(premature, a) report("once " .. a .. " " .. tostring(premature)) end, "x"))
		local _, dup = kong.timer:named_at("once", 0, function() end)
		assert(kong.timer:named_at("cancelled", 0.05, function() report("cancelled ran") end))
		assert(kong.timer:cancel("cancelled"))
		local _, missing = kong.timer:cancel("cancelled")
		assert(kong.timer:named_every("paused", 0.001, function() report("paused ran") end))
		assert(kong.timer:pause("paused"))
		local anon = assert(kong.timer:at(0.01, function() report("anonymous") end))
		return name .. "|" .. dup .. "|" .. missing .. "|" .. tostring(kong.timer:is_managed("paused")) .. "|" .. tostring(anon:find("counter=") ~= nil)`)
	pool.Put(vm)
	if want := "once|already exists timer|timer not found|true|true"; got != want {
		t.Errorf("kong.timer calls returned %q; want %q", got, want)
	}
	seen := map[string]bool{}
	for len(seen) < 2 {
		r := next(t, reports)
		if r == "cancelled ran" || r == "paused ran" {
			t.Fatalf("%s", r)
		}
		seen[r] = true
	}
	if !seen["once x false"] || !seen["anonymous"] {
		t.Errorf("timers reported %v", seen)
	}
	leaseRunOn(t, pool, vm, PhaseLog, `assert(kong.timer:resume("paused"))`)
	if r := next(t, reports); r != "paused ran" {
		t.Errorf("after resume: %q", r)
	}
	leaseRunOn(t, pool, vm, PhaseLog, `assert(kong.timer:cancel("paused"))`)
}

// leaseRunOn runs code on vm, once its timers have given it back: timer
// names belong to one VM.
func leaseRunOn(t *testing.T, pool *lua.Pool, vm *lua.VM, phase Phase, code string) {
	t.Helper()
	if err := pool.GetVM(t.Context(), vm); err != nil {
		t.Fatal(err)
	}
	defer pool.Put(vm)
	BindingOf(vm.L).State = &State{Phase: phase}
	runString(t, vm, code)
}

// TestWorkerEvents: an event posted on one VM runs the handlers that
// every VM registered, each on its own VM; post_local stays on the
// poster's VM.
func TestWorkerEvents(t *testing.T) {
	timers := NewTimers()
	opts := Options{Timers: timers, Events: NewEvents()}
	pool, reports := reportPool(t, nil, opts, `
		kong.worker_events.register(function(data, event, source, pid)
			report(worker_name .. " " .. source .. "/" .. event .. " " .. data.v .. " " .. tostring(pid == ngx.worker.pid()))
		end, "test", "ping")`)
	defer pool.Close()
	defer timers.Close()
	a, err := pool.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, err := pool.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	a.L.DoString(`worker_name = "a"`)
	b.L.DoString(`worker_name = "b"`)
	BindingOf(a.L).State = &State{Phase: PhaseLog}
	if got := runString(t, a, `return tostring(kong.worker_events.post("test", "ping", {v = 1}))`); got != "true" {
		t.Fatalf("post: %s", got)
	}
	pool.Put(a)
	pool.Put(b)
	got := []string{next(t, reports), next(t, reports)}
	if !(strings.Join(got, ",") == "a test/ping 1 true,b test/ping 1 true" || strings.Join(got, ",") == "b test/ping 1 true,a test/ping 1 true") {
		t.Errorf("post reached %q; want both workers", got)
	}
	leaseRun(t, pool, PhaseLog, `assert(kong.worker_events.post_local("test", "ping", {v = 2}))`)
	if r := next(t, reports); !strings.HasSuffix(r, "test/ping 2 true") {
		t.Errorf("post_local: %q", r)
	}
	select {
	case r := <-reports:
		t.Errorf("post_local reached another worker: %q", r)
	default:
	}
}

// TestPDKAdditions covers kong.cluster.get_id, kong.log.new and
// set_format, kong.cache:get_bulk, kong.vault.update and flush,
// kong.cluster_events and the tracing functions of an untraced session.
func TestPDKAdditions(t *testing.T) {
	t.Setenv("GONG_TEST_SECRET", "rotated")
	alice := map[string]any{"id": "5f3a2c1e-0000-4000-8000-000000000001", "username": "alice"}
	e := newEnv(t, PhaseLog, Options{NodeID: "node-1", LogLevel: LevelDebug, Consumer: func(key string, byUsername bool) map[string]any {
		if byUsername && key == "alice" || !byUsername && key == alice["id"] {
			return alice
		}
		return nil
	}})
	checkLua(t, e.vm, []struct{ code, want string }{
		{`return kong.cluster.get_id()`, "node-1"},
		{`return kong.client.load_consumer("5f3a2c1e-0000-4000-8000-000000000001").username .. kong.client.load_consumer("alice", true).id`, "alice5f3a2c1e-0000-4000-8000-000000000001"},
		{`return tostring(kong.client.load_consumer("bob", true)) .. tostring(pcall(kong.client.load_consumer, "bob"))`, "nilfalse"},
		{`local l = kong.log.new("mine"); l.warn("hello ", 1); return "ok"`, "ok"},
		{`local l = kong.log.new("fmt", "%message <%namespace>"); l.err("x"); l.set_format("%line_src|%message"); l.err("y"); return "ok"`, "ok"},
		{`kong.log.set_format("%message!"); kong.log.notice("z"); kong.log.set_format(nil); return "ok"`, "ok"},
		{`local res = kong.cache:get_bulk({ "k1", nil, function(a) return a end, "v1", "k2", nil, function() return nil, "boom" end, nil, n = 2 })
		  return res.n .. " " .. res[1] .. " " .. tostring(res[2]) .. " " .. res[3] .. " " .. tostring(res[4]) .. " " .. tostring(res[5] ~= nil)`, "2 v1 nil 3 nil true"},
		{`local c = { secret = "old", ["$refs"] = { secret = "{vault://env/gong-test-secret}" }, nested = { x = "a", ["$refs"] = { x = "{vault://env/gong-test-secret}" } } }
		  kong.vault.flush(); kong.vault.update(c); return c.secret .. " " .. c.nested.x`, "rotated rotated"},
		{`return tostring(kong.cluster_events:subscribe("ch", function() end)) .. tostring(kong.cluster_events:broadcast("ch", "d"))`, "truetrue"},
		{`kong.tracing.process_span(function() error("no spans untraced") end); kong.tracing:set_should_sample(false); return select("#", kong.tracing:get_sampling_decision(true))`, "0"},
	})
	want := []string{"[kong] ", "[mine] hello 1", "x <fmt>", "|y", "z!"}
	var lines []string
	for _, l := range e.log.lines {
		lines = append(lines, l.line)
	}
	all := strings.Join(lines, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("log lacks %q:\n%s", w, all)
		}
	}
}
