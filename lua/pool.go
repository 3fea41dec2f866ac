package lua

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"time"
)

// PoolOptions sizes a Pool and its VMs. A zero field takes its default.
type PoolOptions struct {
	// MinVMs idle VMs survive shrinking. Default 0: an unused pool holds
	// no VM once IdleTimeout has passed.
	MinVMs int
	// MaxVMs caps live VMs (idle + leased); Get waits beyond it.
	// Default 128.
	MaxVMs int
	// CallStackSize bounds Lua call depth; deeper recursion raises
	// "stack overflow". Default 1024 (frames are allocated in small
	// segments, so an unused depth costs nothing).
	CallStackSize int
	// RegistrySize is the initial value-stack size in slots. Default 1024.
	RegistrySize int
	// RegistryMaxSize is the value-stack ceiling; beyond it Lua raises
	// "registry overflow" and the VM is discarded. Default 262144
	// (4 MiB of slots).
	RegistryMaxSize int
	// IdleTimeout: an idle VM beyond MinVMs is closed after this long.
	// Default 1 minute.
	IdleTimeout time.Duration
	// MemoryGuard, if set, stops calls that make the heap outgrow its
	// limit; nil leaves allocation bounded only by the call's deadline.
	MemoryGuard *MemoryGuard
	// CallTimeout bounds each Run and Call whose context has no deadline
	// of its own: past it, Lua raises "context deadline exceeded" (a
	// Timeout error) at its next instruction. 0: only the caller's
	// context bounds a call. It costs no timer per call, which a
	// context.WithTimeout around each would.
	CallTimeout time.Duration
}

func (o PoolOptions) withDefaults() PoolOptions {
	if o.MinVMs < 0 {
		o.MinVMs = 0
	}
	if o.MaxVMs <= 0 {
		o.MaxVMs = 128
	}
	if o.MinVMs > o.MaxVMs {
		o.MinVMs = o.MaxVMs
	}
	if o.CallStackSize <= 0 {
		o.CallStackSize = 1024
	}
	if o.RegistrySize <= 0 {
		o.RegistrySize = 1024
	}
	if o.RegistryMaxSize <= 0 {
		o.RegistryMaxSize = 256 * 1024
	}
	if o.RegistryMaxSize < o.RegistrySize {
		o.RegistryMaxSize = o.RegistrySize
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = time.Minute
	}
	return o
}

// ErrPoolClosed is returned by Get once Close has been called.
var ErrPoolClosed = errors.New("lua vm pool closed")

// Pool leases VMs of one bundle. It belongs to a config generation, never
// to a package variable.
type Pool struct {
	b     *Bundle
	opts  PoolOptions
	setup func(*VM) error

	// slots holds one token per VM that may be leased or created; a Get
	// that finds it empty waits there.
	slots   chan struct{}
	closing chan struct{}
	// creating holds a token per VM being created: creation is CPU-bound,
	// and a burst of new sessions creating VMs on every core at once
	// would starve the sessions already running.
	creating chan struct{}
	leases   sync.WaitGroup
	stop     chan struct{}
	janitor  sync.WaitGroup

	mu     sync.Mutex
	idle   []*VM // most recently used last
	size   int   // live VMs
	inUse  int
	closed bool
	// returned is closed and replaced when a VM comes back or goes away
	// while GetVM calls (waiters) wait for a particular VM.
	returned chan struct{}
	waiters  int
	// workers marks the worker ids (0 to MaxVMs-1) of live VMs; a new VM
	// takes the lowest free one, so a replaced VM's id is reused.
	workers []bool
	// started keeps worker 0 alive for the pool's life (Start).
	started bool
	// need0 wakes the goroutine Start runs to create worker 0 again.
	need0 chan struct{}
}

// Stats is a snapshot for metrics.
type Stats struct {
	Size  int // live VMs
	Idle  int
	InUse int
}

// NewPool returns a pool that creates VMs on demand, running setup on each
// new VM (the pdk installs kong.* there). VMs idle beyond MinVMs are
// closed after IdleTimeout.
func NewPool(b *Bundle, opts PoolOptions, setup func(*VM) error) *Pool {
	opts = opts.withDefaults()
	p := &Pool{
		b:        b,
		opts:     opts,
		setup:    setup,
		slots:    make(chan struct{}, opts.MaxVMs),
		closing:  make(chan struct{}),
		creating: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		stop:     make(chan struct{}),
		returned: make(chan struct{}),
		workers:  make([]bool, opts.MaxVMs),
		need0:    make(chan struct{}, 1),
	}
	for range opts.MaxVMs {
		p.slots <- struct{}{}
	}
	p.janitor.Add(1)
	go p.shrinkLoop()
	return p
}

