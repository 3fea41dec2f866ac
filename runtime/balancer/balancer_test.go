package balancer

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/OneOfOne/xxhash"
)

func addrs(weights ...int) []Address {
	out := make([]Address, len(weights))
	for i, w := range weights {
		ap := netip.MustParseAddrPort(fmt.Sprintf("10.0.0.%d:80", i+1))
		out[i] = Address{Addr: ap, Weight: w, Target: ap.String()}
	}
	return out
}

func mustNew(t *testing.T, as []Address, opts Options) Balancer {
	t.Helper()
	b, err := New(as, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundRobinWeights(t *testing.T) {
	b := mustNew(t, addrs(100, 50, 0), Options{})
	rr := b.(*roundRobin)
	if len(rr.wheel) != 3 {
		t.Fatalf("wheel of %d slots; want 3 (weights 100 and 50 reduced by their gcd, weight 0 absent)", len(rr.wheel))
	}
	counts := map[netip.AddrPort]int{}
	for range 300 {
		p, err := b.Pick(&Handle{})
		if err != nil {
			t.Fatal(err)
		}
		counts[p.Addr]++
	}
	a, c := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80")
	if counts[a] != 200 || counts[c] != 100 {
		t.Errorf("300 picks gave %v; want exactly 200 and 100 (full wheel revolutions)", counts)
	}
}

func TestRoundRobinSkipsUnavailable(t *testing.T) {
	b := mustNew(t, addrs(10, 10), Options{})
	down := netip.MustParseAddrPort("10.0.0.1:80")
	b.SetAvailable(down, false)
	for range 10 {
		if p, err := b.Pick(&Handle{}); err != nil || p.Addr == down {
			t.Fatalf("Pick = %v, %v; want the available address", p, err)
		}
	}
	b.SetAvailable(netip.MustParseAddrPort("10.0.0.2:80"), false)
	if _, err := b.Pick(&Handle{}); !errors.Is(err, ErrUnhealthy) {
		t.Errorf("all down: %v; want %v", err, ErrUnhealthy)
	}
}

func TestThreshold(t *testing.T) {
	b := mustNew(t, addrs(50, 50), Options{Threshold: 50})
	if _, err := b.Pick(&Handle{}); err != nil {
		t.Fatalf("all up: %v", err)
	}
	b.SetAvailable(netip.MustParseAddrPort("10.0.0.1:80"), false)
	if _, err := b.Pick(&Handle{}); !errors.Is(err, ErrUnhealthy) {
		t.Errorf("50%% available with threshold 50: %v; want %v", err, ErrUnhealthy)
	}
	if _, err := mustNew(t, addrs(0), Options{}).Pick(&Handle{}); !errors.Is(err, ErrUnhealthy) {
		t.Errorf("no weight at all: %v; want %v", err, ErrUnhealthy)
	}
}

// TestKongSlotIsSigned checks the detail that maps clients like Kong: the
// xxHash32 digest is a signed 32-bit integer and the modulo floors.
func TestKongSlotIsSigned(t *testing.T) {
	const slots = 10000
	// Find a key whose digest has the top bit set and whose slot differs
	// between signed and unsigned arithmetic.
	for i := 0; ; i++ {
		key := fmt.Sprint("client-", i)
		h := xxhash.ChecksumString32(key)
		signed := (int64(h) - 1<<32) % slots // Lua floors the modulo of a negative
		if signed < 0 {
			signed += slots
		}
		if h < 1<<31 || int64(h)%slots == signed {
			continue
		}
		if got := kongSlot(key, slots); int64(got) != signed {
			t.Errorf("kongSlot(%q) = %d; want %d (digest %#x read as a signed integer)", key, got, signed, h)
		}
		return
	}
}

func TestConsistentHashing(t *testing.T) {
	as := addrs(100, 100, 100, 100)
	b := mustNew(t, as, Options{Algorithm: "consistent-hashing", Slots: 10000})
	const keys = 2000
	first := map[string]netip.AddrPort{}
	for i := range keys {
		k := fmt.Sprintf("192.168.%d.%d", i/256, i%256)
		p, err := b.Pick(&Handle{HashValue: k})
		if err != nil {
			t.Fatal(err)
		}
		again, _ := b.Pick(&Handle{HashValue: k})
		if again != p {
			t.Fatalf("key %s mapped to %v then %v", k, p.Addr, again.Addr)
		}
		first[k] = p.Addr
	}
	// Adding a fifth target moves about 1/5 of the keys, all to it.
	more := append(as, Address{Addr: netip.MustParseAddrPort("10.0.0.5:80"), Weight: 100, Target: "10.0.0.5:80"})
	b2 := mustNew(t, more, Options{Algorithm: "consistent-hashing", Slots: 10000})
	moved := 0
	for k, was := range first {
		p, _ := b2.Pick(&Handle{HashValue: k})
		if p.Addr != was {
			moved++
			if p.Addr.String() != "10.0.0.5:80" {
				t.Errorf("key %s moved from %v to %v, not to the new target", k, was, p.Addr)
			}
		}
	}
	if share := float64(moved) / keys; math.Abs(share-0.2) > 0.08 {
		t.Errorf("%.2f of keys moved; want about 0.20", share)
	}
	// A retry with the same handle reaches the same address unless it is
	// down; then the walk goes on to another.
	h := &Handle{HashValue: "10.1.1.1"}
	p1, _ := b.Pick(h)
	b.SetAvailable(p1.Addr, false)
	p2, err := b.Pick(h)
	if err != nil || p2.Addr == p1.Addr {
		t.Errorf("retry after the address went down: %v, %v", p2, err)
	}
}

func TestLeastConnectionsPrefersIdle(t *testing.T) {
	b := mustNew(t, addrs(100, 100), Options{Algorithm: "least-connections"})
	var held []*Handle
	counts := map[netip.AddrPort]int{}
	for range 4 {
		h := &Handle{}
		p, err := b.Pick(h)
		if err != nil {
			t.Fatal(err)
		}
		counts[p.Addr]++
		held = append(held, h)
	}
	for a, n := range counts {
		if n != 2 {
			t.Errorf("%v got %d of 4 long-lived connections; want 2 each", a, n)
		}
	}
	// Ending both connections of one address makes it the idle one.
	idle := held[0].current.Addr
	for _, h := range held {
		if h.current.Addr == idle {
			b.Release(h, 0)
		}
	}
	for range 2 {
		if p, _ := b.Pick(&Handle{}); p.Addr != idle {
			t.Errorf("Pick = %v; want the idle address %v", p.Addr, idle)
		}
	}
}

func TestRetryExcludesTried(t *testing.T) {
	for _, alg := range []string{"least-connections", "latency"} {
		b := mustNew(t, addrs(100, 100, 100), Options{Algorithm: alg})
		h := &Handle{}
		seen := map[netip.AddrPort]bool{}
		for range 3 {
			p, err := b.Pick(h)
			if err != nil {
				t.Fatal(err)
			}
			if seen[p.Addr] {
				t.Errorf("%s: retry picked %v again before trying every address", alg, p.Addr)
			}
			seen[p.Addr] = true
		}
		if _, err := b.Pick(h); err != nil {
			t.Errorf("%s: after every address failed the list resets: %v", alg, err)
		}
	}
}

func TestLatencyPrefersFaster(t *testing.T) {
	b := mustNew(t, addrs(100, 100), Options{Algorithm: "latency"})
	slow, fast := &Handle{}, &Handle{}
	ps, _ := b.Pick(slow)
	b.Release(slow, 50*time.Millisecond)
	pf, _ := b.Pick(fast)
	if pf.Addr == ps.Addr {
		t.Fatalf("second pick %v; want the unmeasured address", pf.Addr)
	}
	b.Release(fast, time.Millisecond)
	for range 3 {
		if p, _ := b.Pick(&Handle{}); p.Addr != pf.Addr {
			t.Errorf("Pick = %v; want the faster %v", p.Addr, pf.Addr)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, alg := range []string{"round-robin", "consistent-hashing", "least-connections", "latency"} {
		for _, n := range []int{2, 100, 1000} {
			as := make([]Address, n)
			for i := range as {
				ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 80)
				as[i] = Address{Addr: ap, Weight: 100, Target: ap.String()}
			}
			bal, _ := New(as, Options{Algorithm: alg, Slots: 10000})
			b.Run(fmt.Sprintf("%s/%d", alg, n), func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					h := &Handle{HashValue: "10.9.8.7"}
					bal.Pick(h)
					bal.Release(h, time.Millisecond)
				}
			})
		}
	}
}
