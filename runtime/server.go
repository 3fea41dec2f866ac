package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/gong-proxy/gong/lua"
	"github.com/gong-proxy/gong/pdk"
	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/errlog"
	"github.com/gong-proxy/gong/runtime/limits"
	"github.com/gong-proxy/gong/runtime/runloop"
	"github.com/gong-proxy/gong/runtime/store/postgres"
	"github.com/gong-proxy/gong/runtime/stream"
	"github.com/gong-proxy/gong/runtime/telemetry"
)

// ReloadConfFile, in the prefix, names the kong.conf the next reload reads
// instead of the one the server started with; "gong reload -c" writes it.
const ReloadConfFile = ".kong_reload_conf"

// ErrStopped is what Done reports after Stop.
var ErrStopped = stream.ErrStopped

// DefaultShutdownTimeout bounds a graceful quit when kong.conf leaves
// nginx_main_worker_shutdown_timeout unset (kong.conf.default sets it to
// the same 30s).
const DefaultShutdownTimeout = 30 * time.Second

// QuitError is what Done reports after a Quit that could not end cleanly:
// sessions were still open at the deadline and were closed, or log-queue
// entries were lost while it drained.
type QuitError struct {
	Timeout time.Duration // the deadline, nginx_main_worker_shutdown_timeout
	Cut     int           // sessions closed at the deadline
	Lost    uint64        // log-queue entries lost from the start of the quit
}

func (e *QuitError) Error() string {
	var parts []string
	if e.Cut > 0 {
		parts = append(parts, fmt.Sprintf("%d session(s) still open after %s were closed", e.Cut, e.Timeout))
	}
	if e.Lost > 0 {
		parts = append(parts, fmt.Sprintf("%d log queue entries were lost", e.Lost))
	}
	return "graceful quit incomplete: " + strings.Join(parts, "; ")
}

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
	// Sockets, if set, are listening sockets opened before the server
	// (socket activation, tests binding port 0): a stream_listen,
	// admin_listen or status_listen entry with a socket's address uses it.
	Sockets *stream.Inherited
}

var _ runloop.Process = (*Server)(nil)

// Server runs gong: it builds generations and swaps them into the stream
// engine, and hosts the Admin and Status APIs.
type Server struct {
	opts    Options
	errlog  *errlog.Log // the error log's destination and level
	log     *slog.Logger
	engine  *stream.Engine
	current atomic.Pointer[generation]
	// adminErrlog and statusErrlog are admin_error_log and
	// status_error_log, where the Admin and Status APIs' errors go
	// through adminLog and statusLog.
	adminErrlog, statusErrlog *errlog.Log
	adminLog, statusLog       *slog.Logger

	mu         sync.Mutex // guards accessLogs and apis
	accessLogs map[string]*stream.AccessLog

	// swapMu makes builds one at a time: reloads and POST /config.
	swapMu sync.Mutex
	// posted is the declarative configuration last loaded through POST
	// /config; a reload keeps it when kong.conf names none, as Kong keeps
	// its database-less store.
	posted []byte
	apis   *apiServers      // admin_listen and status_listen
	db     *postgres.Source // database = postgres: where entities come from
	// reloads coalesces the rebuilds database changes ask for.
	reloads reloadGate
	// cachedHash is the hash of the configuration last written to the
	// configuration cache (ConfigCacheFile).
	cachedHash string

	memory   *lua.MemoryGuard
	checkers *stream.CheckerSet
	metrics  *telemetry.Metrics
	nodeID   string         // kong.conf's node_id, else a UUID drawn at start
	tracers  sync.WaitGroup // replaced tracers still flushing
	// shared are the current generation's ngx.shared dictionaries, which
	// the next one takes over (swap is not concurrent).
	shared   *pdk.SharedDicts
	done     chan error
	doneOnce sync.Once
	// queueLost counts the log-queue entries lost since start, for the
	// outcome of a quit.
	queueLost atomic.Uint64

	// stopRotator ends the vault rotator (rotateSecrets), which closes
	// rotatorDone; both nil until Start has built the first generation.
	stopRotator, rotatorDone chan struct{}

	// limits are the limit plugins' counters and shaper paces
	// bandwidth-limit's sessions; both outlive reloads.
	limits *limits.Registry
	shaper *limits.Shaper
}

