// Package runloop is Kong's runloop for gong's stream engine: it loads the
// plugins (their Lua modules compiled once per generation, a pool of VMs
// to run them), picks the plugins that apply to each route (the plugins
// iterator), and runs their certificate, preread and log phases with
// kong.ctx carried between them. It plugs into the engine as its Hooks.
package runloop

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	glua "github.com/yuin/gopher-lua"
	"go.opentelemetry.io/otel/attribute"

	"github.com/gong-proxy/gong/lua"
	"github.com/gong-proxy/gong/pdk"
	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/limits"
	"github.com/gong-proxy/gong/runtime/schema/luaschema"
	"github.com/gong-proxy/gong/runtime/stream"
	"github.com/gong-proxy/gong/runtime/telemetry"
	"github.com/gong-proxy/gong/vault"
)

// BundledPlugins are the plugins kong.conf's "bundled" enables: those of
// gong's embedded Lua tree (lua/lib/kong/plugins).
var BundledPlugins = lua.BundledPlugins()

// phaseTimeout bounds one plugin handler call (the VMs' CallTimeout); a
// handler still running then is stopped and its VM discarded. It also
// bounds the wait for a VM.
const phaseTimeout = 10 * time.Second

// Plugins are the plugins of a generation: their modules compiled once,
// the pool of VMs that run them, their schemas and priorities.
type Plugins struct {
	pool     *lua.Pool
	pins     pins    // VMs kept between preread and log (carry.go)
	schemaVM *lua.VM // the VM the schemas were loaded on (custom validators run there)
	names    []string
	schemas  map[string]*luaschema.Schema
	priority map[string]int
	versions map[string]string          // the handlers' VERSION
	handles  map[string]map[string]bool // plugin -> phase names its handler implements
	// configs are each plugin's stream configurations, given to its
	// configure handler; set by Bind before any VM is leased.
	configs map[string][]map[string]any
	// routes are the plugins that run for each route's sessions, by route
	// id, and globalLog the log handlers of sessions no route matched;
	// set by Bind.
	routes    map[string]routeRuns
	globalLog []pluginRun
	// handlerConfs are the configs handlers see, by plugin id; set by
	// Bind, replaced one by one by SetHandlerConfig.
	handlerConfs map[string]*handlerConf
	// certificate are the certificate handlers, of global plugins only.
	certificate []pluginRun
	// consumers are the configuration's, for kong.client.load_consumer;
	// set by Bind.
	consumers []*declarative.Consumer
	log       pdk.Logger
	metrics   *telemetry.Metrics // records each handler call's duration
	// shared are the ngx.shared dictionaries the VMs see.
	shared *pdk.SharedDicts
	// timers and sockets are the ngx.timer callbacks and the cosocket
	// keepalive pool of every VM of the set.
	timers  *pdk.Timers
	sockets *pdk.SocketPool
	// queues count what kong.tools.queue holds in the set's VMs.
	queues *pdk.QueueLedger
	// packagePath is lua_package_path, where require finds the modules
	// plugins share beyond their own folders.
	packagePath string
	// vault is kong.vault's resolver, the loaded configuration's.
	vault *vault.Current
	// shaper paces the sessions whose plugins ask for it (nil: none are).
	shaper *limits.Shaper
	// native are the plugins whose preread runs in Go (native.go): gong's
	// own modules of a plugin nativeHandlers has. counters are their
	// stores (nil: they run in Lua).
	native   map[string]bool
	counters pdk.Counters
}

