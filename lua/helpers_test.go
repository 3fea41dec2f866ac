package lua

import (
	"context"
	"errors"
	"strings"
	"testing"

	glua "github.com/yuin/gopher-lua"
)

func newTestVM(t *testing.T, b *Bundle, opts PoolOptions) *VM {
	t.Helper()
	vm, err := NewVM(b, opts)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	t.Cleanup(vm.Close)
	return vm
}

// runLua runs code as a chunk on vm and returns its results.
func runLua(t *testing.T, vm *VM, code string) []glua.LValue {
	t.Helper()
	res, err := callLua(t.Context(), vm, code)
	if err != nil {
		t.Fatalf("run %q: %v", code, err)
	}
	return res
}

func callLua(ctx context.Context, vm *VM, code string) ([]glua.LValue, error) {
	fn, err := vm.L.LoadString(code)
	if err != nil {
		return nil, err
	}
	return vm.Call(ctx, fn)
}

// wantLuaError runs code and checks it fails with kind and a message
// containing substr.
func wantLuaError(t *testing.T, vm *VM, ctx context.Context, code string, kind Kind, substr string) *Error {
	t.Helper()
	_, err := callLua(ctx, vm, code)
	var le *Error
	if !errors.As(err, &le) {
		t.Fatalf("run %q: err = %v; want *Error", code, err)
	}
	if le.Kind != kind || !strings.Contains(le.Msg, substr) {
		t.Fatalf("run %q: err = %v (%v); want kind %v containing %q", code, le.Msg, le.Kind, kind, substr)
	}
	return le
}

func mustBundle(t testing.TB, modules map[string]string, opts ...Option) *Bundle {
	t.Helper()
	b, err := NewBundle(modules, opts...)
	if err != nil {
		t.Fatalf("NewBundle: %v", err)
	}
	return b
}
