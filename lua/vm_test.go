package lua

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	glua "github.com/yuin/gopher-lua"
)

func TestBundleSharedAcrossVMs(t *testing.T) {
	b := mustBundle(t, map[string]string{
		"m": `loads = (loads or 0) + 1
return { v = 42 }`,
		"uses_m": `return require("m").v + 1`,
	})
	var protos []*glua.FunctionProto
	for i := range 2 {
		vm := newTestVM(t, b, PoolOptions{})
		res := runLua(t, vm, `local a = require("uses_m"); local b = require("m"); require("m"); return a, b.v, loads`)
		if got := [3]string{res[0].String(), res[1].String(), res[2].String()}; got != [3]string{"43", "42", "1"} {
			t.Errorf("vm %d: require results = %v; want [43 42 1]", i, got)
		}
		// The bundle searcher hands out closures over the one shared proto.
		res = runLua(t, vm, `return package.loaders[2]("m")`)
		fn, ok := res[0].(*glua.LFunction)
		if !ok {
			t.Fatalf("vm %d: searcher returned %v; want a function", i, res[0])
		}
		protos = append(protos, fn.Proto)
	}
	if protos[0] != protos[1] {
		t.Errorf("VMs run different protos %p and %p; want the bundle's one", protos[0], protos[1])
	}
}

