// Package stream is gong's stream engine: the listeners, and the life of
// each TCP, TLS or UDP session from accept to its log line (PROXY
// protocol, TLS preread and termination, routing, dial with retries, the
// byte relay, access log, metrics and spans). It knows nothing of Lua:
// plugins run through the Hooks a Config carries.
package stream

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/telemetry"
)

// Engine serves the stream listeners of the current Config. It owns the
// listening sockets, which outlive Configs (a reload opens and closes
// only those that changed), and the sessions in flight.
type Engine struct {
	log     *slog.Logger
	metrics *telemetry.Metrics
	parker  *parker // nil where epoll is unavailable: relays never park
	workers *workers
	current atomic.Pointer[Config]
	// loops are the event loops (loop_linux.go), started by the first
	// Config that lets them serve a listener; noLoops is set when they
	// cannot start.
	loops   *loopSet
	noLoops bool

	mu        sync.Mutex // guards listeners and stopping
	listeners map[ListenKey]*socket
	stopping  bool

	conns    sync.WaitGroup
	activeMu sync.Mutex
	active   map[*Session]struct{} // closed by Stop, listed by Sessions
	nextID   atomic.Uint64
	sessions atomic.Int64 // admitted and not yet ended, for worker_connections
	// inherited are sockets opened before the engine (Inherit).
	inherited *Inherited
}

// Inherit makes Swap take listening sockets from in before binding its
// own; call it before the first Swap.
func (e *Engine) Inherit(in *Inherited) { e.inherited = in }

// New prepares an engine; Swap gives it its first Config and listeners.
func New(log *slog.Logger, metrics *telemetry.Metrics) *Engine {
	e := &Engine{log: log, metrics: metrics, workers: newWorkers(), listeners: map[ListenKey]*socket{}, active: map[*Session]struct{}{}}
	if p, err := newParker(); err == nil {
		e.parker = p
	} else {
		log.Warn(fmt.Sprintf("idle connections will keep their goroutines: %v", err))
	}
	return e
}

// socket is one open listening socket and what accepts from it: its
// accept goroutine on ln, or the event loops on lfd (ln nil).
type socket struct {
	key    ListenKey
	ln     net.Listener
	pc     net.PacketConn
	addr   net.Addr
	closed atomic.Bool
	// accepting is set while ln's accept goroutine runs; handing tells
	// it that ln closes for the loops to take over. fromFile marks an ln
	// made from lfd, whose connections need the listener's keepalive set.
	accepting bool
	handing   atomic.Bool
	fromFile  bool
	// lfd is the descriptor the loops accept from (-1: none), a copy of
	// the socket out of Go's poller; lmu keeps it open during an accept.
	// local is the socket's address unless it is a wildcard, the local
	// address of its sessions. id names it in the loops' events.
	lmu   sync.RWMutex
	lfd   int
	loops *loopSet
	local netip.AddrPort
	id    int32
	// draining is set on a UDP socket by Drain: datagrams of its
	// sessions still pass both ways, a new client's are dropped. A new
	// session is counted in the engine's conns under gate, so none
	// begins once Drain has returned and the engine waits for the last.
	gate     sync.Mutex
	draining bool
	loop     sync.WaitGroup
	caps     listenerCaps
}

func (o *socket) close() {
	o.closed.Store(true)
	if o.ln != nil {
		o.ln.Close()
	}
	if o.pc != nil {
		o.pc.Close()
	}
	if o.loops != nil {
		o.loops.closeLoopFD(o)
	}
}

// newSocket is the state of a socket just opened.
func newSocket(l conf.Listener, ln net.Listener, pc net.PacketConn) *socket {
	o := &socket{key: KeyOf(l), ln: ln, pc: pc, lfd: -1}
	o.caps.name = capsName(l)
	if ln != nil {
		o.addr = ln.Addr()
		if ta, ok := o.addr.(*net.TCPAddr); ok && !ta.IP.IsUnspecified() {
			o.local = ta.AddrPort()
		}
	} else {
		o.addr = pc.LocalAddr()
	}
	return o
}

// ErrStopped is Swap's error once the engine is stopping.
var ErrStopped = fmt.Errorf("server stopped")