// New prepares a server; Start opens its listeners.
func New(opts Options) (*Server, error) {
	s := &Server{
		opts:       opts,
		accessLogs: map[string]*stream.AccessLog{},
		done:       make(chan error, 1),
	}
	w := opts.ErrorLog
	if w == nil {
		w = os.Stderr
	}
	s.errlog, s.log = errlog.New(w, s.level(opts.Config))
	s.adminErrlog, s.adminLog = errlog.New(w, s.level(opts.Config))
	s.statusErrlog, s.statusLog = errlog.New(w, s.level(opts.Config))
	s.memory = lua.NewMemoryGuard(uint64(opts.Config.LuaMemoryLimit), 10*time.Millisecond)
	telemetry.SetErrorLog(func(err error) { s.log.Warn(fmt.Sprintf("tracing: %v", err)) })
	s.nodeID = opts.Config.NodeID
	if s.nodeID == "" {
		s.nodeID = uuid.NewString()
	}
	s.metrics = telemetry.NewMetrics(telemetry.Sources{NodeID: s.nodeID, Targets: s.targetHealth, VMs: s.vmCounts, PinnedVMs: s.pinnedVMs,
		Connections: s.connections, SharedDicts: s.sharedDictMemory, LuaVMsBytes: runloop.HeapBytes, Database: s.databaseReachable})
	s.limits = limits.NewRegistry(s.nodeID, func(msg string) { s.log.Error(msg) }, s.metrics.LimitRefused)
	s.shaper = limits.NewShaper()
	s.checkers = stream.NewCheckerSet(s.log)
	s.engine = stream.New(s.log, s.metrics)
	s.engine.Inherit(opts.Sockets)
	return s, nil
}

func (s *Server) level(c *conf.Config) slog.Level {
	if s.opts.LogLevel != "" {
		return errlog.ParseLevel(s.opts.LogLevel)
	}
	return errlog.ParseLevel(c.LogLevel)
}

// Start builds the first generation and opens its listeners.
func (s *Server) Start() error {
	c := s.opts.Config
	if err := s.reopenLogs(c); err != nil {
		return err
	}
	var cached []byte // the configuration cache, when the database did not answer
	if c.Database.Strategy == "postgres" {
		db, err := postgres.OpenSource(context.Background(), c.Database, s.nodeID, c.EnabledPlugins(BundledPlugins), s.log)
		if errors.Is(err, postgres.ErrUnreachable) {
			db, cached, err = s.openOffline(c, err)
		}
		if err != nil {
			return err
		}
		s.db = db
		s.limits.SetDatabase(db)
		db.Watch(func() { s.reloads.after(s.applyDatabaseChanges) }, s.applyHealthEvent)
	}
	g, err := s.swap(c, cached)
	if err != nil {
		return err
	}
	if err := s.startAPIs(c); err != nil {
		s.closeListeners(s.engine.CloseListeners)
		return err
	}
	s.stopRotator, s.rotatorDone = make(chan struct{}), make(chan struct{})
	go s.rotateSecrets(s.stopRotator, s.rotatorDone)
	s.log.Log(context.Background(), errlog.LevelNotice, fmt.Sprintf("gong started with %d stream listener(s)", len(g.stream.Listeners)))
	if t := c.Tracing; len(t.Instrumentations) > 0 && t.OTLPEndpoint != "" {
		s.log.Log(context.Background(), errlog.LevelNotice, fmt.Sprintf("tracing %s to %s (%s), sampling rate %g", strings.Join(t.Instrumentations, ", "), t.OTLPEndpoint, t.OTLPProtocol, t.SamplingRate))
	}
	return nil
}