func TestBundleSyntaxError(t *testing.T) {
	tests := []struct {
		name, module, src string
		want              []string
	}{
		{"missing end", "kong.plugins.x.handler", "local x = 1\n\nfunction f()\n  return 1\n", []string{`"kong.plugins.x.handler"`, "end of file"}},
		{"bad token", "a.b", "local x = 1\nlocal = 2\n", []string{`"a.b"`, "line 2"}},
		{"goto unknown label", "c", "local x\ngoto nowhere\n", []string{`"c"`, "line 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewBundle(map[string]string{"ok": "return 1", tt.module: tt.src})
			var le *Error
			if !errors.As(err, &le) || le.Kind != Syntax {
				t.Fatalf("NewBundle = %v; want a Syntax *Error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewBundle error %q; want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestBundleGoModules(t *testing.T) {
	b := mustBundle(t, map[string]string{"lua_mod": "return 1"}, GoModules(map[string]glua.LGFunction{
		"go_mod": func(L *glua.LState) int {
			L.Push(L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{"twice": func(L *glua.LState) int {
				L.Push(L.CheckNumber(1) * 2)
				return 1
			}}))
			return 1
		},
	}))
	vm := newTestVM(t, b, PoolOptions{})
	if got := runLua(t, vm, `return require("go_mod").twice(21)`)[0].String(); got != "42" {
		t.Errorf("go_mod.twice(21) = %s; want 42", got)
	}
	wantLuaError(t, vm, t.Context(), `require("absent")`, Runtime, "no module 'absent' in the bundle")
	if _, err := NewBundle(map[string]string{"x": "return 1"}, GoModules(map[string]glua.LGFunction{"x": noop})); err == nil {
		t.Error("NewBundle with a Lua and a Go module of one name succeeded; want an error")
	}
}

// TestRunReusesCoroutine: Runs that return share one coroutine, whose
// call stack does not grow however many ran, and each sees its own
// arguments and the coroutine it runs on.
func TestRunReusesCoroutine(t *testing.T) {
	vm := newTestVM(t, mustBundle(t, nil), PoolOptions{CallStackSize: 16})
	fn := runLua(t, vm, `return function(n) return n + 1, coroutine.running() end`)[0]
	var first glua.LValue
	for i := range 100 {
		yielded, res, err := vm.Run(t.Context(), fn, glua.LNumber(i))
		if err != nil || yielded || len(res) != 2 || res[0] != glua.LNumber(i+1) {
			t.Fatalf("Run %d = %v, %v, %v; want false, [%d thread], nil", i, yielded, res, err, i+1)
		}
		if first == nil {
			first = res[1]
		} else if res[1] != first {
			t.Fatalf("Run %d ran on another coroutine", i)
		}
	}
}

func TestCallErrors(t *testing.T) {
	b := mustBundle(t, map[string]string{"plug": "local M = {}\nfunction M.fail()\n  error('kaput')\nend\nreturn M"})
	tests := []struct {
		name    string
		opts    PoolOptions
		timeout time.Duration
		cancel  bool
		code    string
		kind    Kind
		msg     string
		broken  bool
	}{
		{name: "lua error names chunk", code: `require("plug").fail()`, kind: Runtime, msg: "plug:3: kaput"},
		{name: "infinite loop", timeout: 50 * time.Millisecond, code: `while true do end`, kind: Timeout, msg: "deadline exceeded", broken: true},
		{name: "canceled", cancel: true, code: `while true do end`, kind: Canceled, msg: "canceled", broken: true},
		{name: "deep recursion", opts: PoolOptions{CallStackSize: 200}, code: `local function f(n) return 1 + f(n + 1) end return f(1)`, kind: Runtime, msg: "stack overflow", broken: true},
		{name: "deep recursion on a coroutine", opts: PoolOptions{CallStackSize: 200}, code: `local co = coroutine.create(function() local function f(n) return 1 + f(n + 1) end return f(1) end) local ok, err = coroutine.resume(co) error(err, 0)`, kind: Runtime, msg: "callstack overflow"},
		{name: "table growth", timeout: 50 * time.Millisecond, code: `local t = {} local i = 0 while true do i = i + 1 t[i] = {i} end`, kind: Timeout, msg: "deadline", broken: true},
		{name: "string concatenation", timeout: 50 * time.Millisecond, code: `local s = "" while true do s = s .. "xxxxxxxxxx" end`, kind: Timeout, msg: "deadline", broken: true},
		{name: "registry overflow", opts: PoolOptions{RegistrySize: 256, RegistryMaxSize: 4096}, code: `local t = {} for i = 1, 100000 do t[i] = i end return select("#", unpack(t))`, kind: Runtime, msg: "registry overflow", broken: true},
		{name: "go panic", code: `goboom()`, kind: Panic, msg: "boom", broken: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm := newTestVM(t, b, tt.opts)
			vm.L.SetGlobal("goboom", vm.L.NewFunction(func(*glua.LState) int { panic("boom") }))
			ctx := t.Context()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			if tt.cancel {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				cancel()
			}
			le := wantLuaError(t, vm, ctx, tt.code, tt.kind, tt.msg)
			if vm.Broken() != tt.broken {
				t.Errorf("Broken() = %v; want %v", vm.Broken(), tt.broken)
			}
			if tt.kind == Runtime && !tt.broken && !strings.Contains(le.Traceback, "stack traceback:") {
				t.Errorf("Traceback = %q; want a stack traceback", le.Traceback)
			}
			if tt.kind == Timeout && !errors.Is(le, context.DeadlineExceeded) {
				t.Errorf("errors.Is(err, DeadlineExceeded) = false; want true")
			}
			if !tt.broken {
				// The VM is still usable after a plain Lua error.
				if got := runLua(t, vm, "return 1 + 1")[0].String(); got != "2" {
					t.Errorf("after error: 1 + 1 = %s; want 2", got)
				}
			}
		})
	}
}

func TestCallResults(t *testing.T) {
	vm := newTestVM(t, nil, PoolOptions{})
	fn := runLua(t, vm, `return function(a, b) return a + b, a .. b end`)[0]
	res, err := vm.Call(t.Context(), fn, glua.LNumber(1), glua.LNumber(2))
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if len(res) != 2 || res[0].String() != "3" || res[1].String() != "12" {
		t.Errorf("Call(f, 1, 2) = %v; want [3 12]", res)
	}
	if top := vm.L.GetTop(); top != 0 {
		t.Errorf("stack top after Call = %d; want 0", top)
	}
	if vm.L.Context() != nil {
		t.Errorf("context still bound after Call")
	}
}

func TestRun(t *testing.T) {
	b := mustBundle(t, map[string]string{"handler": `
local M = {}
function M.exit_early(ctx)
  ctx.before = true
  exit(403, "denied")
  ctx.after = true
end
function M.finish(a, b)
  return a * b
end
function M.fail()
  local x = nil
  return x.field
end
function M.boom()
  goboom()
end
return M`})
	vm := newTestVM(t, b, PoolOptions{})
	vm.L.SetGlobal("exit", vm.L.NewFunction(func(L *glua.LState) int {
		return L.Yield(L.Get(1), L.Get(2))
	}))
	vm.L.SetGlobal("goboom", vm.L.NewFunction(func(*glua.LState) int { panic("go side broke") }))
	mod, err := vm.Require(t.Context(), "handler")
	if err != nil {
		t.Fatalf("Require: %v", err)
	}
	field := func(name string) glua.LValue { return vm.L.GetField(mod, name) }

	t.Run("yield ends the handler", func(t *testing.T) {
		ctx := vm.L.NewTable()
		yielded, res, err := vm.Run(t.Context(), field("exit_early"), ctx)
		if err != nil || !yielded {
			t.Fatalf("Run = %v, %v; want yielded, nil", yielded, err)
		}
		if len(res) != 2 || res[0].String() != "403" || res[1].String() != "denied" {
			t.Errorf("yielded values = %v; want [403 denied]", res)
		}
		if ctx.RawGetString("before") != glua.LTrue || ctx.RawGetString("after") != glua.LNil {
			t.Errorf("ctx.before, ctx.after = %v, %v; want true, nil", ctx.RawGetString("before"), ctx.RawGetString("after"))
		}
	})
	t.Run("returns", func(t *testing.T) {
		yielded, res, err := vm.Run(t.Context(), field("finish"), glua.LNumber(6), glua.LNumber(7))
		if err != nil || yielded || len(res) != 1 || res[0].String() != "42" {
			t.Errorf("Run(finish, 6, 7) = %v, %v, %v; want false, [42], nil", yielded, res, err)
		}
	})
	t.Run("lua error", func(t *testing.T) {
		_, _, err := vm.Run(t.Context(), field("fail"))
		var le *Error
		if !errors.As(err, &le) || le.Kind != Runtime {
			t.Fatalf("Run(fail) = %v; want a Runtime *Error", err)
		}
		if !strings.Contains(le.Msg, "handler:13:") || !strings.Contains(le.Traceback, "handler:13:") {
			t.Errorf("Msg %q, Traceback %q; want both to name handler:13", le.Msg, le.Traceback)
		}
		if vm.Broken() {
			t.Error("Broken() after a Lua error = true; want false")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		fn := runLua(t, vm, `return function() while true do end end`)[0]
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
		defer cancel()
		_, _, err := vm.Run(ctx, fn)
		var le *Error
		if !errors.As(err, &le) || le.Kind != Timeout {
			t.Fatalf("Run(loop) = %v; want a Timeout *Error", err)
		}
		if vm.L.Context() != nil {
			t.Error("context still bound after Run")
		}
	})
	t.Run("deep recursion", func(t *testing.T) {
		fn := runLua(t, vm, `local function f(n) return 1 + f(n + 1) end return f`)[0]
		_, _, err := vm.Run(t.Context(), fn, glua.LNumber(1))
		var le *Error
		if !errors.As(err, &le) || le.Kind != Runtime || le.Msg != "stack overflow" {
			t.Fatalf("Run(recursion) = %v; want a Runtime \"stack overflow\" *Error", err)
		}
	})
	t.Run("runs after an exit and an error", func(t *testing.T) {
		for _, name := range []string{"exit_early", "fail", "finish"} {
			args := []glua.LValue{vm.L.NewTable()}
			if name == "finish" {
				args = []glua.LValue{glua.LNumber(2), glua.LNumber(3)}
			}
			vm.Run(t.Context(), field(name), args...)
		}
		yielded, res, err := vm.Run(t.Context(), field("finish"), glua.LNumber(4), glua.LNumber(5))
		if err != nil || yielded || len(res) != 1 || res[0].String() != "20" {
			t.Errorf("Run(finish, 4, 5) = %v, %v, %v; want false, [20], nil", yielded, res, err)
		}
	})
	t.Run("traceback has no run loop frame", func(t *testing.T) {
		vm.Run(t.Context(), field("finish"), glua.LNumber(1), glua.LNumber(1)) // the coroutine is a reused one
		_, _, err := vm.Run(t.Context(), field("fail"))
		var le *Error
		if !errors.As(err, &le) || strings.Contains(le.Traceback, "(run)") {
			t.Errorf("Run(fail) = %v; want a traceback without (run) frames:\n%s", err, le.Traceback)
		}
	})
	t.Run("go panic", func(t *testing.T) {
		_, _, err := vm.Run(t.Context(), field("boom"))
		var le *Error
		if !errors.As(err, &le) || le.Kind != Panic || !strings.Contains(le.Msg, "go side broke") {
			t.Fatalf("Run(boom) = %v; want a Panic *Error", err)
		}
		if !vm.Broken() {
			t.Error("Broken() after a Go panic = false; want true")
		}
	})
}

// TestFrameOfARunHandler: the function a Run called is described as a
// coroutine's first function, whatever Run came before, and a function it
// calls as gopher-lua describes it.
func TestFrameOfARunHandler(t *testing.T) {
	vm := newTestVM(t, mustBundle(t, nil), PoolOptions{})
	var got []string
	vm.L.SetGlobal("who", vm.L.NewFunction(func(L *glua.LState) int {
		dbg, ok := Frame(L, 1, "Sn")
		got = append(got, fmt.Sprintf("%v %s %s", ok, dbg.What, dbg.Name))
		return 0
	}))
	fn := runLua(t, vm, `local function inner() who() end return function() who(); inner() end`)[0]
	for range 2 {
		if _, _, err := vm.Run(t.Context(), fn); err != nil {
			t.Fatal(err)
		}
	}
	want := "true main corountine|true Lua inner|true main corountine|true Lua inner"
	if strings.Join(got, "|") != want {
		t.Errorf("frames %q; want %q", strings.Join(got, "|"), want)
	}
}
