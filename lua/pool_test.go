package lua

import (
	"context"
	"errors"
	"testing"
	"time"

	glua "github.com/yuin/gopher-lua"
)

func TestPoolGrowsThenWaits(t *testing.T) {
	p := NewPool(mustBundle(t, nil), PoolOptions{MaxVMs: 2}, nil)
	defer p.Close()
	a, err := p.Get(t.Context())
	if err != nil {
		t.Fatalf("Get 1: %v", err)
	}
	b, err := p.Get(t.Context())
	if err != nil {
		t.Fatalf("Get 2: %v", err)
	}
	if a == b {
		t.Fatal("two leases share one VM")
	}
	if s := p.Stats(); s != (Stats{Size: 2, Idle: 0, InUse: 2}) {
		t.Errorf("Stats = %+v; want {2 0 2}", s)
	}

	// Full: Get gives up when its context ends.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.Get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get on a full pool = %v; want DeadlineExceeded", err)
	}

	// Full: a waiting Get receives the next VM returned.
	got := make(chan *VM)
	go func() {
		vm, err := p.Get(context.Background())
		if err != nil {
			t.Errorf("waiting Get: %v", err)
		}
		got <- vm
	}()
	p.Put(a)
	if vm := <-got; vm != a {
		t.Errorf("waiting Get returned %p; want the returned VM %p", vm, a)
	} else {
		p.Put(vm)
	}
	p.Put(b)
	if s := p.Stats(); s != (Stats{Size: 2, Idle: 2, InUse: 0}) {
		t.Errorf("Stats = %+v; want {2 2 0}", s)
	}
}

// TestPoolTryGet: TryGet lends the VM returned last, and nil rather than
// make or wait for one.
func TestPoolTryGet(t *testing.T) {
	p := NewPool(mustBundle(t, nil), PoolOptions{MaxVMs: 1}, nil)
	defer p.Close()
	if vm := p.TryGet(); vm != nil {
		t.Fatal("TryGet on an empty pool made a VM")
	}
	a, err := p.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if vm := p.TryGet(); vm != nil {
		t.Fatal("TryGet on a full pool returned a VM")
	}
	p.Put(a)
	if vm := p.TryGet(); vm != a {
		t.Fatalf("TryGet = %p; want the idle VM %p", vm, a)
	}
	if s := p.Stats(); s != (Stats{Size: 1, Idle: 0, InUse: 1}) {
		t.Errorf("Stats = %+v; want {1 0 1}", s)
	}
	p.Put(a)
	p.Close()
	if vm := p.TryGet(); vm != nil {
		t.Error("TryGet on a closed pool returned a VM")
	}
}

func TestPoolPutResets(t *testing.T) {
	p := NewPool(mustBundle(t, nil), PoolOptions{MaxVMs: 1}, func(vm *VM) error {
		// A per-connection table, as the pdk keeps kong.ctx.shared.
		shared := vm.L.NewTable()
		vm.L.SetGlobal("shared", shared)
		vm.OnReset(func(vm *VM) error {
			_, err := vm.Call(context.Background(), vm.L.GetField(vm.L.GetGlobal("table"), "clear"), shared)
			return err
		})
		return nil
	})
	defer p.Close()
	vm, err := p.Get(t.Context())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	runLua(t, vm, `shared.user = "alice"`)
	vm.L.Push(glua.LString("leftover"))
	p.Put(vm)

	again, err := p.Get(t.Context())
	if err != nil {
		t.Fatalf("Get again: %v", err)
	}
	defer p.Put(again)
	if again != vm {
		t.Fatal("second lease got a different VM; want the same one")
	}
	if top := again.L.GetTop(); top != 0 {
		t.Errorf("stack top on second lease = %d; want 0", top)
	}
	if got := runLua(t, again, `return shared.user, next(shared)`); got[0] != glua.LNil || got[1] != glua.LNil {
		t.Errorf("shared on second lease = %v; want empty", got)
	}
}

