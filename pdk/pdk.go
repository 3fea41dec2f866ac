package pdk

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/gong-proxy/gong/lua"
	glua "github.com/yuin/gopher-lua"
)

// Session is what the PDK reads and changes of one stream connection. The
// runtime implements it; the PDK calls it only from the connection's
// goroutine, while a State holding it is bound.
type Session interface {
	// Var returns the stream variable name (lowercase, without "$") as
	// ngx.var does: ok is false when it is undefined or has no value.
	// kong.client reads remote_addr, remote_port, realip_remote_addr,
	// realip_remote_port, ssl_protocol and kong_tls_passthrough_block
	// through it, as kong/pdk/client.lua does.
	Var(name string) (value string, ok bool)
	// Protocol is the protocol kong.client.get_protocol reports: the route's
	// only protocol, else "tls" or "tcp" from the balancer data. Empty when
	// no route matched.
	Protocol() string
	// Serialize builds the kong.log.serialize stream record, nil for an
	// empty one. The PDK converts it, puts the live
	// ngx.ctx.balancer_data.tries table in place of its tries as Kong
	// does, and applies set_serialize_value entries.
	Serialize() *LogRecord
	// Exit records the end of the session asked by kong.response.exit or
	// ngx.exit: status is the session status and body the bytes to send
	// before closing, nil when nothing is sent (no body, or status >= 400,
	// whose body the PDK logs instead). Status 0 (ngx.exit(ngx.OK)) ends
	// the preread phase and proxying continues. The handler has ended when
	// Exit returns: the PDK yields its coroutine. The runtime takes a call
	// to Exit, not lua.VM.Run's yielded, as the signal.
	Exit(status int, body []byte)
	// Entities returns the matched route and its service as plugins see
	// them (their JSON fields), nil when there is none. The maps may be
	// shared by every session of the route and must never change: the
	// PDK caches their JSON by identity (logrecord.go).
	Entities() (route, service map[string]any)
	// UpstreamExists reports whether the configuration has an upstream
	// entity called name (kong.service.set_upstream).
	UpstreamExists(name string) bool
	// Status is the session status ngx.status reads: 0 until the session
	// ends.
	Status() int
}

// EntityIDs is a Session that names its matched route and service
// without building their entity tables (Entities): what is asked once
// per session (the service's presence after preread, gong.limits' ids)
// stays cheap. hasService is false when the route has no service.
type EntityIDs interface {
	IDs() (routeID, serviceID string, hasService bool)
}

// UpstreamChange is what kong.service changed, in preread, of where the
// session connects: the runtime dials it instead of the service's own.
// Zero fields keep the service's setting.
type UpstreamChange struct {
	// Host and Port are set_target's: Host may name an upstream entity.
	Host string
	Port int
	// Upstream is set_upstream's upstream name, balanced over its targets
	// at the service's port.
	Upstream string
	// TLSVerify and TLSVerifyDepth override the service's tls_verify and
	// tls_verify_depth; DisableTLS turns upstream TLS off.
	TLSVerify      *bool
	TLSVerifyDepth *int
	DisableTLS     bool
	// TLSClientCert and TLSRoots replace the service's client certificate
	// and trust store (set_tls_cert_key, set_tls_verify_store).
	TLSClientCert *tls.Certificate
	TLSRoots      *x509.CertPool
}

// LogLevel is an nginx error-log level: lower is more severe.
type LogLevel int

const (
	LevelStderr LogLevel = iota
	LevelEmerg
	LevelAlert
	LevelCrit
	LevelErr
	LevelWarn
	LevelNotice
	LevelInfo
	LevelDebug
)

var levelNames = []string{"stderr", "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"}

