package runtime

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/gong-proxy/gong/lua"
	"github.com/gong-proxy/gong/pdk"
	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/limits"
	"github.com/gong-proxy/gong/runtime/telemetry"
)

// ReloadConfFile, in the prefix, names the kong.conf the next reload reads
// instead of the one the server started with; "gong reload -c" writes it.
const ReloadConfFile = ".kong_reload_conf"

// ErrStopped is what Done reports after Stop.
var ErrStopped = errors.New("server stopped")

// Options configure a Server.
type Options struct {
	// Conf is how the configuration is read again on reload.
	Conf conf.Options
	// Config is the configuration to start with, already loaded from Conf.
	Config *conf.Config
	// LogLevel, if set, overrides log_level (the CLI's --v and --vv).
	LogLevel string
	// ErrorLog, if set, receives the error log instead of
	// proxy_stream_error_log.
	ErrorLog io.Writer
	// SyslogSocket, if set, is the unix datagram socket the syslog plugin
	// writes to instead of the system's (/dev/log).
	SyslogSocket string
}

// Server runs gong: it owns the listening sockets, the current generation
// and the connections in flight.
type Server struct {
	opts    Options
	log     *errorLog
	current atomic.Pointer[generation]

	mu         sync.Mutex // guards listeners, accessLogs and stopping
	listeners  map[listenKey]*socket
	accessLogs map[string]*accessLog
	stopping   bool

	// swapMu makes builds one at a time: reloads and POST /config.
	swapMu sync.Mutex
	// posted is the declarative configuration last loaded through POST
	// /config; a reload keeps it when kong.conf names none, as Kong keeps
	// its database-less store.
	posted []byte
	apis   *apiServers // admin_listen and status_listen

	parker   *parker // nil where epoll is unavailable: relays never park
	memory   *lua.MemoryGuard
	checkers *checkerSet
	metrics  *telemetry.Metrics
	nodeID   string         // kong.conf's node_id, else a UUID drawn at start
	tracers  sync.WaitGroup // replaced tracers still flushing
	// shared are the current generation's ngx.shared dictionaries, which
	// the next one takes over (swap is not concurrent).
	shared   *pdk.SharedDicts
	conns    sync.WaitGroup
	connsMu  sync.Mutex
	active   map[io.Closer]struct{} // closed by Stop
	nextID   atomic.Uint64
	done     chan error
	doneOnce sync.Once

	// limits are the limit plugins' counters, which outlive reloads.
	limits *limits.Registry
}

// socket is one open listening socket and its accept loop.
type socket struct {
	key    listenKey
	ln     net.Listener
	pc     net.PacketConn
	closed atomic.Bool
	loop   sync.WaitGroup
}

func (s *socket) close() {
	s.closed.Store(true)
	if s.ln != nil {
		s.ln.Close()
	}
	if s.pc != nil {
		s.pc.Close()
	}
}

// New prepares a server; Start opens its listeners.
func New(opts Options) (*Server, error) {
	s := &Server{
		opts:       opts,
		listeners:  map[listenKey]*socket{},
		accessLogs: map[string]*accessLog{},
		active:     map[io.Closer]struct{}{},
		done:       make(chan error, 1),
	}
	w := opts.ErrorLog
	if w == nil {
		w = os.Stderr
	}
	s.log = newErrorLog(w, s.level(opts.Config))
	s.memory = lua.NewMemoryGuard(uint64(opts.Config.LuaMemoryLimit), 10*time.Millisecond)
	telemetry.SetErrorLog(func(err error) { s.log.logf(LevelWarn, 0, "tracing: %v", err) })
	s.nodeID = opts.Config.NodeID
	if s.nodeID == "" {
		s.nodeID = uuid.NewString()
	}
	s.metrics = telemetry.NewMetrics(telemetry.Sources{NodeID: s.nodeID, Targets: s.targetHealth, VMs: s.vmCounts,
		Connections: s.connections, SharedDicts: s.sharedDictMemory, LuaVMsBytes: goHeapBytes})
	s.limits = limits.NewRegistry(s.nodeID, func(msg string) { s.log.logf(LevelError, 0, "%s", msg) }, s.metrics.LimitRefused)
	s.checkers = newCheckerSet(func(f string, a ...any) { s.log.logf(LevelNotice, 0, f, a...) })
	if p, err := newParker(); err == nil {
		s.parker = p
	} else {
		s.log.logf(LevelWarn, 0, "idle connections will keep their goroutines: %v", err)
	}
	return s, nil
}