// Get leases a VM: an idle one, a new one while under MaxVMs, or the next
// one returned, whichever comes first; it gives up when ctx is done.
func (p *Pool) Get(ctx context.Context) (*VM, error) {
	select {
	case <-p.closing:
		return nil, ErrPoolClosed
	default:
	}
	select {
	case <-p.slots:
	case <-p.closing:
		return nil, ErrPoolClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.slots <- struct{}{}
		return nil, ErrPoolClosed
	}
	p.leases.Add(1)
	p.inUse++
	if vm := p.unsyncedTakeIdle(); vm != nil {
		p.mu.Unlock()
		return vm, nil
	}
	p.size++
	p.mu.Unlock()

	vm, err := p.createVM(ctx)
	if err != nil {
		p.mu.Lock()
		p.size--
		p.inUse--
		p.mu.Unlock()
		p.slots <- struct{}{}
		p.leases.Done()
		return nil, err
	}
	return vm, nil
}

// TryGet leases an idle VM without waiting: nil when none is idle, the
// pool is at MaxVMs or closing. Callers then Get, with the context a
// wait needs; TryGet spares them making one when a VM is at hand.
func (p *Pool) TryGet() *VM {
	select {
	case <-p.slots:
	default:
		return nil
	}
	p.mu.Lock()
	if p.closed || len(p.idle) == 0 {
		p.mu.Unlock()
		p.slots <- struct{}{}
		return nil
	}
	p.leases.Add(1)
	p.inUse++
	vm := p.unsyncedTakeIdle()
	p.mu.Unlock()
	return vm
}

// unsyncedTakeIdle takes the most recently returned idle VM, nil when
// none is idle; the caller holds p.mu and a slot.
func (p *Pool) unsyncedTakeIdle() *VM {
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	vm := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	vm.leased = true
	return vm
}

// ErrVMGone is returned by GetVM for a VM that was discarded or closed.
var ErrVMGone = errors.New("lua vm no longer exists")

// GetVM leases vm itself, waiting until whoever holds it puts it back:
// timers run on the VM that created them, whose Lua values they use. It
// gives up when ctx is done, the pool closes or vm is discarded.
func (p *Pool) GetVM(ctx context.Context, vm *VM) error {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return ErrPoolClosed
		}
		if vm.pool != p || vm.gone {
			p.mu.Unlock()
			return ErrVMGone
		}
		wait := p.returned
		if i := slices.Index(p.idle, vm); i >= 0 {
			select {
			case <-p.slots:
				p.idle = slices.Delete(p.idle, i, i+1)
				vm.leased = true
				p.inUse++
				p.leases.Add(1)
				p.mu.Unlock()
				return nil
			default:
				// A Get holds the last slot and is about to take an idle
				// VM, maybe this one: wait for the next return.
			}
		}
		p.waiters++
		p.mu.Unlock()
		var err error
		select {
		case <-wait:
		case <-p.closing:
			err = ErrPoolClosed
		case <-ctx.Done():
			err = ctx.Err()
		}
		p.mu.Lock()
		p.waiters--
		p.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// unsyncedWake wakes the GetVM calls waiting for a VM; p.mu is held.
func (p *Pool) unsyncedWake() {
	if p.waiters > 0 {
		close(p.returned)
		p.returned = make(chan struct{})
	}
}

// createVM creates a VM for Get once fewer than half the cores are
// creating one.
func (p *Pool) createVM(ctx context.Context) (*VM, error) {
	select {
	case p.creating <- struct{}{}:
	case <-p.closing:
		return nil, ErrPoolClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-p.creating }()
	return p.newVM()
}

func (p *Pool) newVM() (*VM, error) {
	vm, err := NewVM(p.b, p.opts)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	vm.worker = slices.Index(p.workers, false)
	p.workers[vm.worker] = true
	p.mu.Unlock()
	// The VM belongs to the pool during setup already: init_worker
	// handlers may start timers on it.
	vm.pool = p
	vm.leased = true
	if p.setup != nil {
		if err := p.setup(vm); err != nil {
			p.mu.Lock()
			vm.gone = true
			p.unsyncedFreeWorker(vm)
			p.unsyncedWake()
			p.mu.Unlock()
			vm.Close()
			return nil, err
		}
	}
	return vm, nil
}

// Put resets vm and makes it available again: the stack is emptied, the
// context removed and the reset hooks run. A broken VM, or one whose hook
// fails, is discarded instead.
func (p *Pool) Put(vm *VM) {
	p.checkLease(vm)
	vm.L.SetTop(0)
	vm.L.RemoveContext()
	for _, reset := range vm.resets {
		if vm.broken {
			break
		}
		if err := reset(vm); err != nil {
			vm.broken = true
		}
	}
	if vm.broken {
		p.Discard(vm)
		return
	}
	vm.leased = false
	vm.idleFrom = time.Now()
	p.mu.Lock()
	p.inUse--
	if p.closed {
		p.size--
		vm.gone = true
		p.unsyncedFreeWorker(vm)
		p.mu.Unlock()
		vm.Close()
	} else {
		p.idle = append(p.idle, vm)
		p.unsyncedWake()
		p.mu.Unlock()
	}
	p.slots <- struct{}{}
	p.leases.Done()
}