// String returns nginx's name of l ("error" for LevelErr).
func (l LogLevel) String() string {
	if l >= 0 && int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// ParseLogLevel reads Kong's log_level setting ("debug" ... "emerg"; "err"
// and "error" both name LevelErr).
func ParseLogLevel(s string) (LogLevel, bool) {
	if s == "err" {
		return LevelErr, true
	}
	for i, n := range levelNames {
		if n == s {
			return LogLevel(i), true
		}
	}
	return 0, false
}

// Logger receives the error-log lines of kong.log and ngx.log that pass the
// level filter. line is the message as Kong formats it before nginx adds its
// own prefix: "[kong] handler:12 [my-plugin] text" for kong.log,
// "handler:12: text" for ngx.log. Log must not call back into the VM.
type Logger interface {
	Log(level LogLevel, line string)
}

// Configuration is the Kong configuration kong.configuration exposes, with
// the value types Session.Serialize accepts.
type Configuration map[string]any

// Options are the per-generation settings of the PDK, the same for every VM.
type Options struct {
	// Configuration is kong.configuration. Its "node_id" string is
	// kong.node.get_id's answer and its "log_level" the default LogLevel.
	Configuration Configuration
	// Sensitive reports the properties of Configuration that hold
	// secrets: kong.configuration.remove_sensitive, and so the
	// sandbox's kong.configuration, shows them as "******". If nil,
	// none is masked.
	Sensitive func(key string) bool
	// NodeID is kong.node.get_id's answer: the id the node was given or
	// drew at start. If empty, the configuration's node_id.
	NodeID string
	// Version is kong.version. If empty, KongVersion.
	Version string
	// Logger receives lines logged while no State is bound, or when the
	// bound State has no Log. If nil, those lines are dropped.
	Logger Logger
	// LogLevel drops lines less severe than it. If zero, the
	// configuration's log_level is used, else LevelNotice (Kong's default).
	LogLevel LogLevel
	// Now is the clock of ngx.now and friends. If nil, time.Now.
	Now func() time.Time
	// Shared are the ngx.shared dictionaries, one set for every VM of the
	// process. If nil, ngx.shared is empty.
	Shared *SharedDicts
	// Cache is kong.cache, one for every VM. If nil, each Open makes a
	// small one for its VM alone.
	Cache *Cache
	// Exiting is ngx.worker.exiting: whether the process is shutting
	// down. If nil, never.
	Exiting func() bool
	// TrustedIPs are kong.conf's trusted_ips, for kong.ip.is_trusted.
	TrustedIPs []netip.Prefix
	// Statistics are kong.nginx.get_statistics' connection counters. If
	// nil, all zero.
	Statistics func() Statistics
	// LuaVMsBytes is the memory of this process's Lua VMs, which
	// kong.node.get_memory_stats reports in workers_lua_vms as the Status
	// API does. If nil, workers_lua_vms is empty.
	LuaVMsBytes func() uint64
	// Timers runs the ngx.timer callbacks of every VM of the generation.
	// If nil, each VM gets a set of its own.
	Timers *Timers
	// Queues counts the entries kong.tools.queue holds and reports those
	// lost. If nil, nothing is counted.
	Queues *QueueLedger
	// Events carries kong.worker_events between the VMs of the
	// generation. If nil, each VM's events stay on it.
	Events *Events
	// Sockets is the cosocket keepalive pool shared by every VM of the
	// generation. If nil, each VM gets a pool of its own.
	Sockets *SocketPool
	// TrustedCAs verifies cosocket TLS handshakes that ask for it
	// (lua_ssl_trusted_certificate). If nil, the system's roots.
	TrustedCAs *x509.CertPool
	// SSLVerifyDepth is lua_ssl_verify_depth: the intermediates a
	// verified cosocket peer's chain may have.
	SSLVerifyDepth int
	// SSLProtocols are lua_ssl_protocols (TLSv1.2, TLSv1.3...), the
	// versions cosocket handshakes offer; empty is crypto/tls's.
	SSLProtocols []string
	// Vault resolves kong.vault.get's references. If nil, the process's
	// environment through the env vault.
	Vault Vault
	// SocketPoolSize is lua_socket_pool_size: the idle connections a
	// keepalive pool keeps when setkeepalive names no size. Zero is
	// Kong's default, 256.
	SocketPoolSize int
	// Consumer finds a consumer entity (its JSON fields) by id, or by
	// username when byUsername, for kong.client.load_consumer. If nil,
	// there are none.
	Consumer func(key string, byUsername bool) map[string]any
	// SyslogSocket is the unix datagram socket lsyslog writes to. If
	// empty, the system's (/dev/log).
	SyslogSocket string
	// Counters are the stores of the gong.limits module. If nil,
	// limits.store answers an error.
	Counters Counters
}

// Statistics are the process's connection counters.
type Statistics struct {
	// Active are the sessions in progress; Accepted all sessions so far.
	Active, Accepted int64
}

// KongVersion is the Kong release gong follows: kong.version, and the
// version the Admin API's GET / reports.
const KongVersion = "3.10.0"

// State is what the PDK keeps of one connection across its phases: the
// current phase and plugin, the session, and the Lua tables of ngx.ctx,
// kong.ctx.shared and kong.ctx.plugin. The runtime sets Phase and Plugin
// before each handler call. A State is not safe for concurrent use.
//
// The ctx tables are Lua values of the VM that created them: while
// CtxEmpty is false the connection must keep running on that VM, unless
// CarryOut moves them out (docs/architecture.md, "Lua VMs"). The certificate phase gets its own State, since
// Kong clears its ngx.ctx when the phase ends.
type State struct {
	Phase   Phase
	Session Session
	// Plugin is the name of the running plugin: the kong.log namespace.
	// Empty means Kong's core logger.
	Plugin string
	// Log receives this connection's log lines. If nil, Options.Logger.
	Log Logger
	// Tracing is the session's trace for kong.tracing; nil when the
	// session is not traced.
	Tracing Tracing
	// PluginID is the running plugin instance's id (kong.plugin.get_id).
	PluginID string
	// Upstream is what kong.service changed; the runtime reads it after
	// preread.
	Upstream UpstreamChange
	// Exited and Proxied tell kong.response.get_source how the session
	// ended: kong.response.exit sets Exited, EndPreread Proxied.
	Exited, Proxied bool
	// Timing is when the session's runloop steps happened, for ngx.ctx's
	// KONG_* values; the runtime sets Start, Begin and EndPreread the rest.
	Timing Timing
	// Shaping is what the bandwidth-limit plugin asked of the relay; nil
	// for none.
	Shaping *Shaping

	ngxCtx          *glua.LTable
	balancerData    *glua.LTable  // the ngx.ctx.balancer_data SetBalancerData made
	pendingBalancer *BalancerData // given, not yet in ngx.ctx
	lastBalancer    *BalancerData // the last given, for the KONG_BALANCER_* values
	route, service  glua.LValue   // kong.router's tables, once built
	shared          *glua.LTable
	plugins         map[string]*glua.LTable
	serializeValues []serializeValue
	// spans are those kong.tracing started (process_span), and
	// shouldSample set_should_sample's decision.
	spans        []Span
	shouldSample *bool
	carried      *carried // the ctx values between phases, outside any VM (CarryOut)
	onEnd        []func() // run by End, when the session is over
	// timer marks the State of an ngx.timer callback: no session, phase
	// "timer" for ngx.get_phase.
	timer bool
}

// CtxEmpty reports whether no ctx table holds a value and no
// set_serialize_value entry is pending, so the next phase may run on any VM.
func (s *State) CtxEmpty() bool {
	if len(s.serializeValues) > 0 {
		return false
	}
	if !tableEmpty(s.ngxCtx) || !tableEmpty(s.shared) {
		return false
	}
	for _, t := range s.plugins {
		if !tableEmpty(t) {
			return false
		}
	}
	return true
}

func tableEmpty(t *glua.LTable) bool {
	if t == nil {
		return true
	}
	k, _ := t.Next(glua.LNil)
	return k == glua.LNil
}

// Binding is the VM's handle on the State of its current lease: the runtime
// sets State before running a handler and clears it after. Every PDK
// function reads it when called, never before.
type Binding struct {
	State *State
	vm    *lua.VM  // the VM the PDK is open on; nil when opened on a bare LState
	opts  *Options // the options Open was given, for Go modules
	// sockets are the cosockets made during the lease; those still open
	// when the VM goes back to its pool are closed, as OpenResty closes a
	// request's cosockets when it ends.
	sockets []interface{ release() }
}

// Func is one PDK function: its Lua name, phase contract and implementation.
type Func struct {
	Name  string
	Check phaseCheck
	Fn    func(L *glua.LState, s *State) int
}

// namespace is one kong.* module in kong/pdk/init.lua's MAJOR_MODULES order.
type namespace struct {
	name  string
	funcs []Func
}

// pdk is the per-VM context the implementations share.
type pdk struct {
	b       *Binding
	opts    Options
	inspect bool
	// format is what kong.log.set_format set; empty is Kong's default.
	format string
	kong   *glua.LTable
	// trustAll is kong.ip's answer when trusted_ips has both 0.0.0.0/0
	// and ::/0.
	trustAll bool
	timerSeq int
}

const bindingKey = "gong.pdk.binding"

// Setup returns the function lua.NewPool runs on each new VM: it opens the
// PDK over a fresh Binding, which BindingOf finds again, and unbinds it when
// the VM goes back to its pool.
func Setup(opts Options) func(vm *lua.VM) error {
	return func(vm *lua.VM) error {
		b := &Binding{vm: vm}
		Open(vm.L, b, opts)
		vm.OnReset(func(*lua.VM) error {
			b.State = nil
			for _, s := range b.sockets {
				s.release()
			}
			b.sockets = nil
			return nil
		})
		return nil
	}
}

// BindingOf returns the Binding Open installed on L, or nil.
func BindingOf(L *glua.LState) *Binding {
	ud, ok := registry(L).RawGetString(bindingKey).(*glua.LUserData)
	if !ok {
		return nil
	}
	b, _ := ud.Value.(*Binding)
	return b
}

// Open installs the globals kong and ngx on L, with their functions bound to
// b. Walks the namespaces as kong/pdk/init.lua does.
func Open(L *glua.LState, b *Binding, opts Options) {
	if opts.Version == "" {
		opts.Version = KongVersion
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LogLevel == 0 {
		opts.LogLevel = LevelNotice
		if s, ok := opts.Configuration["log_level"].(string); ok {
			if l, ok := ParseLogLevel(s); ok {
				opts.LogLevel = l
			}
		}
	}
	if opts.Cache == nil {
		opts.Cache = NewCache(0, 0, 0, opts.Now)
	}
	p := &pdk{b: b, opts: opts, inspect: true}
	p.trustAll = trustsAll(opts.TrustedIPs)
	b.opts = &p.opts
	ud := L.NewUserData()
	ud.Value = b
	registry(L).RawSetString(bindingKey, ud)

	kong := L.NewTable()
	p.kong = kong
	for _, ns := range p.namespaces() {
		t := kong
		for _, part := range strings.Split(ns.name, ".") {
			sub, ok := t.RawGetString(part).(*glua.LTable)
			if !ok {
				sub = L.NewTable()
				t.RawSetString(part, sub)
			}
			t = sub
		}
		for _, f := range ns.funcs {
			if t.RawGetString(f.Name) != glua.LNil {
				panic("pdk: " + ns.name + "." + f.Name + " registered twice")
			}
			t.RawSetString(f.Name, p.bind(L, f))
		}
	}
	p.openGlobals(L, kong)
	p.openLog(L, kong)
	p.openCtx(L, kong)
	p.openCache(L, kong)
	p.openKongExtras(L, kong)
	L.SetGlobal("kong", kong)
	L.SetGlobal("ngx", p.openNgx(L))
	L.SetGlobal("print", L.NewFunction(p.luaPrint))
}

// namespaces lists the function tables in Kong's order.
func (p *pdk) namespaces() []namespace {
	return []namespace{
		{"table", tableFuncs},
		{"node", p.nodeFuncs()},
		{"log", p.logFuncs()},
		{"ip", p.ipFuncs()},
		{"client", clientFuncs},
		{"service", serviceFuncs},
		{"request", requestFuncs},
		{"service.request", serviceRequestFuncs},
		{"service.response", serviceResponseFuncs},
		{"response", p.responseFuncs()},
		{"router", routerFuncs},
		{"nginx", p.nginxFuncs()},
		{"cluster", p.clusterFuncs()},
		{"vault", p.vaultFuncs()},
		{"plugin", pluginFuncs},
		{"telemetry", telemetryFuncs},
		{"tracing", p.tracingFuncs()},
	}
}

// bind wraps f in a Lua function that checks the phase of the bound State.
func (p *pdk) bind(L *glua.LState, f Func) *glua.LFunction {
	return L.NewFunction(func(L *glua.LState) int {
		s := p.b.State
		var cur Phase
		if s != nil {
			cur = s.Phase
		}
		if _, isCtx := L.Get(1).(*glua.LTable); !f.Check.ctxArg || !isCtx {
			checkPhase(L, cur, f.Check)
		}
		return f.Fn(L, s)
	})
}

// registry is the VM's registry table, where per-VM singletons live.
func registry(L *glua.LState) *glua.LTable {
	return L.Get(glua.RegistryIndex).(*glua.LTable)
}

// registryValue returns the registry entry key, creating it with mk.
func registryValue(L *glua.LState, key string, mk func() glua.LValue) glua.LValue {
	r := registry(L)
	v := r.RawGetString(key)
	if v == glua.LNil {
		v = mk()
		r.RawSetString(key, v)
	}
	return v
}

// Null returns L's ngx.null, which is also cjson.null: a userdata without
// metatable standing for JSON null.
func Null(L *glua.LState) glua.LValue {
	return registryValue(L, "gong.pdk.null", func() glua.LValue { return L.NewUserData() })
}

// readOnly returns a proxy of t whose writes raise msg.
func readOnly(L *glua.LState, t *glua.LTable, fields map[string]glua.LValue, msg string) *glua.LTable {
	proxy := L.NewTable()
	for k, v := range fields {
		proxy.RawSetString(k, v)
	}
	mt := L.NewTable()
	mt.RawSetString("__index", t)
	mt.RawSetString("__newindex", L.NewFunction(func(L *glua.LState) int {
		L.RaiseError("%s", msg)
		return 0
	}))
	L.SetMetatable(proxy, mt)
	return proxy
}