// Host is what a plugin set takes from the server that runs it.
type Host struct {
	// Log is the error log (nil: plugins log nowhere; schema checks only).
	Log *slog.Logger
	// Metrics records each handler call's duration (nil: not recorded).
	Metrics *telemetry.Metrics
	// NodeID is kong.node.get_id's answer (empty: kong.conf's node_id).
	NodeID string
	// Shared are the ngx.shared dictionaries carried from the previous
	// generation (nil for none).
	Shared *pdk.SharedDicts
	// Process answers ngx.worker.exiting and kong.nginx.get_statistics
	// (nil: a process that is not serving).
	Process Process
	// Guard stops handlers that allocate without end (nil: none).
	Guard *lua.MemoryGuard
	// SyslogSocket is where lsyslog writes, empty for the system's socket.
	SyslogSocket string
	// Limits are the gong.limits counters (nil: limits.store fails).
	Limits *limits.Registry
	// Shaper paces the relay of sessions bandwidth-limit shapes (nil:
	// their bytes are not paced).
	Shaper *limits.Shaper
	// QueueLost counts log-queue entries lost, by plugin (nil: not
	// counted).
	QueueLost func(plugin string, n int)
}

// QueueFlushTimeout bounds the last run of a closing set's timers, when
// the log queues send what they hold (see Close): after it, callbacks
// still running are stopped and the entries left are counted lost.
const QueueFlushTimeout = 5 * time.Second

// Load finds every enabled plugin's modules (lua_package_path first, then
// the embedded tree), compiles them, and loads their schemas and
// handlers' priorities. A plugin that cannot be found is an error naming
// the paths searched. host is what the server running the set gives it;
// the zero value serves checks of a configuration.
func Load(c *conf.Config, host Host) (*Plugins, error) {
	names := c.EnabledPlugins(BundledPlugins)
	modules, err := lua.LibModules()
	if err != nil {
		return nil, err
	}
	native := map[string]bool{}
	for _, n := range names {
		embedded, err := findPlugin(c.LuaPackagePath, n, modules)
		if err != nil {
			return nil, err
		}
		native[n] = embedded && nativeHandlers[n] != nil
	}
	goModules := pdk.Modules()
	for k, v := range luaschema.Modules() {
		goModules[k] = v
	}
	b, err := lua.NewBundle(modules, lua.GoModules(goModules))
	if err != nil {
		return nil, err
	}
	roots, err := stream.TrustedPool(c.LuaSSL.TrustedCertificates)
	if err != nil {
		return nil, fmt.Errorf("lua_ssl_trusted_certificate: %w", err)
	}
	secrets := &vault.Current{}
	var logger pdk.Logger
	if host.Log != nil {
		logger = pluginLog{host.Log}
	}
	timers := pdk.NewTimers()
	timers.Logger = logger
	queues := pdk.NewQueueLedger(host.QueueLost)
	shared := host.Shared.Carry(c.Stream.LuaSharedDicts)
	// DB-less: kong.cache's TTLs are 0 (forever), as Kong sets them.
	opts := pdk.Options{Configuration: configuration(c), Sensitive: conf.Sensitive, NodeID: host.NodeID, Logger: logger, Shared: shared,
		Cache: pdk.NewCache(c.MemCacheSize, 0, 0, nil), TrustedIPs: c.TrustedIPs,
		Timers: timers, Events: pdk.NewEvents(), Sockets: pdk.NewSocketPool(), TrustedCAs: roots, SyslogSocket: host.SyslogSocket,
		SSLVerifyDepth: c.LuaSSL.VerifyDepth, SSLProtocols: c.LuaSSL.Protocols, SocketPoolSize: c.LuaSocketPoolSize,
		Vault: secrets, Queues: queues}
	if host.Limits != nil {
		opts.Counters = host.Limits.Counters(roots)
	}
	if host.Process != nil {
		opts.Exiting, opts.Statistics, opts.LuaVMsBytes = host.Process.Exiting, host.Process.Statistics, HeapBytes
	}
	ps := &Plugins{
		shared:      shared,
		names:       names,
		schemas:     map[string]*luaschema.Schema{},
		priority:    map[string]int{},
		versions:    map[string]string{},
		handles:     map[string]map[string]bool{},
		log:         logger,
		metrics:     host.Metrics,
		timers:      timers,
		queues:      queues,
		sockets:     opts.Sockets,
		packagePath: c.LuaPackagePath,
		vault:       secrets,
		shaper:      host.Shaper,
		native:      native,
		counters:    opts.Counters,
	}
	opts.Consumer = ps.consumer
	if ps.schemaVM, err = lua.NewVM(b, lua.PoolOptions{CallTimeout: phaseTimeout}); err != nil {
		return nil, err
	}
	ps.pins.max = int64(c.LuaMaxPinnedVMs)
	ps.pool = lua.NewPool(b, lua.PoolOptions{MaxVMs: c.LuaMaxVMs, MemoryGuard: host.Guard, CallTimeout: phaseTimeout}, ps.setupVM(pdk.Setup(opts)))
	if err := ps.loadSchemas(opts); err != nil {
		ps.Close() // the pool's shrinking goroutine and the VMs
		return nil, err
	}
	return ps, nil
}