// Discard closes a leased VM whose state can't be trusted (timeout, Go
// panic, registry overflow) and frees its slot.
func (p *Pool) Discard(vm *VM) {
	p.checkLease(vm)
	vm.leased = false
	vm.Close()
	p.mu.Lock()
	vm.broken, vm.gone = true, true
	p.inUse--
	p.size--
	p.unsyncedFreeWorker(vm)
	p.unsyncedWake()
	p.mu.Unlock()
	p.slots <- struct{}{}
	p.leases.Done()
}

// checkLease panics on a VM that is not leased from p: returning it would
// let two goroutines share one state.
func (p *Pool) checkLease(vm *VM) {
	if vm.pool != p || !vm.leased {
		panic("lua: VM returned to a pool it is not leased from")
	}
}

// unsyncedFreeWorker gives vm's worker id back; p.mu is held. When worker
// 0 of a started pool goes, the Start goroutine makes a new one.
func (p *Pool) unsyncedFreeWorker(vm *VM) {
	p.workers[vm.worker] = false
	if vm.worker == 0 && p.started && !p.closed {
		select {
		case p.need0 <- struct{}{}:
		default:
		}
	}
}

// Workers is ngx.worker.count: the most VMs the pool runs at once.
func (p *Pool) Workers() int { return p.opts.MaxVMs }

// Start makes the pool a generation's set of workers: worker 0 is created
// before Start returns (so its init_worker handlers have run before the
// generation's first connection, as nginx's worker 0 does) and again, in
// the background, whenever it is discarded. It is never shrunk away, so
// its singletons ("if ngx.worker.id() == 0") run once per process.
// Calling Start again does nothing.
func (p *Pool) Start() {
	p.mu.Lock()
	if p.started || p.closed {
		p.mu.Unlock()
		return
	}
	p.started = true
	missing := !p.workers[0]
	p.janitor.Add(1)
	p.mu.Unlock()
	if missing {
		p.addWorker0()
	}
	go p.keepWorker0()
}

// keepWorker0 creates worker 0 each time need0 says it is missing.
func (p *Pool) keepWorker0() {
	defer p.janitor.Done()
	for {
		select {
		case <-p.stop:
			return
		case <-p.need0:
		}
		p.addWorker0()
	}
}

// addWorker0 creates a VM and leaves it idle: worker 0, unless a Get took
// id 0 first, when it is just one more idle VM. It gives up when the pool
// stops.
func (p *Pool) addWorker0() {
	select {
	case <-p.stop:
		return
	case <-p.slots:
	}
	p.mu.Lock()
	p.size++
	p.mu.Unlock()
	vm, err := p.newVM()
	p.mu.Lock()
	if err != nil {
		// Not again at once: the next Get makes the next worker 0.
		p.size--
		select {
		case <-p.need0:
		default:
		}
	} else {
		vm.leased = false
		vm.idleFrom = time.Now()
		p.idle = append(p.idle, vm)
		p.unsyncedWake()
	}
	p.mu.Unlock()
	p.slots <- struct{}{}
}

// Stats returns the current counts.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Size: p.size, Idle: len(p.idle), InUse: p.inUse}
}

// Close refuses new leases, waits until every leased VM is back (Put or
// Discard), then closes all VMs.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.leases.Wait()
		return
	}
	p.closed = true
	close(p.closing)
	close(p.stop)
	p.mu.Unlock()
	p.janitor.Wait()
	p.leases.Wait()
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.size -= len(idle)
	for _, vm := range idle {
		vm.gone = true
		p.unsyncedFreeWorker(vm)
	}
	p.mu.Unlock()
	for _, vm := range idle {
		vm.Close()
	}
}

func (p *Pool) shrinkLoop() {
	defer p.janitor.Done()
	t := time.NewTicker(p.opts.IdleTimeout / 2)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.shrink(now)
		}
	}
}

// shrink closes VMs idle since before now-IdleTimeout, oldest first,
// keeping MinVMs idle ones.
func (p *Pool) shrink(now time.Time) {
	cutoff := now.Add(-p.opts.IdleTimeout)
	p.mu.Lock()
	var old []*VM
	// idle is ordered by return time, oldest first. VMs held for their
	// timers stay, and so does worker 0 of a started pool.
	keep := p.idle[:0]
	for _, vm := range p.idle {
		if len(p.idle)-len(old) > p.opts.MinVMs && vm.idleFrom.Before(cutoff) && vm.holds.Load() == 0 &&
			!(p.started && vm.worker == 0) {
			vm.gone = true
			p.unsyncedFreeWorker(vm)
			old = append(old, vm)
			continue
		}
		keep = append(keep, vm)
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	p.size -= len(old)
	p.mu.Unlock()
	for _, vm := range old {
		vm.Close()
	}
}
