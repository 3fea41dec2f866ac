package lua

import (
	glua "github.com/yuin/gopher-lua"

	"strings"
	"testing"
)

// Numbers become text as LuaJIT makes it, in compiled modules, wherever
// Kong plugins turn them into strings.
func TestNumberTextLikeLuaJIT(t *testing.T) {
	tests := []struct{ name, expr, want string }{
		{"concat timestamp", `"t=" .. ts`, "t=1764109661.123"},
		{"concat long fraction", `third .. ""`, "0.33333333333333"},
		{"concat integer", `"n=" .. 42 .. "," .. n`, "n=42,7"},
		{"concat large integer", `"" .. 2^53`, "9.007199254741e+15"},
		{"concat inf", `"" .. 1/0 .. "," .. -1/0`, "inf,-inf"},
		{"concat length and strings", `#"abc" .. "x" .. s .. "y"`, "3xsy"},
		{"concat in nested function", `(function(v) return "v" .. v end)(ts)`, "v1764109661.123"},
		{"concat call result", `"[" .. math.floor(ts) .. "]"`, "[1764109661]"},
		{"concat __concat metamethod", `setmetatable({}, {__concat = function(a, b) return "meta" end}) .. ts`, "meta"},
		{"format %s", `string.format("%s|%5s|%d|%.1f|%%|%s", ts, 1, 2, 0.25, third)`, "1764109661.123|    1|2|0.2|%|0.33333333333333"},
		{"table.concat", `table.concat({ts, 1, "a", third}, ",")`, "1764109661.123,1,a,0.33333333333333"},
		{"table.concat range", `table.concat({1, 2, 3, 4}, "-", 2, 3) .. table.concat({}, ",")`, "2-3"},
	}
	var src strings.Builder
	src.WriteString("local ts, third, n, s = 1764109661.123, 1/3, 7, 's'\nreturn {\n")
	for _, tt := range tests {
		src.WriteString("  function() return " + tt.expr + " end,\n")
	}
	src.WriteString("}\n")
	vm := newTestVM(t, mustBundle(t, map[string]string{"numbers": src.String()}), PoolOptions{})
	mod, err := vm.Require(t.Context(), "numbers")
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := vm.Call(t.Context(), vm.L.GetTable(mod, glua.LNumber(i+1)))
			if err != nil {
				t.Fatalf("%s: %v", tt.expr, err)
			}
			if got := res[0].String(); got != tt.want {
				t.Errorf("%s = %q; want %q", tt.expr, got, tt.want)
			}
		})
	}
}

// A concatenation with nil still fails as before the rewrite, and a table.concat
// with a bad element names its index.
func TestNumberTextErrors(t *testing.T) {
	vm := newTestVM(t, mustBundle(t, map[string]string{
		"bad":   "local x\nreturn function() return 'a' .. x end",
		"badtc": "return function() return table.concat({1, {}}) end",
	}), PoolOptions{})
	for mod, want := range map[string]string{"bad": "cannot perform concat operation between string and nil", "badtc": "invalid value (at index 2) in table for 'concat'"} {
		fn, err := vm.Require(t.Context(), mod)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := vm.Call(t.Context(), fn); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v; want %q", mod, err, want)
		}
	}
}

// BenchmarkConcat measures the `..` rewrite: a compiled module (operands
// checked) beside the same code loaded as a string (not rewritten).
func BenchmarkConcat(b *testing.B) {
	const src = "return function(a, n) local s = '' for i = 1, 10 do s = a .. ':' .. n end return s end"
	vm, err := NewVM(mustBundle(b, map[string]string{"m": src}), PoolOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer vm.Close()
	compiled, err := vm.Require(b.Context(), "m")
	if err != nil {
		b.Fatal(err)
	}
	chunk, err := vm.L.LoadString(src)
	if err != nil {
		b.Fatal(err)
	}
	plain, err := vm.Call(b.Context(), chunk)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		fn   glua.LValue
	}{{"rewritten", compiled}, {"plain", plain[0]}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := vm.Call(b.Context(), c.fn, glua.LString("key"), glua.LNumber(12)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
