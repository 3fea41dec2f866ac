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
	if c.Database.Strategy == "postgres" {
		db, err := postgres.OpenSource(context.Background(), c.Database, s.nodeID, s.log)
		if err != nil {
			return err
		}
		s.db = db
		db.Watch(s.applyDatabaseChanges)
	}
	g, err := s.swap(c, nil)
	if err != nil {
		return err
	}
	if err := s.startAPIs(c); err != nil {
		s.closeListeners()
		return err
	}
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
		Process: s, Guard: s.memory, SyslogSocket: s.opts.SyslogSocket, Limits: s.limits, Shaper: s.shaper})
	if err != nil {
		return nil, err
	}
	var d *declarative.Config
	var hash string
	if s.db != nil { // the database is the one source
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
	g := &generation{conf: c, decl: d, hash: hash, stream: cfg, plugins: ps}
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
	if posted == nil && c.DeclarativeConfig == "" && c.DeclarativeConfigString == "" {
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
func (s *Server) applyDatabaseChanges() {
	g := s.current.Load()
	if g == nil {
		return // starting: the first build reads everything
	}
	_, err := s.swap(g.conf, nil)
	s.metrics.Reloaded(err)
	if err != nil {
		s.log.Error(fmt.Sprintf("applying the database's changes failed, the previous configuration keeps serving: %v", err))
		return
	}
	s.log.Log(context.Background(), errlog.LevelNotice, "reload succeeded")
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

// Quit stops accepting connections and ends the server once those in
// flight have ended, however long that takes; "gong quit" escalates to
// Stop after its timeout.
func (s *Server) Quit() {
	s.closeListeners()
	s.engine.Wait()
	s.finish(nil)
}

// Stop closes the listeners and every connection at once.
func (s *Server) Stop() {
	s.closeListeners()
	s.engine.CloseSessions()
	s.engine.Wait()
	s.finish(ErrStopped)
}

func (s *Server) closeListeners() {
	s.engine.CloseListeners()
	s.mu.Lock()
	apis := s.apis
	s.apis = nil
	s.mu.Unlock()
	apis.close()
}

func (s *Server) finish(err error) {
	s.doneOnce.Do(func() {
		s.mu.Lock()
		for _, a := range s.accessLogs {
			a.Close()
		}
		s.mu.Unlock()
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
		s.done <- err
	})
}

// Done reports the end of the server: nil after Quit, ErrStopped after Stop.
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
