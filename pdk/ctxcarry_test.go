package pdk

import (
	"strings"
	"testing"
)

// carryTo moves from's State to a second VM as the runtime does between
// preread and log, and returns the env of that VM.
func carryTo(t *testing.T, from *env) *env {
	t.Helper()
	if err := from.st.CarryOut(); err != nil {
		t.Fatalf("CarryOut: %v", err)
	}
	if !from.st.CtxEmpty() {
		t.Fatal("CtxEmpty() = false after CarryOut")
	}
	to := newEnv(t, PhaseLog, Options{})
	from.st.Phase = PhaseLog
	to.b.State = from.st
	from.b.State = nil
	from.st.CarryIn(to.vm.L)
	return to
}

// TestCarryKeepsValues: plain values written in preread on one VM read
// the same in log on another, types, nesting, shared references and
// cycles included, and the length operator gives the same border (gopher-lua
// keeps [10] in the array part: #n is 10 before and after).
func TestCarryKeepsValues(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	e.st.Plugin = "greeter"
	runLua(t, e.vm, `
		local nested = {1, 2.5, "three", true, {deep = {deeper = "x"}}, [10] = false}
		kong.ctx.shared.n = nested
		kong.ctx.shared.big = 2^53
		kong.ctx.plugin.started = 1700000000.25
		kong.ctx.plugin.same = nested
		local cyc = {}; cyc.self = cyc
		ngx.ctx.cyc = cyc
		ngx.ctx.count = 7`)
	to := carryTo(t, e)
	to.st.Plugin = "greeter"
	got := runString(t, to.vm, `
		local n = kong.ctx.shared.n
		return table.concat({#n, n[1], n[2], n[3], tostring(n[4]), n[5].deep.deeper, tostring(n[10]),
			string.format("%.0f", kong.ctx.shared.big), kong.ctx.plugin.started,
			tostring(kong.ctx.plugin.same == n), tostring(ngx.ctx.cyc.self == ngx.ctx.cyc),
			ngx.ctx.count}, ",")`)
	if want := "10,1,2.5,three,true,x,false,9007199254740992,1700000000.25,true,true,7"; got != want {
		t.Fatalf("log sees %q; want %q", got, want)
	}
}

// TestCarryRefuses: what cannot leave its VM fails CarryOut with the
// value named and the State untouched; the lossy form drops just that.
func TestCarryRefuses(t *testing.T) {
	for _, tc := range []struct {
		code, want string
		bound      bool // past a bound, the lossy carry drops every later value
	}{
		{"kong.ctx.shared.f = print", "kong.ctx.shared.f is a function", false},
		{"kong.ctx.plugin.co = {c = coroutine.create(print)}", "kong.ctx.plugin (p).co.c is a thread", false},
		{"ngx.ctx.m = setmetatable({}, {})", "ngx.ctx.m is a table with a metatable", false},
		{"local t = {}; for i = 1, 40 do t = {t} end; ngx.ctx.deep = t", "tables nested deeper than 32", false},
		{"local t = {}; for i = 1, 5000 do t[i] = i end; ngx.ctx.many = t", "more than 4096 entries", true},
		{"ngx.ctx.s = string.rep('x', 2^20 + 1)", "more than 1048576 bytes", true},
	} {
		e := newEnv(t, PhasePreread, Options{})
		e.st.Plugin = "p"
		runLua(t, e.vm, "kong.ctx.shared.keep = 'kept'; "+tc.code)
		err := e.st.CarryOut()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CarryOut() = %v; want %q", tc.code, err, tc.want)
			continue
		}
		if got := runString(t, e.vm, "return kong.ctx.shared.keep"); got != "kept" {
			t.Errorf("%s: after a refused CarryOut the VM's ctx reads %q", tc.code, got)
		}
		dropped := e.st.CarryOutLossy()
		if len(dropped) == 0 {
			t.Errorf("%s: CarryOutLossy dropped nothing", tc.code)
		}
		to := newEnv(t, PhaseLog, Options{})
		to.b.State = e.st
		e.st.CarryIn(to.vm.L)
		if got := runString(t, to.vm, "return tostring(kong.ctx.shared.keep)"); got != "kept" && !tc.bound {
			t.Errorf("%s: lossy carry lost the plain value: %q", tc.code, got)
		}
	}
}

// TestCarryLeavesBalancerData: balancer_data is given again in log, not
// carried, so its tries (with a metatable) do not pin the connection.
func TestCarryLeavesBalancerData(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	e.st.SetBalancerData(e.vm.L, BalancerData{Host: "pool"})
	runLua(t, e.vm, "ngx.ctx.mine = ngx.ctx.balancer_data.host")
	e.st.DropBalancerData()
	to := carryTo(t, e)
	e.st.SetBalancerData(to.vm.L, BalancerData{Host: "pool", Tries: []BalancerTry{{IP: "127.0.0.1", Port: 9000}}})
	if got := runString(t, to.vm, "return ngx.ctx.mine .. ngx.ctx.balancer_data.tries[1].port"); got != "pool9000" {
		t.Fatalf("log sees %q; want pool9000", got)
	}
}

// BenchmarkCarry: one session's trip of ctxkeeper-like values (three
// numbers, a string, a nested table) out of its preread VM and into its
// log VM. B/op of "out" is about what an idle session holds for them.
func BenchmarkCarry(b *testing.B) {
	e := newEnv(b, PhasePreread, Options{})
	to := newEnv(b, PhaseLog, Options{})
	e.st.Plugin = "greeter"
	fill, err := e.vm.L.LoadString(`kong.ctx.shared.client = 40000
		kong.ctx.plugin.started = ngx.now()
		kong.ctx.plugin.tags = {port = 40000, list = {1, 2.5, "x", true}}
		ngx.ctx.mine = "40000"`)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("out", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			b.StopTimer()
			e.st.carried = nil
			e.vm.L.Push(fill)
			e.vm.L.Call(0, 0)
			b.StartTimer()
			if err := e.st.CarryOut(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("in", func(b *testing.B) {
		b.ReportAllocs()
		e.vm.L.Push(fill)
		e.vm.L.Call(0, 0)
		if err := e.st.CarryOut(); err != nil {
			b.Fatal(err)
		}
		saved := e.st.carried
		b.ResetTimer()
		for range b.N {
			e.st.carried = saved
			e.st.CarryIn(to.vm.L)
		}
	})
}