// Swap opens the listeners cfg adds, makes cfg current, and closes the
// listeners cfg drops; it returns the Config it replaced (nil at first),
// for the caller to retire. If a listener cannot be opened nothing
// changes.
func (e *Engine) Swap(cfg *Config) (*Config, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		return nil, ErrStopped
	}
	var opened []*socket
	for k, l := range cfg.Listeners {
		if _, ok := e.listeners[k]; ok {
			continue
		}
		ln, pc, err := e.inherited.Listen(l)
		if err != nil {
			for _, o := range opened {
				o.close()
			}
			return nil, fmt.Errorf("stream_listen %s: %w", l.Listener, err)
		}
		opened = append(opened, newSocket(l, ln, pc))
	}
	if cfg.loops = cfg.loopListeners(); len(cfg.loops) > 0 && e.loops == nil && !e.noLoops {
		var err error
		if e.loops, err = startLoops(e, cmp.Or(cfg.Conf.Stream.WorkerProcesses, runtime.GOMAXPROCS(0))); err != nil {
			e.noLoops = true
			e.log.Warn(fmt.Sprintf("every session will have goroutines: the event loops cannot start: %v", err))
		}
	}
	if e.loops == nil {
		cfg.loops = nil
	}
	old := e.current.Swap(cfg)
	for _, o := range opened {
		e.listeners[o.key] = o
		if o.pc != nil {
			o.loop.Add(1)
			go e.udpLoop(o)
		}
	}
	for k, o := range e.listeners {
		if _, keep := cfg.Listeners[k]; !keep {
			o.close()
			delete(e.listeners, k)
		} else if o.pc == nil {
			e.place(o, cfg.loops[k])
		}
	}
	return old, nil
}

// place gives a TCP socket's accepting to the event loops (loop) or to
// its goroutine; when the move fails the socket is served as it was.
func (e *Engine) place(o *socket, loop bool) {
	switch {
	case loop && o.ln != nil:
		o.loops = e.loops
		if err := e.loops.toLoops(o); err != nil {
			e.log.Warn(fmt.Sprintf("stream_listen %s: sessions keep their goroutines: %v", o.key.Addr, err))
		}
	case !loop && o.lfd >= 0:
		if err := e.loops.fromLoops(o); err != nil {
			e.log.Warn(fmt.Sprintf("stream_listen %s: the event loops hand each session to a goroutine: %v", o.key.Addr, err))
		}
	}
	if o.ln != nil && !o.accepting {
		o.accepting = true
		o.loop.Add(1)
		go e.acceptLoop(o, o.ln)
	}
}

// acquire takes the current Config for a new session, which must call
// Done when it ends.
func (e *Engine) acquire() *Config {
	for {
		if c := e.current.Load(); c.Hold() {
			return c
		}
	}
}

// CloseListeners stops accepting sessions, for good.
func (e *Engine) CloseListeners() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopping = true
	for k, o := range e.listeners {
		o.close()
		delete(e.listeners, k)
		o.loop.Wait()
	}
}

// Drain stops accepting sessions, for good, as a graceful quit does:
// TCP listeners close, UDP listeners keep their sockets open so that the
// sessions they have go on relaying (their replies leave through the
// listener's socket) but start no new session. Wait closes them once
// every session has ended; CloseListeners at once.
func (e *Engine) Drain() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopping = true
	for k, o := range e.listeners {
		if o.pc != nil {
			o.gate.Lock()
			o.draining = true
			o.gate.Unlock()
			continue
		}
		o.close()
		delete(e.listeners, k)
		o.loop.Wait()
	}
}

// Stopping reports that CloseListeners or Drain was called
// (ngx.worker.exiting).
func (e *Engine) Stopping() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopping
}

// CloseSessions closes every session in flight.
func (e *Engine) CloseSessions() {
	// Close outside the lock: closing a session may end it at once, and
	// ending untracks it.
	for _, s := range e.Sessions() {
		s.Close()
	}
}

// WaitFor waits up to d for every session to end; false when some are
// still in flight then.
func (e *Engine) WaitFor(d time.Duration) bool {
	ended := make(chan struct{})
	go func() {
		e.conns.Wait()
		close(ended)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ended:
		return true
	case <-t.C:
		return false
	}
}

// Wait returns once every session has ended, then closes the listeners
// Drain left open and stops the parker and the event loops.
func (e *Engine) Wait() {
	e.conns.Wait()
	e.CloseListeners()
	if e.parker != nil {
		e.parker.close()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.loops != nil {
		e.loops.stop()
	}
}

// Addrs returns the addresses the listeners are bound to.
func (e *Engine) Addrs() []net.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []net.Addr
	for _, o := range e.listeners {
		out = append(out, o.addr)
	}
	return out
}

// track registers a session so Stop can close it; untrack undoes it.
func (e *Engine) track(s *Session) {
	e.activeMu.Lock()
	e.active[s] = struct{}{}
	e.activeMu.Unlock()
}

func (e *Engine) untrack(s *Session) {
	e.activeMu.Lock()
	delete(e.active, s)
	e.activeMu.Unlock()
}

// Sessions are the sessions in flight.
func (e *Engine) Sessions() []*Session {
	e.activeMu.Lock()
	defer e.activeMu.Unlock()
	out := make([]*Session, 0, len(e.active))
	for s := range e.active {
		out = append(out, s)
	}
	return out
}

// Counts are the sessions begun so far and those in flight.
func (e *Engine) Counts() (accepted uint64, active int) {
	e.activeMu.Lock()
	defer e.activeMu.Unlock()
	return e.nextID.Load(), len(e.active)
}