func (s *Server) level(c *conf.Config) Level {
	if s.opts.LogLevel != "" {
		return parseLevel(s.opts.LogLevel)
	}
	return parseLevel(c.LogLevel)
}

// Start builds the first generation and opens its listeners.
func (s *Server) Start() error {
	c := s.opts.Config
	if s.opts.ErrorLog == nil {
		if err := s.log.reopen(c.ProxyStreamErrorLog, s.level(c)); err != nil {
			return fmt.Errorf("proxy_stream_error_log: %w", err)
		}
	}
	g, err := s.swap(c, nil)
	if err != nil {
		return err
	}
	if err := s.startAPIs(c); err != nil {
		s.closeListeners()
		return err
	}
	s.log.logf(LevelNotice, 0, "gong started with %d stream listener(s)", len(g.listeners))
	if t := c.Tracing; len(t.Instrumentations) > 0 {
		s.log.logf(LevelNotice, 0, "tracing %s to %s (%s), sampling rate %g", strings.Join(t.Instrumentations, ", "), t.OTLPEndpoint, t.OTLPProtocol, t.SamplingRate)
	}
	return nil
}

// build makes a generation from a kong.conf and the declarative
// configuration posted, or else the one kong.conf names.
func (s *Server) build(c *conf.Config, posted []byte) (*generation, error) {
	ps, err := loadPlugins(c, pluginHost{logger: pluginLog{s.log}, nodeID: s.nodeID, shared: s.shared, proc: s, guard: s.memory, syslogSocket: s.opts.SyslogSocket, limits: s.limits})
	if err != nil {
		return nil, err
	}
	d, hash, err := loadDeclarative(c, ps, posted)
	if err != nil {
		ps.close()
		return nil, fmt.Errorf("declarative config is invalid:\n%w", err)
	}
	ps.metrics = s.metrics
	g, err := buildGeneration(c, d, ps, s.accessLog, s.checkers, func(format string, args ...any) {
		s.log.logf(LevelWarn, 0, format, args...)
	})
	if err != nil {
		ps.close()
		return nil, err
	}
	if g.tracer, err = s.tracerFor(c.Tracing); err != nil {
		g.stopUpstreams()
		ps.close()
		return nil, err
	}
	g.hash = hash
	return g, nil
}

// tracerFor keeps the current tracer when the tracing settings are
// unchanged, and otherwise builds the one they describe.
func (s *Server) tracerFor(c conf.Tracing) (*telemetry.Tracer, error) {
	if cur := s.current.Load(); cur != nil && cur.tracer.Same(c) {
		return cur.tracer, nil
	}
	return telemetry.NewTracer(c)
}

// swap builds a generation from c and posted (see build) and makes it
// current; on failure the current one, with its health checkers, stays as
// it was.
func (s *Server) swap(c *conf.Config, posted []byte) (*generation, error) {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	if posted == nil && c.DeclarativeConfig == "" && c.DeclarativeConfigString == "" {
		posted = s.posted
	}
	s.checkers.begin()
	g, err := s.build(c, posted)
	if err == nil {
		if err = s.apply(g); err != nil {
			g.plugins.close()
			g.stopUpstreams()
			if cur := s.current.Load(); cur == nil || cur.tracer != g.tracer {
				g.tracer.Shutdown()
			}
		}
	}
	if err != nil {
		s.checkers.abort()
		return nil, err
	}
	s.checkers.commit()
	s.memory.SetLimit(uint64(c.LuaMemoryLimit))
	s.posted = posted
	s.shared = g.plugins.shared
	return g, nil
}

