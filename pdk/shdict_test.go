package pdk

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable time for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func sharedEnv(t *testing.T, size int64) (*env, *clock) {
	t.Helper()
	clk := &clock{t: time.Unix(1700000000, 0)}
	e := newEnv(t, PhasePreread, Options{Shared: NewSharedDicts(map[string]int64{"d": size, "stream_kong": 1 << 20}, clk.now)})
	return e, clk
}

func TestSharedDictLua(t *testing.T) {
	e, clk := sharedEnv(t, 1<<20)
	steps := []struct {
		code string
		want string
	}{
		{"return tostring(ngx.shared.nope)", "nil"},
		{"return tostring(ngx.shared.kong == ngx.shared.stream_kong)", "true"},
		{"local d = ngx.shared.d; return table.concat({tostring(d:set('a', 1)), tostring(d:get('a'))}, ',')", "true,1"},
		{"local v, f = ngx.shared.d:get('missing'); return tostring(v) .. ',' .. tostring(f)", "nil,nil"},
		{"ngx.shared.d:set('f', 'x', 0, 7); local v, f = ngx.shared.d:get('f'); return v .. f", "x7"},
		{"local ok, err, forcible = ngx.shared.d:add('a', 2); return tostring(ok) .. ',' .. err .. ',' .. tostring(forcible)", "false,exists,false"},
		{"local ok, err = ngx.shared.d:replace('zz', 2); return tostring(ok) .. ',' .. err", "false,not found"},
		{"return ngx.shared.d:replace('a', true) and tostring(ngx.shared.d:get('a'))", "true"},
		{"local v, err = ngx.shared.d:incr('n', 1); return tostring(v) .. ',' .. err", "nil,not found"},
		{"return ngx.shared.d:incr('n', 5, 10) .. ',' .. ngx.shared.d:incr('n', -1)", "15,14"},
		{"local v, err = ngx.shared.d:incr('f', 1); return tostring(v) .. ',' .. err", "nil,not a number"},
		{"local ok, err = ngx.shared.d:set('t', {}); return tostring(ok) .. ',' .. err", "nil,bad value type"},
		{"local v, err = ngx.shared.d:get(nil); return tostring(v) .. ',' .. err", "nil,nil key"},
		{"local v, err = ngx.shared.d:get(''); return tostring(v) .. ',' .. err", "nil,empty key"},
		{"ngx.shared.d:set(12, 'num'); return ngx.shared.d:get('12')", "num"},
		{"ngx.shared.d:set('e', 'v', 10); return ngx.shared.d:ttl('e')", "10"},
		{"return ngx.shared.d:ttl('a')", "0"},
		{"local v, err = ngx.shared.d:ttl('zz'); return tostring(v) .. ',' .. err", "nil,not found"},
		{"ngx.shared.d:delete('12'); return tostring(ngx.shared.d:get('12'))", "nil"},
		{"return ngx.shared.d:capacity()", "1048576"},
		{"return tostring(ngx.shared.d:free_space() < ngx.shared.d:capacity())", "true"},
		{"local ok, err = ngx.shared.d:safe_add('a', 1); return tostring(ok) .. ',' .. err", "false,exists"},
		{"return tostring(ngx.shared.d:expire('a', 5)) .. ngx.shared.d:ttl('a')", "true5"},
	}
	checkLua(t, e.vm, steps)
	wantLuaError(t, e.vm, "ngx.shared.d.get('a')", `bad "zone" argument`)
	wantLuaError(t, e.vm, "ngx.shared.d:set('a', 1, -1)", `bad "exptime" argument`)

	clk.add(11 * time.Second)
	expired := []struct{ code, want string }{
		{"return tostring(ngx.shared.d:get('e'))", "nil"},
		{"local v, f, stale = ngx.shared.d:get_stale('e'); return v .. tostring(f) .. tostring(stale)", "vniltrue"},
		{"local ok = ngx.shared.d:add('e', 'new'); return tostring(ok) .. ngx.shared.d:get('e')", "truenew"},
		{"return ngx.shared.d:get_keys(0)[1] ~= nil and #ngx.shared.d:get_keys(2)", "2"},
		{"ngx.shared.d:flush_all(); return #ngx.shared.d:get_keys(0)", "0"},
		{"return ngx.shared.d:flush_expired()", "4"},
		{"return ngx.shared.d:free_space()", "1048576"},
	}
	checkLua(t, e.vm, expired)
}