// loadSchemas loads every plugin's schema and its handler's priority,
// version and phases on the schema VM.
func (ps *Plugins) loadSchemas(opts pdk.Options) error {
	setPackagePath(ps.schemaVM, ps.packagePath)
	if err := pdk.Setup(opts)(ps.schemaVM); err != nil {
		return err
	}
	ctx := context.Background() // the VM's CallTimeout bounds each call
	for _, n := range ps.names {
		tbl, err := ps.schemaVM.Require(ctx, "kong.plugins."+n+".schema")
		if err != nil {
			return fmt.Errorf("plugin '%s' schema: %w", n, err)
		}
		st, ok := tbl.(*glua.LTable)
		if !ok {
			return fmt.Errorf("plugin '%s' schema: expected a table, got %s", n, tbl.Type())
		}
		if ps.schemas[n], err = luaschema.Load(ps.schemaVM, n, st); err != nil {
			return err
		}
		h, err := ps.schemaVM.Require(ctx, "kong.plugins."+n+".handler")
		if err != nil {
			return fmt.Errorf("plugin '%s' handler: %w", n, err)
		}
		prio, ok := ps.schemaVM.L.GetField(h, "PRIORITY").(glua.LNumber)
		if !ok {
			return fmt.Errorf("plugin '%s' handler: PRIORITY must be a number", n)
		}
		ps.priority[n] = int(prio)
		ps.versions[n] = glua.LVAsString(ps.schemaVM.L.GetField(h, "VERSION"))
		ps.handles[n] = map[string]bool{}
		for _, phase := range []pdk.Phase{pdk.PhaseCertificate, pdk.PhasePreread, pdk.PhaseLog} {
			if ps.schemaVM.L.GetField(h, phase.String()) != glua.LNil {
				ps.handles[n][phase.String()] = true
			}
		}
	}
	return nil
}

// Process is what plugins may ask of the serving process.
type Process interface {
	Exiting() bool
	Statistics() pdk.Statistics
}

// HeapBytes is the memory of the Lua VMs, which share the Go heap: the
// bytes of its objects, live or not yet swept, as Lua's collectgarbage
// ("count") counts its own.
func HeapBytes() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// implementing keeps the runs whose handler has a phase, each with its
// series of that phase's durations.
func (ps *Plugins) implementing(runs []pluginRun, phase pdk.Phase) []pluginRun {
	var out []pluginRun
	for _, r := range runs {
		if ps.handles[r.name][phase.String()] {
			if ps.metrics != nil {
				r.ran = ps.metrics.Phase(r.name, phase.String())
			}
			out = append(out, r)
		}
	}
	return out
}

// findPlugin adds a plugin's modules to modules: its handler and schema
// and the other Lua files beside them, from the first lua_package_path
// template that has the handler, else from the embedded tree (embedded).
func findPlugin(packagePath, name string, modules map[string]string) (embedded bool, err error) {
	rel := "kong/plugins/" + name
	var searched []string
	for _, tmpl := range strings.Split(packagePath, ";") {
		if !strings.Contains(tmpl, "?") {
			continue
		}
		handler := strings.ReplaceAll(tmpl, "?", rel+"/handler")
		searched = append(searched, handler)
		if _, err := os.Stat(handler); err != nil {
			continue
		}
		return false, readPluginDir(os.DirFS(filepath.Dir(handler)), ".", name, modules)
	}
	sub, err := fs.Sub(lua.Lib, "lib/"+rel)
	if err == nil {
		if _, err = fs.Stat(sub, "handler.lua"); err == nil {
			return true, readPluginDir(sub, ".", name, modules)
		}
	}
	return false, fmt.Errorf("plugin '%s' could not be found: no kong.plugins.%s.handler in %s, nor among gong's bundled plugins",
		name, name, strings.Join(searched, ", "))
}