// exiting is ngx.worker.exiting: the server is stopping.
func (s *Server) exiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// accessLog returns the writer for path, shared by generations; writers
// live until the server ends, since old connections may still log.
func (s *Server) accessLog(path string) (*accessLog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accessLogs[path]; ok {
		return a, nil
	}
	a, err := newAccessLog(path)
	if err != nil {
		return nil, err
	}
	s.accessLogs[path] = a
	return a, nil
}

// apply opens the listeners g adds, makes g current, and closes the
// listeners g drops. If a listener cannot be opened nothing changes.
func (s *Server) apply(g *generation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return ErrStopped
	}
	var opened []*socket
	for k, l := range g.listeners {
		if _, ok := s.listeners[k]; ok {
			continue
		}
		ln, pc, err := listenSocket(l)
		if err != nil {
			for _, o := range opened {
				o.close()
			}
			return fmt.Errorf("stream_listen %s: %w", l.Listener, err)
		}
		opened = append(opened, &socket{key: k, ln: ln, pc: pc})
	}
	if old := s.current.Swap(g); old != nil {
		if old.tracer != nil && old.tracer != g.tracer {
			s.tracers.Add(1)
			old.tracerDone = s.tracers.Done
			old.dropTracer.Store(true)
		}
		old.retire()
	}
	for _, o := range opened {
		s.listeners[o.key] = o
		o.loop.Add(1)
		if o.ln != nil {
			go s.acceptLoop(o)
		} else {
			go s.udpLoop(o)
		}
	}
	for k, o := range s.listeners {
		if _, keep := g.listeners[k]; !keep {
			o.close()
			delete(s.listeners, k)
		}
	}
	return nil
}

// Reload reads the configuration again and swaps generations. On any
// error the current generation keeps serving; the error is logged and
// returned.
func (s *Server) Reload() error {
	opts := s.opts.Conf
	if c := s.current.Load(); c != nil {
		if data, err := os.ReadFile(filepath.Join(c.conf.Prefix, ReloadConfFile)); err == nil {
			opts.Path = strings.TrimSpace(string(data))
			s.opts.Conf.Path = opts.Path
			os.Remove(filepath.Join(c.conf.Prefix, ReloadConfFile))
		}
	}
	err := s.reload(opts)
	s.metrics.Reloaded(err)
	if err != nil {
		s.log.logf(LevelError, 0, "reload failed, the previous configuration keeps serving: %v", err)
		return err
	}
	s.log.logf(LevelNotice, 0, "reload succeeded")
	return nil
}

func (s *Server) reload(opts conf.Options) error {
	c, warnings, err := conf.Load(opts)
	for _, w := range warnings {
		s.log.logf(LevelWarn, 0, "%v", w)
	}
	if err != nil {
		return err
	}
	if _, err := s.swap(c, nil); err != nil {
		return err
	}
	s.mu.Lock()
	apisChanged := s.apis != nil && s.apis.listen != apiListen(c)
	s.mu.Unlock()
	if apisChanged {
		s.log.logf(LevelNotice, 0, "admin_listen and status_listen changes take effect when gong restarts")
	}
	if s.opts.ErrorLog == nil {
		return s.log.reopen(c.ProxyStreamErrorLog, s.level(c))
	}
	s.log.level.Store(int32(s.level(c)))
	return nil
}

// Quit stops accepting connections and ends the server once those in
// flight have ended, however long that takes; "gong quit" escalates to
// Stop after its timeout.
func (s *Server) Quit() {
	s.closeListeners()
	s.conns.Wait()
	s.finish(nil)
}

// Stop closes the listeners and every connection at once.
func (s *Server) Stop() {
	s.closeListeners()
	// Close outside the lock: closing a session may end it at once, and
	// ending untracks it.
	s.connsMu.Lock()
	sessions := make([]io.Closer, 0, len(s.active))
	for c := range s.active {
		sessions = append(sessions, c)
	}
	s.connsMu.Unlock()
	for _, c := range sessions {
		c.Close()
	}
	s.conns.Wait()
	s.finish(ErrStopped)
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	s.stopping = true
	for k, o := range s.listeners {
		o.close()
		delete(s.listeners, k)
		o.loop.Wait()
	}
	apis := s.apis
	s.apis = nil
	s.mu.Unlock()
	apis.close()
}

