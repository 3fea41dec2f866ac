package lua

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"testing"
	"time"
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
	_, err := callLua(ctx, runaway, `local t = {} while true do t[#t + 1] = string.rep("x", 1024 * 1024) .. #t end`)
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

// Without a limit, calls carry their context unchanged.
func TestMemoryGuardOff(t *testing.T) {
	guard := NewMemoryGuard(0, time.Hour)
	defer guard.Close()
	ctx := t.Context()
	if got, leave := guard.enter(ctx); got != ctx {
		t.Error("an unlimited guard wrapped the context")
	} else {
		leave()
	}
}

// BenchmarkGuardedCall is the cost the guard adds to one call.
func BenchmarkGuardedCall(b *testing.B) {
	for _, limit := range []uint64{0, 1 << 40} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			guard := NewMemoryGuard(limit, 10*time.Millisecond)
			defer guard.Close()
			vm, err := NewVM(nil, PoolOptions{MemoryGuard: guard})
			if err != nil {
				b.Fatal(err)
			}
			defer vm.Close()
			fn, err := vm.L.LoadString("return 1")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
			defer cancel()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := vm.Call(ctx, fn); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