func readPluginDir(fsys fs.FS, dir, name string, modules map[string]string) error {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".lua") {
			continue
		}
		src, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return err
		}
		modules["kong.plugins."+name+"."+strings.TrimSuffix(e.Name(), ".lua")] = string(src)
	}
	if _, ok := modules["kong.plugins."+name+".schema"]; !ok {
		return fmt.Errorf("plugin '%s': no schema.lua beside its handler", name)
	}
	return nil
}

// setupVM prepares each new VM of the pool: the PDK, then every plugin's
// init_worker and configure handlers, as Kong runs them once per worker
// (module state is per VM in gong, as it is per worker in Kong). Their
// errors are logged; the VM serves regardless, as a worker would.
func (ps *Plugins) setupVM(pdkSetup func(*lua.VM) error) func(*lua.VM) error {
	return func(vm *lua.VM) error {
		setPackagePath(vm, ps.packagePath)
		if err := pdkSetup(vm); err != nil {
			return err
		}
		st := &pdk.State{Phase: pdk.PhaseInitWorker}
		pdk.BindingOf(vm.L).State = st
		defer func() { pdk.BindingOf(vm.L).State = nil }()
		for _, n := range ps.names {
			err := ps.initHandler(context.Background(), vm, st, n)
			if err != nil && ps.log != nil {
				ps.log.Log(pdk.LevelErr, fmt.Sprintf("plugin %q init_worker: %v", n, err))
			}
			if isVMFailure(err) {
				return err
			}
		}
		return nil
	}
}

func (ps *Plugins) initHandler(ctx context.Context, vm *lua.VM, st *pdk.State, name string) error {
	h, err := handler(ctx, vm, name)
	if err != nil {
		return err
	}
	st.Plugin = name
	if fn := vm.L.GetField(h, "init_worker"); fn != glua.LNil {
		if _, _, err := vm.Run(ctx, fn, h); err != nil {
			return err
		}
	}
	if fn := vm.L.GetField(h, "configure"); fn != glua.LNil {
		var configs glua.LValue = glua.LNil
		if cs := ps.configs[name]; len(cs) > 0 {
			list := make([]any, len(cs))
			for i, c := range cs {
				list[i] = c
			}
			configs = pdk.ToLua(vm.L, list)
		}
		if _, _, err := vm.Run(ctx, fn, h, configs); err != nil {
			return fmt.Errorf("configure: %w", err)
		}
	}
	return nil
}

// setPackagePath makes require search lua_package_path, as nginx's
// lua_package_path directive does; ";;" stands for the default path.
func setPackagePath(vm *lua.VM, path string) {
	if path == "" {
		return
	}
	pkg := vm.L.GetGlobal("package")
	def := vm.L.GetField(pkg, "path").String()
	vm.L.SetField(pkg, "path", glua.LString(strings.ReplaceAll(path, ";;", ";"+def+";")))
}

// configuration is kong.configuration: every set property as a string.
func configuration(c *conf.Config) pdk.Configuration {
	m := pdk.Configuration{}
	for _, k := range c.Keys() {
		m[k], _ = c.Get(k)
	}
	return m
}

// Validate is the declarative PluginConfig hook: the plugin's schema
// checks its config and fills its defaults.
func (ps *Plugins) Validate(name string, config map[string]any) (map[string]any, map[string]any) {
	s, ok := ps.schemas[name]
	if !ok {
		return config, nil
	}
	return s.Validate(ps.schemaVM, config)
}