// TestSharedDictEviction fills a small dictionary: set evicts the least
// recently used keys (forcible), safe_set refuses, a read keeps a key.
func TestSharedDictEviction(t *testing.T) {
	d := newSharedDict("d", 10*itemSize("k00", "0123456789"), time.Now)
	for i := 0; i < 10; i++ {
		if forcible, err := d.Store(ModeSet, fmt.Sprintf("k%02d", i), "0123456789", 0, 0, false); err != nil || forcible {
			t.Fatalf("set k%02d: forcible %v, %v", i, forcible, err)
		}
	}
	if _, _, ok := d.Get("k00"); !ok {
		t.Fatal("k00 missing before the dictionary is full")
	}
	if _, err := d.Store(ModeSet, "k10", "0123456789", 0, 0, true); err != ErrNoMemory {
		t.Fatalf("safe_set on a full dictionary: %v; want no memory", err)
	}
	forcible, err := d.Store(ModeSet, "k10", "0123456789", 0, 0, false)
	if err != nil || !forcible {
		t.Fatalf("set on a full dictionary: forcible %v, %v; want true", forcible, err)
	}
	if _, _, ok := d.Get("k01"); ok {
		t.Error("k01, the least recently used, survived the eviction")
	}
	if _, _, ok := d.Get("k00"); !ok {
		t.Error("k00, read just before, was evicted")
	}
	if _, err := d.Store(ModeSet, "huge", string(make([]byte, 11*itemSize("k00", "0123456789"))), 0, 0, false); err != ErrNoMemory {
		t.Errorf("a value larger than the dictionary: %v; want no memory", err)
	}
}

func TestSharedDictsCarry(t *testing.T) {
	prev := NewSharedDicts(map[string]int64{"keep": 1 << 20, "resize": 1 << 20}, nil)
	prev.Get("keep").Store(ModeSet, "k", "v", 0, 0, false)
	prev.Get("resize").Store(ModeSet, "k", "v", 0, 0, false)
	next := prev.Carry(map[string]int64{"keep": 1 << 20, "resize": 2 << 20, "new": 1 << 20})
	if v, _, _ := next.Get("keep").Get("k"); v != "v" {
		t.Errorf("a zone of unchanged size lost its value: %v", v)
	}
	if _, _, ok := next.Get("resize").Get("k"); ok {
		t.Error("a resized zone kept its values; nginx starts it empty")
	}
	if next.Get("new") == nil || next.Get("gone") != nil {
		t.Error("zones not as configured")
	}
}

// BenchmarkSharedDictGetSet is one dict:set and one dict:get from Lua,
// as a plugin makes them.
func BenchmarkSharedDictGetSet(b *testing.B) {
	vm := newVM(b, nil)
	Open(vm.L, &Binding{}, Options{Shared: NewSharedDicts(map[string]int64{"d": 1 << 20}, nil)})
	fn, err := vm.L.Load(strings.NewReader("local d = ngx.shared.d; d:set('hits', 1); return d:get('hits')"), "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := vm.Call(context.Background(), fn); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSharedDictFullFromLua(t *testing.T) {
	e, clk := sharedEnv(t, 2*itemSize("a", "xxxxxxxx"))
	steps := []struct{ code, want string }{
		{"ngx.shared.d:set('a', 'xxxxxxxx'); return tostring(select(3, ngx.shared.d:set('b', 'xxxxxxxx')))", "false"},
		{"local ok, err, forcible = ngx.shared.d:safe_set('c', 'xxxxxxxx'); return tostring(ok) .. err .. tostring(forcible)", "falseno memoryfalse"},
		{"local ok, err, forcible = ngx.shared.d:set('c', 'xxxxxxxx'); return tostring(ok) .. tostring(err) .. tostring(forcible) .. tostring(ngx.shared.d:get('a'))", "trueniltruenil"},
		{"return ngx.shared.d:incr('n', 1, 0, 5) .. ngx.shared.d:ttl('n')", "15"},
	}
	checkLua(t, e.vm, steps)
	clk.add(6 * time.Second)
	if got := runString(t, e.vm, "return tostring(ngx.shared.d:get('n'))"); got != "nil" {
		t.Errorf("incr's init_ttl did not expire the key: %s", got)
	}
}