// build makes a generation from a kong.conf and the declarative
// configuration posted, or else the one kong.conf names.
func (s *Server) build(c *conf.Config, posted []byte) (*generation, error) {
	ps, err := runloop.Load(c, runloop.Host{Log: s.log, Metrics: s.metrics, NodeID: s.nodeID, Shared: s.shared,
		Process: s, Guard: s.memory, SyslogSocket: s.opts.SyslogSocket, Limits: s.limits, Shaper: s.shaper,
		QueueLost: s.countQueueLost})
	if err != nil {
		return nil, err
	}
	var d *declarative.Config
	var hash string
	if s.db != nil && posted == nil { // the database is the one source
		d, hash, err = s.db.Config(context.Background(), declarativeOptions(c, ps))
		var invalid *declarative.Error
		if err != nil && !errors.As(err, &invalid) {
			ps.Close()
			return nil, err // the database's error
		}
		if err == nil {
			ps.SetVault(d.Secrets)
		}
	} else {
		d, hash, err = loadDeclarative(c, ps, posted)
	}
	if err != nil {
		ps.Close()
		return nil, fmt.Errorf("declarative config is invalid:\n%w", err)
	}
	ps.Bind(d)
	cfg, err := stream.Build(c, d, stream.BuildOptions{Hooks: ps, Certificate: ps.CertificateHook(),
		AccessLog: s.accessLog, Checkers: s.checkers, Log: s.log})
	if err != nil {
		ps.Close()
		return nil, err
	}
	var otel, prom map[string]any
	if p := d.GlobalPlugin("opentelemetry"); p != nil {
		otel = p.HandlerConfig()
	}
	if p := d.GlobalPlugin("prometheus"); p != nil {
		prom = p.HandlerConfig()
	}
	if s.metrics != nil {
		s.metrics.SelectKongSeries(telemetry.KongSeriesOf(prom))
	}
	if cfg.Tracer, err = s.tracerFor(telemetry.WithOpenTelemetryPlugin(c.Tracing, otel)); err != nil {
		cfg.StopUpstreams()
		ps.Close()
		return nil, err
	}
	g := &generation{conf: c, decl: d, hash: hash, stream: cfg, plugins: ps,
		rotation: newRotation(d, ps, cfg, s.log)}
	cfg.OnRelease = g.close
	return g, nil
}

// tracerFor keeps the current tracer when the tracing settings are
// unchanged, and otherwise builds the one they describe.
func (s *Server) tracerFor(c conf.Tracing) (*telemetry.Tracer, error) {
	if cur := s.current.Load(); cur != nil && cur.tracer().Same(c) {
		return cur.tracer(), nil
	}
	return telemetry.NewTracer(c)
}

// swap builds a generation from c and posted (see build) and makes it
// current; on failure the current one, with its health checkers, stays as
// it was.
func (s *Server) swap(c *conf.Config, posted []byte) (*generation, error) {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	// From the database (its entities brought up to date change by
	// change), unless posted is the configuration cache a start without
	// the database reads.
	fromDB := s.db != nil && posted == nil
	if !fromDB && posted == nil && c.DeclarativeConfig == "" && c.DeclarativeConfigString == "" {
		posted = s.posted
	}
	s.checkers.Begin()
	g, err := s.build(c, posted)
	if err == nil {
		if err = s.apply(g); err != nil {
			g.plugins.Close()
			g.stream.StopUpstreams()
			if cur := s.current.Load(); cur == nil || cur.tracer() != g.tracer() {
				g.tracer().Shutdown()
			}
		}
	}
	if err != nil {
		s.checkers.Abort()
		return nil, err
	}
	s.checkers.Commit()
	g.plugins.Start() // worker 0 runs its init_worker now, as nginx's does
	s.memory.SetLimit(uint64(c.LuaMemoryLimit))
	s.posted = posted
	s.shared = g.plugins.Shared()
	if fromDB && g.hash != s.cachedHash {
		doc, err := s.db.Snapshot()
		if err == nil {
			err = writeConfigCache(c, doc)
		}
		if err != nil {
			s.log.Warn(fmt.Sprintf("could not cache the configuration for starts without the database: %v", err))
		} else {
			s.cachedHash = g.hash
		}
	}
	return g, nil
}

// Exiting is ngx.worker.exiting: the server is stopping.
func (s *Server) Exiting() bool { return s.engine.Stopping() }

// accessLog returns the writer for path, shared by generations; writers
// live until the server ends, since old connections may still log.
func (s *Server) accessLog(path string) (*stream.AccessLog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accessLogs[path]; ok {
		return a, nil
	}
	a, err := stream.NewAccessLog(path)
	if err != nil {
		return nil, err
	}
	s.accessLogs[path] = a
	return a, nil
}