// Dereference is the declarative PluginReferences hook: the plugin's
// schema names the referenceable fields.
func (ps *Plugins) Dereference(name string, config map[string]any, get func(string) (string, error)) (map[string]any, error) {
	if s, ok := ps.schemas[name]; ok {
		return s.Dereference(config, get)
	}
	return config, nil
}

// SetVault makes r, the loaded configuration's resolver, kong.vault's.
func (ps *Plugins) SetVault(r *vault.Resolver) { ps.vault.Set(r) }

// Protocols are the protocols a plugin's schema defaults to.
func (ps *Plugins) Protocols(name string) []string {
	if s, ok := ps.schemas[name]; ok {
		return s.Protocols()
	}
	return nil
}

// consumer is kong.client.load_consumer's lookup among the
// configuration's consumers.
func (ps *Plugins) consumer(key string, byUsername bool) map[string]any {
	for _, c := range ps.consumers {
		if byUsername && c.Username != nil && *c.Username == key || !byUsername && c.ID == key {
			return entityMap(c)
		}
	}
	return nil
}

// AllowedProtocols returns the protocols a plugin's schema allows, for
// declarative.Options.PluginAllowedProtocols; nil for an unknown plugin.
func (ps *Plugins) AllowedProtocols(name string) []string {
	if s, ok := ps.schemas[name]; ok {
		return s.AllowedProtocols()
	}
	return nil
}

// pluginRun is one plugin instance that applies to a connection.
type pluginRun struct {
	name string
	id   string
	conf *handlerConf
	ran  telemetry.PhaseSeries // its handler's durations in the phase of the list it is in
}

// handlerConf is the config a plugin instance's handlers see. Its
// version counts replacements: 0 is the config the generation loaded.
type handlerConf struct{ cur atomic.Pointer[confVersion] }

type confVersion struct {
	conf    map[string]any
	version float64
}

func newHandlerConf(conf map[string]any) *handlerConf {
	h := &handlerConf{}
	h.cur.Store(&confVersion{conf: conf})
	return h
}

// SetHandlerConfig replaces the config the handlers of plugin id see,
// from their next call on: the vault rotator calls it when a secret of a
// referenceable field has changed. An unknown id is ignored.
func (ps *Plugins) SetHandlerConfig(id string, conf map[string]any) {
	h, ok := ps.handlerConfs[id]
	if !ok {
		return
	}
	for {
		old := h.cur.Load()
		if h.cur.CompareAndSwap(old, &confVersion{conf: conf, version: old.version + 1}) {
			return
		}
	}
}

// collect returns the plugin instances that apply to connections of a
// route (nil for none: the global ones) in execution order, as
// kong/runloop/plugins_iterator.lua does for stream: per plugin name the
// first of route+service, route, service, global (stream connections have
// no consumer, so consumer-scoped instances never apply), enabled and for
// a stream protocol; ordered by PRIORITY descending, ties by name
// descending.
func (ps *Plugins) collect(plugins []*declarative.Plugin, route, service string) []pluginRun {
	type scope struct{ route, service string }
	best := map[string]*declarative.Plugin{}
	rank := map[string]int{}
	for _, p := range plugins {
		if !p.Enabled || !p.Stream() || p.Consumer != nil {
			continue
		}
		s := scope{derefOr(p.Route, ""), derefOr(p.Service, "")}
		r := 0
		switch {
		case s.route != "" && s.service != "" && s.route == route && s.service == service:
			r = 4
		case s.route != "" && s.service == "" && s.route == route:
			r = 3
		case s.route == "" && s.service != "" && s.service == service:
			r = 2
		case s.route == "" && s.service == "":
			r = 1
		}
		if r > rank[p.Name] {
			best[p.Name], rank[p.Name] = p, r
		}
	}
	runs := make([]pluginRun, 0, len(best))
	for name, p := range best {
		h := ps.handlerConfs[p.ID]
		if h == nil || p.ID == "" {
			h = newHandlerConf(p.HandlerConfig())
		}
		runs = append(runs, pluginRun{name: name, id: p.ID, conf: h})
	}
	slices.SortFunc(runs, func(a, b pluginRun) int {
		if pa, pb := ps.priority[a.name], ps.priority[b.name]; pa != pb {
			return pb - pa
		}
		return strings.Compare(b.name, a.name)
	})
	return runs
}

