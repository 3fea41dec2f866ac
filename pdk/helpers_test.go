package pdk

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gong-proxy/gong/lua"
	glua "github.com/yuin/gopher-lua"
)

type fakeSession struct {
	vars      map[string]string
	protocol  string
	record    *LogRecord
	exits     []fakeExit
	route     map[string]any
	service   map[string]any
	upstreams []string
	status    int
}

type fakeExit struct {
	status int
	body   []byte
}

func (f *fakeSession) Var(name string) (string, bool)             { v, ok := f.vars[name]; return v, ok }
func (f *fakeSession) Protocol() string                           { return f.protocol }
func (f *fakeSession) Serialize() *LogRecord                      { return f.record }
func (f *fakeSession) Entities() (map[string]any, map[string]any) { return f.route, f.service }
func (f *fakeSession) Status() int                                { return f.status }
func (f *fakeSession) UpstreamExists(name string) bool {
	for _, u := range f.upstreams {
		if u == name {
			return true
		}
	}
	return false
}
func (f *fakeSession) Exit(status int, body []byte) {
	f.exits = append(f.exits, fakeExit{status, body})
}

type logLine struct {
	level LogLevel
	line  string
}

type fakeLogger struct{ lines []logLine }

func (f *fakeLogger) Log(level LogLevel, line string) {
	f.lines = append(f.lines, logLine{level, line})
}

type env struct {
	vm   *lua.VM
	b    *Binding
	sess *fakeSession
	log  *fakeLogger
	st   *State
}

// newBundle is a bundle of the PDK's Go modules and the Lua modules mods.
func newBundle(t testing.TB, mods map[string]string) *lua.Bundle {
	t.Helper()
	bundle, err := lua.NewBundle(mods, lua.GoModules(Modules()))
	if err != nil {
		t.Fatalf("NewBundle: %v", err)
	}
	return bundle
}

// newVM opens a VM on newBundle(mods), closed when the test ends; the PDK
// is not open on it yet.
func newVM(t testing.TB, mods map[string]string) *lua.VM {
	t.Helper()
	vm, err := lua.NewVM(newBundle(t, mods), lua.PoolOptions{})
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	t.Cleanup(vm.Close)
	return vm
}

// newEnv opens the PDK on a fresh VM with a State in phase bound.
func newEnv(t testing.TB, phase Phase, opts Options) *env {
	t.Helper()
	return openEnv(newVM(t, nil), phase, opts)
}

// newLibEnv is newEnv with the embedded Lua library loaded as well.
func newLibEnv(t testing.TB, phase Phase, opts Options) *env {
	t.Helper()
	mods, err := lua.LibModules()
	if err != nil {
		t.Fatal(err)
	}
	return openEnv(newVM(t, mods), phase, opts)
}

// openEnv opens the PDK on vm with fakes for what opts leaves out and a
// State in phase bound.
func openEnv(vm *lua.VM, phase Phase, opts Options) *env {
	e := &env{vm: vm, b: &Binding{}, sess: &fakeSession{vars: map[string]string{}}, log: &fakeLogger{}}
	if opts.Logger == nil {
		opts.Logger = e.log
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	Open(vm.L, e.b, opts)
	e.st = &State{Phase: phase, Session: e.sess, Plugin: "my-plugin"}
	e.b.State = e.st
	return e
}

// reportPool is a VM pool with the PDK, the Lua modules mods, and a
// global report(s) that sends s to the returned channel; each new VM then
// runs init (Lua, may be empty), as an init_worker handler would.
func reportPool(t *testing.T, mods map[string]string, opts Options, init string) (*lua.Pool, <-chan string) {
	t.Helper()
	reports := make(chan string, 16)
	pool := lua.NewPool(newBundle(t, mods), lua.PoolOptions{}, func(vm *lua.VM) error {
		if err := Setup(opts)(vm); err != nil {
			return err
		}
		vm.L.SetGlobal("report", vm.L.NewFunction(func(L *glua.LState) int {
			reports <- L.CheckString(1)
			return 0
		}))
		return vm.L.DoString(init)
	})
	return pool, reports
}

func callLua(t *testing.T, vm *lua.VM, code string) ([]glua.LValue, error) {
	t.Helper()
	fn, err := vm.L.Load(strings.NewReader(code), "handler")
	if err != nil {
		t.Fatalf("load %q: %v", code, err)
	}
	return vm.Call(t.Context(), fn)
}

// runLua runs code and returns its results.
func runLua(t *testing.T, vm *lua.VM, code string) []glua.LValue {
	t.Helper()
	res, err := callLua(t, vm, code)
	if err != nil {
		t.Fatalf("run %q: %v", code, err)
	}
	return res
}

// runString runs code returning one value and renders it with tostring.
func runString(t *testing.T, vm *lua.VM, code string) string {
	t.Helper()
	res := runLua(t, vm, code)
	if len(res) == 0 {
		return ""
	}
	return tostringValue(vm.L, res[0])
}

// checkLua runs each case's code, which returns one value, and compares
// it, rendered with tostring, with the case's want.
func checkLua(t *testing.T, vm *lua.VM, cases []struct{ code, want string }) {
	t.Helper()
	for _, c := range cases {
		if got := runString(t, vm, c.code); got != c.want {
			t.Errorf("%s = %q; want %q", c.code, got, c.want)
		}
	}
}

// wantLuaError runs code and checks it raises a message containing substr.
func wantLuaError(t *testing.T, vm *lua.VM, code, substr string) {
	t.Helper()
	_, err := callLua(t, vm, code)
	var le *lua.Error
	if !errors.As(err, &le) || !strings.Contains(le.Msg, substr) {
		t.Fatalf("run %q: err = %v; want one containing %q", code, err, substr)
	}
}
