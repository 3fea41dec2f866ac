package admin

import (
	"errors"
	"time"

	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
)

// ErrExiting is what Apply returns once the server is shutting down.
var ErrExiting = errors.New("Kong currently exiting")

// Backend is the running server as the APIs see it. Its methods are
// called concurrently.
type Backend interface {
	// Current is the configuration serving new sessions.
	Current() Snapshot
	// Apply replaces the declarative configuration with config (YAML or
	// JSON), keeping the current kong.conf, as a reload does: on error the
	// running configuration keeps serving. An invalid configuration is a
	// *declarative.Error.
	Apply(config []byte) (Snapshot, error)
	// Plugins are the plugins the node has loaded.
	Plugins() []Plugin
	// Validate checks one entity of a kind ("plugins", "services", ...)
	// against its schema, and a plugin against the enabled plugins, as a
	// declarative configuration would; references to other entities are
	// not checked. The error is a *declarative.Error when it is invalid.
	Validate(kind string, entity map[string]any) error
	// Health reports an upstream's targets as its balancer sees them; ok
	// is false when no service uses the upstream.
	Health(upstream string) (h UpstreamHealth, ok bool)
	// SetHealth forces the health of an upstream's target ("host:port")
	// in its balancer: all its addresses, or the one address (an IP,
	// with or without a port) when address is not "". The error's text is
	// the message of Kong's 400 answer.
	SetHealth(upstream, target, address string, healthy bool) error
	// Sessions are the sessions in progress.
	Sessions() []Session
	// CloseSession ends the session with that id; false if there is none.
	CloseSession(id uint64) bool
	// Counters are the connection counters /status reports.
	Counters() Counters
	// Memory is /status's memory section in unit (b, k, m or g) with
	// scale decimals, as kong.node.get_memory_stats reports it; the error
	// is Kong's for a wrong unit or scale.
	Memory(unit string, scale int) (Memory, error)
}

// Memory is the memory of the shared dictionaries and Lua VMs. Sizes are
// numbers of bytes in unit b, else strings such as "5.00 MiB".
type Memory struct {
	WorkersLuaVMs  []LuaVMMemory         `json:"workers_lua_vms"`
	LuaSharedDicts map[string]DictMemory `json:"lua_shared_dicts"`
}

// LuaVMMemory is the memory of a process's Lua VMs.
type LuaVMMemory struct {
	AllocatedGC any `json:"http_allocated_gc"`
	PID         int `json:"pid"`
}

// DictMemory is an ngx.shared dictionary's memory: in use and capacity.
type DictMemory struct {
	AllocatedSlabs any `json:"allocated_slabs"`
	Capacity       any `json:"capacity"`
}

// Snapshot is one configuration of the node.
type Snapshot struct {
	Conf   *conf.Config
	Config *declarative.Config
	// Hash is Kong's configuration_hash: the MD5 of the declarative
	// configuration's text, or EmptyConfigHash when there is none.
	Hash string
}

// EmptyConfigHash is Kong's configuration hash of a node with no
// declarative configuration.
const EmptyConfigHash = "00000000000000000000000000000000"

// Plugin is a loaded plugin.
type Plugin struct {
	Name     string
	Version  string
	Priority int
	// Schema is the table its schema.lua returns, as JSON values
	// (functions left out).
	Schema map[string]any
}

// UpstreamHealth is the health of an upstream's addresses.
type UpstreamHealth struct {
	// Checked is false when the upstream has no health checks.
	Checked bool
	// Targets lists each target's resolved addresses, by target
	// ("host:port"); a target whose name did not resolve has none.
	Targets map[string][]Address
}

// Address is one resolved address of a target.
type Address struct {
	IP      string
	Port    int
	Weight  int
	Healthy bool
}

// Session is a session in progress, as GET /sessions lists it.
type Session struct {
	ID       uint64 `json:"id"`
	Protocol string `json:"protocol"` // tcp or udp
	// Route and Service are null until the session is routed.
	Route   *Ref   `json:"route"`
	Service *Ref   `json:"service"`
	Client  string `json:"client"` // ip:port, after a trusted PROXY header
	Server  string `json:"server"` // the listener's ip:port
	// Upstream is the peer connected to last, "" before the first attempt.
	Upstream string    `json:"upstream"`
	SNI      string    `json:"sni"`
	Started  time.Time `json:"-"`
	// BytesSent go to the client, BytesReceived come from it.
	BytesSent     int64 `json:"bytes_sent"`
	BytesReceived int64 `json:"bytes_received"`
}

// Ref names an entity a session uses.
type Ref struct {
	ID   string  `json:"id"`
	Name *string `json:"name"`
}

// Counters are the node's session counters.
type Counters struct {
	Accepted uint64 // sessions since start
	Active   int    // sessions in progress
	// LuaVMs are the current configuration's Lua VMs: live, idle, and
	// pinned (kept by a session between preread and log).
	LuaVMs, LuaVMsIdle, LuaVMsPinned int
}