// run calls one phase's handlers of runs on vm with st bound, in order,
// until a handler ends the session (Session.Exit). A handler error is
// logged with the plugin, phase and traceback and returned; the VM is
// unusable after a timeout or a Go panic (the pool discards it on Put).
// With tr, a traced session's, each handler call gets a span.
func (ps *Plugins) run(vm *lua.VM, st *pdk.State, phase pdk.Phase, runs []pluginRun, exited func() bool, tr *telemetry.Trace) error {
	pdk.BindingOf(vm.L).State = st
	if tr != nil && st.Tracing == nil {
		st.Tracing = &pluginTracing{tr: tr}
	}
	ctx := context.Background() // the VM's CallTimeout bounds each call
	for _, r := range runs {
		h, err := handler(ctx, vm, r.name)
		if err == nil {
			if fn := vm.L.GetField(h, phase.String()); fn != glua.LNil {
				st.Phase, st.Plugin, st.PluginID = phase, r.name, r.id
				start := time.Now()
				if tr != nil {
					err = ps.runTraced(ctx, vm, st, fn, h, r, phase, tr)
				} else {
					_, _, err = vm.Run(ctx, fn, h, confTable(vm, r))
				}
				r.ran.Ran(time.Since(start))
			}
		}
		if err != nil {
			return fmt.Errorf("plugin %q %s phase: %w", r.name, phase, err)
		}
		if exited() {
			return nil
		}
	}
	return nil
}

// runTraced runs one handler inside its span, which plugins' own spans
// (kong.tracing) start under.
func (ps *Plugins) runTraced(ctx context.Context, vm *lua.VM, st *pdk.State, fn, h glua.LValue, r pluginRun, phase pdk.Phase, tr *telemetry.Trace) error {
	sp := tr.Span(telemetry.Plugins, "kong."+phase.String()+".plugin."+r.name,
		attribute.String("gong.plugin.name", r.name), attribute.Int("gong.plugin.priority", ps.priority[r.name]),
		attribute.String("gong.plugin.phase", phase.String()))
	pt := st.Tracing.(*pluginTracing)
	pt.phase = sp
	_, _, err := vm.Run(ctx, fn, h, confTable(vm, r))
	pt.phase = nil
	if err != nil {
		telemetry.Fail(sp, err)
	}
	sp.End()
	return err
}

// confsKey is the registry table of a VM's plugin configurations, and
// confVersionsKey the version of handlerConf each was made from.
const (
	confsKey        = "gong.plugin_confs"
	confVersionsKey = "gong.plugin_conf_versions"
)

// confTable is the conf table a plugin instance's handlers get on vm:
// made once per VM, so every call sees the same table, as Kong passes
// its plugins iterator's table on every request (pre-function caches its
// compiled code by it; kong.tools.queue writes to it). When the config
// was replaced (SetHandlerConfig), the table's fields are updated in
// place, as Kong's kong.vault.update does.
func confTable(vm *lua.VM, r pluginRun) glua.LValue {
	cur := r.conf.cur.Load()
	if r.id == "" {
		return pdk.ToLua(vm.L, cur.conf)
	}
	reg := vm.L.Get(glua.RegistryIndex).(*glua.LTable)
	confs, ok := reg.RawGetString(confsKey).(*glua.LTable)
	if !ok {
		confs = vm.L.NewTable()
		reg.RawSetString(confsKey, confs)
	}
	c := confs.RawGetString(r.id)
	if c == glua.LNil {
		c = pdk.ToLua(vm.L, cur.conf)
		confs.RawSetString(r.id, c)
		if cur.version != 0 {
			confVersions(vm, reg).RawSetString(r.id, glua.LNumber(cur.version))
		}
		return c
	}
	if cur.version == 0 {
		return c
	}
	versions := confVersions(vm, reg)
	if versions.RawGetString(r.id) != glua.LNumber(cur.version) {
		if t, ok := c.(*glua.LTable); ok {
			if fresh, ok := pdk.ToLua(vm.L, cur.conf).(*glua.LTable); ok {
				fresh.ForEach(func(k, v glua.LValue) { t.RawSet(k, v) })
			}
		}
		versions.RawSetString(r.id, glua.LNumber(cur.version))
	}
	return c
}