func TestPoolDiscardAfterTimeout(t *testing.T) {
	p := NewPool(mustBundle(t, nil), PoolOptions{MaxVMs: 1}, nil)
	defer p.Close()
	vm, err := p.Get(t.Context())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	wantLuaError(t, vm, ctx, `while true do end`, Timeout, "deadline")
	// Put sees the broken VM and discards it rather than pooling it.
	p.Put(vm)
	if s := p.Stats(); s != (Stats{}) {
		t.Errorf("Stats after Put of a timed-out VM = %+v; want all zero", s)
	}
	fresh, err := p.Get(t.Context())
	if err != nil {
		t.Fatalf("Get after discard: %v", err)
	}
	if fresh == vm {
		t.Error("Get returned the discarded VM")
	}
	p.Discard(fresh)
	if s := p.Stats(); s != (Stats{}) {
		t.Errorf("Stats after Discard = %+v; want all zero", s)
	}
}

func TestPoolCloseWaitsForLeases(t *testing.T) {
	p := NewPool(mustBundle(t, nil), PoolOptions{MaxVMs: 1}, nil)
	vm, err := p.Get(t.Context())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	// The pool is full, so this Get waits until Close refuses it.
	if _, err := p.Get(t.Context()); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("Get on a closing pool = %v; want ErrPoolClosed", err)
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a VM was leased")
	default:
	}
	runLua(t, vm, "return 1") // the lease is still usable
	p.Put(vm)
	<-closed
	if s := p.Stats(); s != (Stats{}) {
		t.Errorf("Stats after Close = %+v; want all zero", s)
	}
}

func TestPoolShrink(t *testing.T) {
	p := NewPool(mustBundle(t, nil), PoolOptions{MinVMs: 1, MaxVMs: 3, IdleTimeout: time.Hour}, nil)
	defer p.Close()
	var vms []*VM
	for range 3 {
		vm, err := p.Get(t.Context())
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		vms = append(vms, vm)
	}
	for _, vm := range vms {
		p.Put(vm)
	}
	p.shrink(time.Now())
	if s := p.Stats(); s.Idle != 3 {
		t.Errorf("idle after shrink before the timeout = %d; want 3", s.Idle)
	}
	p.shrink(time.Now().Add(2 * time.Hour))
	if s := p.Stats(); s != (Stats{Size: 1, Idle: 1}) {
		t.Errorf("Stats after shrink = %+v; want {1 1 0}", s)
	}
}

func TestPoolSetupError(t *testing.T) {
	p := NewPool(mustBundle(t, nil), PoolOptions{MaxVMs: 1}, func(*VM) error { return errors.New("no pdk") })
	defer p.Close()
	if _, err := p.Get(t.Context()); err == nil || err.Error() != "no pdk" {
		t.Fatalf("Get = %v; want the setup error", err)
	}
	if s := p.Stats(); s != (Stats{}) {
		t.Errorf("Stats after failed setup = %+v; want all zero", s)
	}
}

func BenchmarkGetCallPut(b *testing.B) {
	benchLease(b, func(ctx context.Context, vm *VM, fn glua.LValue) error {
		_, err := vm.Call(ctx, fn, glua.LNumber(1))
		return err
	})
}

func BenchmarkGetRunPut(b *testing.B) {
	benchLease(b, func(ctx context.Context, vm *VM, fn glua.LValue) error {
		_, _, err := vm.Run(ctx, fn, glua.LNumber(1))
		return err
	})
}

