package lua

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	glua "github.com/yuin/gopher-lua"
)

// A loop that allocates without end is stopped with "not enough memory"
// once the heap passes the guard's limit, and its VM is no longer trusted;
// another VM's calls go on.
func TestMemoryGuardStopsRunawayAllocation(t *testing.T) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	guard := NewMemoryGuard(sample[0].Value.Uint64()+64<<20, 10*time.Millisecond)
	defer guard.Close()
	runaway := newTestVM(t, nil, PoolOptions{MemoryGuard: guard})
	other := newTestVM(t, nil, PoolOptions{MemoryGuard: guard})

	// The deadline is a backstop for a broken guard, far beyond need.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// Small pieces, which CheckAlloc lets through: the sampling stops it.
	_, err := callLua(ctx, runaway, `local t = {} while true do t[#t + 1] = string.rep("x", 1024) .. #t end`)
	var le *Error
	if !errors.As(err, &le) || le.Kind != Memory || le.Msg != "not enough memory" {
		t.Fatalf("runaway allocation: err = %v; want a Memory error \"not enough memory\"", err)
	}
	if !runaway.Broken() {
		t.Error("the stopped VM is still trusted")
	}
	if res := runLua(t, other, "return 1 + 1"); res[0].String() != "2" {
		t.Errorf("other VM: %v", res)
	}
}

// Strings built by the .. operator are not checked one by one, since the
// VM builds them itself; a loop of them is what the sampling stops. The
// loop keeps every 1 MiB string it builds and never ends by itself.
func TestMemoryGuardStopsConcatenationLoop(t *testing.T) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	guard := NewMemoryGuard(sample[0].Value.Uint64()+16<<20, 10*time.Millisecond)
	defer guard.Close()
	vm := newTestVM(t, nil, PoolOptions{MemoryGuard: guard})

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	res, err := callLua(ctx, vm, `local held, s = {}, string.rep("x", 2^20) while true do held[#held + 1] = s .. #held end`)
	var le *Error
	if !errors.As(err, &le) || le.Kind != Memory || le.Msg != "not enough memory" {
		t.Fatalf("concatenation loop: %v, err = %v; want a Memory error \"not enough memory\"", res, err)
	}
	if !vm.Broken() {
		t.Error("the stopped VM is still trusted")
	}
}

// A guard registers a call only while it has a limit: without one it
// costs calls nothing.
func TestMemoryGuardRegistersCallsOnlyWithALimit(t *testing.T) {
	for _, limit := range []uint64{0, 1 << 40} {
		guard := NewMemoryGuard(limit, time.Hour)
		defer guard.Close()
		vm := newTestVM(t, nil, PoolOptions{MemoryGuard: guard})
		vm.L.SetGlobal("registered", vm.L.NewFunction(func(L *glua.LState) int {
			guard.mu.Lock()
			defer guard.mu.Unlock()
			L.Push(glua.LNumber(len(guard.calls)))
			return 1
		}))
		want := "0"
		if limit > 0 {
			want = "1"
		}
		if got := runLua(t, vm, "return registered()")[0].String(); got != want {
			t.Errorf("limit %d: %s calls registered during a call; want %s", limit, got, want)
		}
		guard.mu.Lock()
		if n := len(guard.calls); n != 0 {
			t.Errorf("limit %d: %d calls registered after the call; want 0", limit, n)
		}
		guard.mu.Unlock()
	}
}