func confVersions(vm *lua.VM, reg *glua.LTable) *glua.LTable {
	versions, ok := reg.RawGetString(confVersionsKey).(*glua.LTable)
	if !ok {
		versions = vm.L.NewTable()
		reg.RawSetString(confVersionsKey, versions)
	}
	return versions
}

// handlersKey is the registry table of a VM's plugin handlers.
const handlersKey = "gong.plugin_handlers"

// handler returns a plugin's handler on vm: the module's table, or, for
// a legacy class (kong.plugins.base_plugin style: it has new), the
// instance Kong's loader made by calling it. Made once per VM.
func handler(ctx context.Context, vm *lua.VM, name string) (glua.LValue, error) {
	reg := vm.L.Get(glua.RegistryIndex).(*glua.LTable)
	handlers, ok := reg.RawGetString(handlersKey).(*glua.LTable)
	if !ok {
		handlers = vm.L.NewTable()
		reg.RawSetString(handlersKey, handlers)
	}
	if h := handlers.RawGetString(name); h != glua.LNil {
		return h, nil
	}
	h, err := vm.Require(ctx, "kong.plugins."+name+".handler")
	if err != nil {
		return nil, err
	}
	if _, isFn := vm.L.GetField(h, "new").(*glua.LFunction); isFn {
		res, err := vm.Call(ctx, h)
		if err != nil {
			return nil, fmt.Errorf("creating the handler: %w", err)
		}
		if len(res) > 0 {
			h = res[0]
		}
	}
	handlers.RawSetString(name, h)
	return h, nil
}

// isVMFailure reports errors after which a VM cannot be trusted.
func isVMFailure(err error) bool {
	var le *lua.Error
	return errors.As(err, &le) && le.Untrusted()
}

// Close releases the VMs; the set's generation serves no connection any
// more, or never did. Its pending timers run first, prematurely, as a
// worker's do when it exits, so the log queues send what they hold,
// within QueueFlushTimeout; entries still queued then are counted lost.
func (ps *Plugins) Close() {
	ps.timers.CloseWithin(QueueFlushTimeout)
	if n := ps.queues.Settle(); n > 0 && ps.log != nil {
		ps.log.Log(pdk.LevelErr, fmt.Sprintf("%d log queue entries were still queued when their configuration closed and are lost", n))
	}
	ps.pool.Close()
	ps.schemaVM.Close()
	ps.sockets.Close()
}

// Info describes a loaded plugin for the Admin API.
type Info struct {
	Name     string
	Version  string
	Priority int
	Schema   map[string]any
}

// Infos describe the loaded plugins, in the order kong.conf enables them.
func (ps *Plugins) Infos() []Info {
	out := make([]Info, 0, len(ps.names))
	for _, n := range ps.names {
		out = append(out, Info{Name: n, Version: ps.versions[n], Priority: ps.priority[n], Schema: ps.schemas[n].Definition()})
	}
	return out
}

// Shared are the ngx.shared dictionaries the set's VMs see.
func (ps *Plugins) Shared() *pdk.SharedDicts { return ps.shared }

// Start is called once the generation serves: worker 0 of the VM pool is
// created now and kept for the set's life, so its init_worker handlers
// run at start, as an nginx worker's do (lua.Pool.Start).
func (ps *Plugins) Start() { ps.pool.Start() }

// PoolStats counts the set's VMs.
func (ps *Plugins) PoolStats() lua.Stats { return ps.pool.Stats() }

func derefOr(p *string, or string) string {
	if p == nil {
		return or
	}
	return *p
}