// benchLease measures a lease of a one-VM pool around call, which runs
// fn, a function of one number returning it plus one.
func benchLease(b *testing.B, call func(ctx context.Context, vm *VM, fn glua.LValue) error) {
	bundle := mustBundle(b, map[string]string{"h": "return function(x) return x + 1 end"})
	p := NewPool(bundle, PoolOptions{MaxVMs: 1}, nil)
	defer p.Close()
	vm, err := p.Get(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	fn, err := vm.Require(context.Background(), "h")
	if err != nil {
		b.Fatal(err)
	}
	p.Put(vm)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		vm, err := p.Get(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := call(ctx, vm, fn); err != nil {
			b.Fatal(err)
		}
		p.Put(vm)
	}
}

func TestPoolGetVM(t *testing.T) {
	p := NewPool(mustBundle(t, nil), PoolOptions{MaxVMs: 2}, nil)
	defer p.Close()
	a, err := p.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// GetVM waits for the holder to put the VM back, then leases it.
	got := make(chan error)
	go func() { got <- p.GetVM(context.Background(), a) }()
	b, err := p.Get(t.Context())
	if err != nil || b == a {
		t.Fatalf("Get beside a waiting GetVM = %v, %v; want another VM", b, err)
	}
	p.Put(b)
	p.Put(a)
	if err := <-got; err != nil {
		t.Fatalf("GetVM = %v", err)
	}
	if s := p.Stats(); s.InUse != 1 {
		t.Errorf("Stats = %+v; want the VM leased again", s)
	}
	p.Discard(a)
	if err := p.GetVM(t.Context(), a); !errors.Is(err, ErrVMGone) {
		t.Errorf("GetVM of a discarded VM = %v; want ErrVMGone", err)
	}
}

func TestPoolShrinkKeepsHeldVMs(t *testing.T) {
	p := NewPool(mustBundle(t, nil), PoolOptions{IdleTimeout: time.Hour}, nil)
	defer p.Close()
	a, _ := p.Get(t.Context())
	b, _ := p.Get(t.Context())
	release := a.Hold()
	p.Put(a)
	p.Put(b)
	p.shrink(time.Now().Add(2 * time.Hour))
	if s := p.Stats(); s.Size != 1 || s.Idle != 1 {
		t.Fatalf("Stats after shrink = %+v; want the held VM only", s)
	}
	if err := p.GetVM(t.Context(), a); err != nil {
		t.Fatalf("GetVM of the held VM = %v", err)
	}
	release()
	p.Put(a)
	p.shrink(time.Now().Add(2 * time.Hour))
	if s := p.Stats(); s.Size != 0 {
		t.Errorf("Stats after release and shrink = %+v; want none", s)
	}
}

// TestPoolWorkerIDs: each live VM has its own worker id, from 0; the id
// of a discarded VM goes to the next VM made.
func TestPoolWorkerIDs(t *testing.T) {
	p := NewPool(mustBundle(t, nil), PoolOptions{MaxVMs: 3}, nil)
	defer p.Close()
	if p.Workers() != 3 {
		t.Errorf("Workers = %d; want MaxVMs, 3", p.Workers())
	}
	seen := map[int]*VM{}
	for range 3 {
		vm, err := p.Get(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		seen[vm.WorkerID()] = vm
	}
	for id := range 3 {
		if seen[id] == nil {
			t.Fatalf("worker ids %v; want 0, 1 and 2", seen)
		}
	}
	p.Discard(seen[1])
	vm, err := p.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if vm.WorkerID() != 1 {
		t.Errorf("the VM replacing worker 1 is worker %d", vm.WorkerID())
	}
	p.Put(vm)
	p.Put(seen[0])
	p.Put(seen[2])
}

// TestPoolStartKeepsWorker0: a started pool makes worker 0 at once, never
// shrinks it away, and makes it again when it is discarded.
func TestPoolStartKeepsWorker0(t *testing.T) {
	made := make(chan int, 4)
	p := NewPool(mustBundle(t, nil), PoolOptions{MaxVMs: 2, IdleTimeout: time.Hour}, func(vm *VM) error {
		made <- vm.WorkerID()
		return nil
	})
	defer p.Close()
	p.Start()
	p.Start()
	if id := <-made; id != 0 {
		t.Fatalf("Start made worker %d; want 0", id)
	}
	waitStats(t, p, Stats{Size: 1, Idle: 1})
	p.shrink(time.Now().Add(2 * time.Hour))
	if s := p.Stats(); s != (Stats{Size: 1, Idle: 1}) {
		t.Fatalf("Stats after shrink = %+v; worker 0 must stay", s)
	}
	vm, err := p.Get(t.Context())
	if err != nil || vm.WorkerID() != 0 {
		t.Fatalf("Get = worker %v, %v; want the idle worker 0", vm, err)
	}
	p.Discard(vm)
	if id := <-made; id != 0 {
		t.Fatalf("after a discard, Start's loop made worker %d; want 0", id)
	}
	waitStats(t, p, Stats{Size: 1, Idle: 1})
	select {
	case id := <-made:
		t.Errorf("an extra worker %d was made", id)
	default:
	}
}

// waitStats polls p until its Stats are want, for up to 5 seconds.
func waitStats(t *testing.T, p *Pool, want Stats) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats() != want {
		if time.Now().After(deadline) {
			t.Fatalf("Stats = %+v; want %+v", p.Stats(), want)
		}
		time.Sleep(time.Millisecond)
	}
}