// BenchmarkGuardedCall is the cost the guard adds to one call, made as
// a plugin phase makes it: a context without a deadline and the pool's
// CallTimeout.
func BenchmarkGuardedCall(b *testing.B) {
	for _, limit := range []uint64{0, 1 << 40} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			guard := NewMemoryGuard(limit, 10*time.Millisecond)
			defer guard.Close()
			vm, err := NewVM(nil, PoolOptions{MemoryGuard: guard, CallTimeout: 10 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer vm.Close()
			fn, err := vm.L.LoadString("return 1")
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := vm.Call(ctx, fn); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Each Go function that allocates a size Lua chose refuses one past what
// the limit still allows with Lua's "not enough memory", without
// allocating it; the VM stays usable and smaller requests succeed.
func TestCheckAllocRefusesOversizedRequests(t *testing.T) {
	// A sampling interval of an hour leaves the refusals to CheckAlloc.
	runtime.GC()
	guard := NewMemoryGuard(readMetric(heapLive)+64<<20, time.Hour)
	defer guard.Close()
	vm := newTestVM(t, nil, PoolOptions{MemoryGuard: guard})
	runLua(t, vm, `mib = string.rep("x", 2^20); ones = {} for i = 1, 100 do ones[i] = 1 end`)
	refused := []string{
		`string.rep("x", 2^36)`,
		`string.rep("x", 2^31)`,
		`string.rep("x", 2^80)`,
		`("x"):rep(2^40)`,
		`string.rep("ab", 2^26, ",")`,
		`table.concat({mib, mib, mib, mib, mib, mib, mib, mib}, mib:rep(16))`,
		`local t = {} for i = 1, 100 do t[i] = mib end return table.concat(t)`,
		`local t = {} for i = 1, 80 do t[i] = mib end string.format(("%s"):rep(80), unpack(t))`,
		`string.format(("%999999d"):rep(100), unpack(ones))`,
		`local b = require("string.buffer").new() for i = 1, 100 do b:put(mib) end`,
		`local b = require("string.buffer").new() for i = 1, 100 do b:putf("%s", mib) end`,
		`local b = require("string.buffer").new():set(mib) for i = 1, 7 do b:put(b) end`,
		`string.gsub(mib, "x", mib)`,
		`mib:gsub("x", ("%0"):rep(100))`,
	}
	for _, code := range refused {
		res := runLua(t, vm, `return pcall(function() `+code+` end)`)
		if res[0] != glua.LFalse || res[1].String() != "not enough memory" {
			t.Errorf("%s: %v; want false, \"not enough memory\"", code, res)
		}
	}
	// A collection frees what the refused calls left behind.
	runtime.GC()
	allowed := map[string]string{
		`return #string.rep("ab", 2^16, ",")`:                        "196607",
		`return #string.rep("x", 2^20 * 8)`:                          "8388608",
		`return #table.concat({mib, mib}, ",")`:                      "2097153",
		`return #string.format("%s%5d", mib, 1)`:                     "1048581",
		`return string.rep("x", 0) .. string.rep("x", -1)`:           "",
		`return tostring(#string.format("%1000000000d", 1) < 100)`:   "true",
		`return #require("string.buffer").new():put(mib, mib)`:       "2097152",
		`return table.concat({1, 2.5, "x"}, "-")`:                    "1-2.5-x",
		`return string.rep("ab", 3, ",")`:                            "ab,ab,ab",
		`return #string.gsub(mib, "^x", "yy")`:                       "1048577",
		`return (string.gsub("a-b", "%-", "%%"))`:                    "a%b",
		`return select(2, pcall(table.concat, {}, "", -2^62, 2^62))`: "<string>:1: invalid value (at index -4611686018427387904) in table for 'concat'",
	}
	for code, want := range allowed {
		if got := runLua(t, vm, code)[0].String(); got != want {
			t.Errorf("%s = %q; want %q", code, got, want)
		}
	}
}

// A VM without a guard, or with the limit off, still refuses a single
// allocation LuaJIT could not make either.
func TestCheckAllocWithoutLimit(t *testing.T) {
	guard := NewMemoryGuard(0, time.Hour)
	defer guard.Close()
	for _, opts := range []PoolOptions{{}, {MemoryGuard: guard}} {
		vm := newTestVM(t, nil, opts)
		res := runLua(t, vm, `return pcall(string.rep, "x", 2^36)`)
		if res[0] != glua.LFalse || res[1].String() != "not enough memory" {
			t.Errorf("guard %v: string.rep(\"x\", 2^36) = %v; want false, \"not enough memory\"", opts.MemoryGuard != nil, res)
		}
	}
}

// BenchmarkCheckedRep is string.rep below the checked size, and above it
// (one heap metric read per call), with a limit set.
func BenchmarkCheckedRep(b *testing.B) {
	guard := NewMemoryGuard(1<<40, time.Hour)
	defer guard.Close()
	vm, err := NewVM(nil, PoolOptions{MemoryGuard: guard})
	if err != nil {
		b.Fatal(err)
	}
	defer vm.Close()
	for _, n := range []int{1 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("bytes=%d", n), func(b *testing.B) {
			fn, err := vm.L.LoadString(fmt.Sprintf("return string.rep('x', %d)", n))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := vm.Call(b.Context(), fn); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