func (s *Server) finish(err error) {
	s.doneOnce.Do(func() {
		s.mu.Lock()
		for _, a := range s.accessLogs {
			a.close()
		}
		s.mu.Unlock()
		if s.parker != nil {
			s.parker.close()
		}
		if g := s.current.Load(); g != nil {
			g.retire() // every session has ended: its VMs close now
			if err := g.tracer.Shutdown(); err != nil {
				s.log.logf(LevelWarn, 0, "tracing: spans not exported at exit: %v", err)
			}
		}
		s.tracers.Wait()
		s.checkers.stopAll()
		s.limits.Close()
		s.memory.Close()
		s.done <- err
	})
}

// Done reports the end of the server: nil after Quit, ErrStopped after Stop.
func (s *Server) Done() <-chan error { return s.done }

// Addrs returns the addresses the server listens on, for stream_listen
// entries with port 0.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	for _, o := range s.listeners {
		if o.ln != nil {
			out = append(out, o.ln.Addr())
		} else {
			out = append(out, o.pc.LocalAddr())
		}
	}
	return out
}

// track registers a session so Stop can close it; untrack undoes it.
func (s *Server) track(c io.Closer) {
	s.connsMu.Lock()
	s.active[c] = struct{}{}
	s.connsMu.Unlock()
}

func (s *Server) untrack(c io.Closer) {
	s.connsMu.Lock()
	delete(s.active, c)
	s.connsMu.Unlock()
}

// MetricsHandler serves the server's Prometheus metrics (Kong's stream
// series and gong's own), for mounting at /metrics.
func (s *Server) MetricsHandler() http.Handler { return s.metrics.Handler() }

// targetHealth lists the current configuration's upstream addresses and
// their health, for kong_upstream_target_health.
func (s *Server) targetHealth() []telemetry.TargetHealth {
	g := s.current.Load()
	if g == nil {
		return nil
	}
	var out []telemetry.TargetHealth
	for _, up := range g.upstreams {
		var healthy map[netip.AddrPort]bool
		if up.checker != nil {
			healthy = up.checker.Healthy()
		}
		for _, a := range up.up.Addresses() {
			state := "healthchecks_off"
			if h, checked := healthy[a.Addr]; checked && h {
				state = "healthy"
			} else if checked {
				state = "unhealthy"
			}
			out = append(out, telemetry.TargetHealth{Upstream: up.name, Target: a.Target, Address: a.Addr.String(), State: state})
		}
		for _, t := range up.up.Unresolved() {
			out = append(out, telemetry.TargetHealth{Upstream: up.name, Target: t, State: "dns_error"})
		}
	}
	return out
}

// connections counts the sessions begun so far and those in progress.
func (s *Server) connections() (accepted uint64, active int) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	return s.nextID.Load(), len(s.active)
}

// sharedDictMemory reports the current configuration's ngx.shared
// dictionaries.
func (s *Server) sharedDictMemory() []telemetry.SharedDict {
	g := s.current.Load()
	if g == nil {
		return nil
	}
	var out []telemetry.SharedDict
	for _, name := range g.plugins.shared.Names() {
		d := g.plugins.shared.Get(name)
		out = append(out, telemetry.SharedDict{Name: name, Capacity: d.Capacity(), Allocated: d.Capacity() - d.FreeSpace()})
	}
	return out
}

// goHeapBytes is the memory of the Lua VMs, which share the Go heap: the
// bytes of its objects, live or not yet swept, as Lua's collectgarbage
// ("count") counts its own.
func goHeapBytes() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// vmCounts is the current configuration's Lua VM pool: live and idle VMs.
func (s *Server) vmCounts() (size, idle int) {
	if g := s.current.Load(); g != nil {
		st := g.plugins.pool.Stats()
		return st.Size, st.Idle
	}
	return 0, 0
}

// statistics counts the sessions in progress and those begun so far
// (kong.nginx.get_statistics).
func (s *Server) statistics() pdk.Statistics {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	return pdk.Statistics{Active: int64(len(s.active)), Accepted: int64(s.nextID.Load())}
}