// apply swaps g into the engine, which opens the listeners g adds and
// closes those it drops, and retires the generation it replaces. If a
// listener cannot be opened nothing changes.
func (s *Server) apply(g *generation) error {
	if _, err := s.engine.Swap(g.stream); err != nil {
		return err
	}
	if old := s.current.Swap(g); old != nil {
		if old.tracer() != nil && old.tracer() != g.tracer() {
			s.tracers.Add(1)
			old.tracerDone = s.tracers.Done
			old.dropTracer.Store(true)
		}
		old.stream.Retire()
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
	if s.db != nil {
		s.db.Invalidate() // a reload reads every entity again
	}
	err := s.reload(opts)
	s.metrics.Reloaded(err)
	if err != nil {
		s.log.Error(fmt.Sprintf("reload failed, the previous configuration keeps serving: %v", err))
		return err
	}
	s.log.Log(context.Background(), errlog.LevelNotice, "reload succeeded")
	return nil
}

// applyDatabaseChanges rebuilds the generation after other nodes' or this
// node's writes, with the kong.conf the current generation runs: the
// database's entities come up to date change by change (see
// postgres.Store.Config). On error the current generation keeps serving.
func (s *Server) applyDatabaseChanges() error {
	g := s.current.Load()
	if g == nil {
		return nil // starting: the first build reads everything
	}
	_, err := s.swap(g.conf, nil)
	s.metrics.Reloaded(err)
	if err != nil {
		s.log.Error(fmt.Sprintf("applying the database's changes failed, the previous configuration keeps serving: %v", err))
		return err
	}
	s.log.Log(context.Background(), errlog.LevelNotice, "reload succeeded")
	return nil
}

func (s *Server) reload(opts conf.Options) error {
	c, warnings, err := conf.Load(opts)
	for _, w := range warnings {
		s.log.Warn(w.Error())
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
		s.log.Log(context.Background(), errlog.LevelNotice, "admin_listen and status_listen changes take effect when gong restarts")
	}
	return s.reopenLogs(c)
}

// reopenLogs applies kong.conf's error logs: proxy_stream_error_log,
// admin_error_log and status_error_log, at log_level. With
// Options.ErrorLog they all keep writing there.
func (s *Server) reopenLogs(c *conf.Config) error {
	for _, l := range []struct {
		log      *errlog.Log
		property string
		path     string
	}{{s.errlog, "proxy_stream_error_log", c.ProxyStreamErrorLog}, {s.adminErrlog, "admin_error_log", c.AdminErrorLog},
		{s.statusErrlog, "status_error_log", c.StatusErrorLog}} {
		path := l.path
		if s.opts.ErrorLog != nil {
			path = ""
		}
		if err := l.log.Reopen(path, s.level(c)); err != nil {
			return fmt.Errorf("%s: %w", l.property, err)
		}
	}
	return nil
}

// countQueueLost counts log-queue entries lost, in /metrics and for Quit.
func (s *Server) countQueueLost(plugin string, n int) {
	s.metrics.QueueLost(plugin, n)
	s.queueLost.Add(uint64(n))
}

// Quit stops accepting connections and ends the server once those in
// flight have ended, or at nginx_main_worker_shutdown_timeout, when those
// still open are closed (their log phase and access-log line still come).
// UDP sessions go on relaying until they idle out or the deadline. The
// log queues then send what they hold (runloop.QueueFlushTimeout). Done
// reports nil, or a *QuitError when sessions were cut or log entries
// lost.
func (s *Server) Quit() {
	timeout := DefaultShutdownTimeout
	if g := s.current.Load(); g != nil && g.conf.Stream.WorkerShutdownTimeout > 0 {
		timeout = g.conf.Stream.WorkerShutdownTimeout
	}
	lostBefore := s.queueLost.Load()
	s.closeListeners(s.engine.Drain)
	cut := 0
	if !s.engine.WaitFor(timeout) {
		cut = s.cutSessions()
		s.log.Warn(fmt.Sprintf("closed %d session(s) still open %s after the graceful quit began (nginx_main_worker_shutdown_timeout)", cut, timeout))
	}
	s.engine.Wait()
	s.finish(func() error {
		q := &QuitError{Timeout: timeout, Cut: cut, Lost: s.queueLost.Load() - lostBefore}
		if q.Cut == 0 && q.Lost == 0 {
			return nil
		}
		return q
	})
}

// cutSessions closes the sessions in flight until none is left, and
// returns how many it closed. A session being accepted as the first ones
// are closed is listed only a moment later: hence the rounds.
func (s *Server) cutSessions() int {
	closed := map[*stream.Session]bool{}
	for {
		for _, ss := range s.engine.Sessions() {
			if !closed[ss] {
				closed[ss] = true
				ss.Close()
			}
		}
		if s.engine.WaitFor(time.Second) {
			return len(closed)
		}
	}
}

// Stop closes the listeners and every connection at once.
func (s *Server) Stop() {
	s.closeListeners(s.engine.CloseListeners)
	s.engine.CloseSessions()
	s.engine.Wait()
	s.finish(func() error { return ErrStopped })
}

// closeListeners stops the stream listeners with stopStream (the engine's
// Drain or CloseListeners) and closes the Admin and Status APIs.
func (s *Server) closeListeners(stopStream func()) {
	stopStream()
	s.mu.Lock()
	apis := s.apis
	s.apis = nil
	s.mu.Unlock()
	apis.close()
}

// finish closes what the server holds (retiring the current generation
// runs its timers one last time: the log queues' flush), then reports
// outcome's answer on Done.
func (s *Server) finish(outcome func() error) {
	s.doneOnce.Do(func() {
		s.mu.Lock()
		for _, a := range s.accessLogs {
			a.Close()
		}
		s.mu.Unlock()
		if s.stopRotator != nil {
			close(s.stopRotator)
			<-s.rotatorDone
		}
		if g := s.current.Load(); g != nil {
			g.stream.Retire() // every session has ended: its VMs close now
			if err := g.tracer().Shutdown(); err != nil {
				s.log.Warn(fmt.Sprintf("tracing: spans not exported at exit: %v", err))
			}
		}
		s.tracers.Wait()
		s.checkers.StopAll()
		s.limits.Close()
		s.memory.Close()
		if s.db != nil {
			s.db.Close()
		}
		s.done <- outcome()
	})
}

// Done reports the end of the server: after Quit nil, or a *QuitError when
// it cut sessions or lost log entries; ErrStopped after Stop.
func (s *Server) Done() <-chan error { return s.done }

// Addrs returns the addresses the server listens on, for stream_listen
// entries with port 0.
func (s *Server) Addrs() []net.Addr { return s.engine.Addrs() }

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
	return g.stream.TargetHealth()
}

// databaseReachable is whether the database answered its last poll; ok
// is false when the node runs without a database.
func (s *Server) databaseReachable() (reachable, ok bool) {
	if s.db == nil {
		return false, false
	}
	return s.db.Reachable(), true
}

// connections counts the sessions begun so far and those in progress.
func (s *Server) connections() (accepted uint64, active int) { return s.engine.Counts() }

// sharedDictMemory reports the current configuration's ngx.shared
// dictionaries.
func (s *Server) sharedDictMemory() []telemetry.SharedDict {
	g := s.current.Load()
	if g == nil {
		return nil
	}
	shared := g.plugins.Shared()
	var out []telemetry.SharedDict
	for _, name := range shared.Names() {
		d := shared.Get(name)
		out = append(out, telemetry.SharedDict{Name: name, Capacity: d.Capacity(), Allocated: d.Capacity() - d.FreeSpace()})
	}
	return out
}

// vmCounts is the current configuration's Lua VM pool: live and idle VMs.
func (s *Server) vmCounts() (size, idle int) {
	if g := s.current.Load(); g != nil {
		st := g.plugins.PoolStats()
		return st.Size, st.Idle
	}
	return 0, 0
}

// pinnedVMs counts the current configuration's VMs kept by sessions
// between preread and log.
func (s *Server) pinnedVMs() int {
	if g := s.current.Load(); g != nil {
		return g.plugins.PinnedVMs()
	}
	return 0
}

// Statistics counts the sessions in progress and those begun so far
// (kong.nginx.get_statistics).
func (s *Server) Statistics() pdk.Statistics {
	accepted, active := s.engine.Counts()
	return pdk.Statistics{Active: int64(active), Accepted: int64(accepted)}
}
