package runloop

import (
	"context"
	"fmt"

	"github.com/gong-proxy/gong/pdk"
	"github.com/gong-proxy/gong/runtime/stream"
)

// The bundled rate-limiting and limit-conn plugins count every new
// session, so their preread runs in Go when gong's own modules serve them
// (lua/lib/kong/plugins): no Lua VM is borrowed for a route whose preread
// plugins are all native, and a native plugin ahead of Lua ones runs
// before the VM is borrowed. It does what their handler.lua does, through
// the same stores (runtime/limits), keys and refusals. A plugin's modules
// found on lua_package_path run in Lua, as any plugin does.

// nativeHandlers are the plugins with a Go preread, by name: each makes a
// plugin instance's run from its configuration.
var nativeHandlers = map[string]func(conf map[string]any) nativeRun{
	"rate-limiting": func(conf map[string]any) nativeRun {
		var windows []pdk.Limit
		for _, p := range []string{"second", "minute", "hour", "day", "month", "year"} {
			if n, ok := conf[p].(float64); ok {
				windows = append(windows, pdk.Limit{Period: p, Max: int64(n)})
			}
		}
		return nativeRun{count: func(ctx context.Context, s pdk.CounterStore, _ *pdk.State, key string) (bool, error) {
			full, err := s.Hit(ctx, key, windows)
			return full == "", err
		}}
	},
	"limit-conn": func(conf map[string]any) nativeRun {
		max, _ := conf["max_connections"].(float64)
		return nativeRun{count: func(ctx context.Context, s pdk.CounterStore, st *pdk.State, key string) (bool, error) {
			release, ok, err := s.Acquire(ctx, key, int64(max))
			if ok {
				st.OnEnd(release)
			}
			return ok || err != nil, err
		}}
	},
}

// emptyUUID stands for a missing plugin, service or route id in a key, as
// in gong/limit_by.lua.
const emptyUUID = "00000000-0000-0000-0000-000000000000"

// nativeRun is one limit plugin instance as it runs in Go.
type nativeRun struct {
	plugin, id    string
	store         pdk.CounterStore // nil: the store could not be made (logged at Bind)
	limitBy       string
	faultTolerant bool
	errorCode     int
	refused       func(plugin, route, reason string) // gong_limit_refusals_total
	// count counts the session under key; admitted is false when the
	// limit refuses it, err a store failure.
	count func(ctx context.Context, s pdk.CounterStore, st *pdk.State, key string) (admitted bool, err error)
}

// natives are the leading runs of a route's preread that run in Go, one
// per plugin instance (natives caches them by plugin id for Bind), and
// the rest, which run in Lua.
func (ps *Plugins) natives(runs []pluginRun, made map[string]*nativeRun) ([]*nativeRun, []pluginRun) {
	if ps.counters == nil {
		return nil, runs
	}
	var out []*nativeRun
	for len(runs) > 0 && ps.native[runs[0].name] {
		r := runs[0]
		n := made[r.id]
		if n == nil {
			n = ps.newNative(r)
			made[r.id] = n
		}
		out = append(out, n)
		runs = runs[1:]
	}
	return out, runs
}

// It reads the config the instance has when the route is first bound; a
// secret the vault rotator replaces later reaches it on the next reload.
func (ps *Plugins) newNative(r pluginRun) *nativeRun {
	conf := r.conf.cur.Load().conf
	n := nativeHandlers[r.name](conf)
	n.plugin, n.id = r.name, r.id
	n.limitBy, _ = conf["limit_by"].(string)
	n.faultTolerant, _ = conf["fault_tolerant"].(bool)
	code, _ := conf["error_code"].(float64)
	n.errorCode = int(code)
	n.refused = ps.counters.Refused
	s, err := ps.counters.Store(conf)
	if err != nil {
		if ps.log != nil {
			ps.log.Log(pdk.LevelErr, fmt.Sprintf("[%s] no counter store: %v", r.name, err))
		}
	} else {
		n.store = s
	}
	return &n
}

// preread counts the session; a refusal's status is returned with done.
// fault_tolerant lets the session through a store failure (the store
// logs it), else it ends with 500, as the Lua handlers do. Every store
// bounds its own calls (redis.timeout, pg_timeout), so no deadline is
// added here.
func (n *nativeRun) preread(cx *session) (status int, done bool) {
	if n.store != nil {
		ok, err := n.count(context.Background(), n.store, cx.st, n.key(cx))
		switch {
		case err == nil && ok:
			return 0, false
		case err == nil:
			return n.refuse(cx.s, n.errorCode, "limit")
		}
	}
	if n.faultTolerant {
		return 0, false
	}
	return n.refuse(cx.s, stream.StatusInternalError, "store_error")
}

func (n *nativeRun) refuse(s *stream.Session, status int, reason string) (int, bool) {
	route := ""
	if r := s.Route(); r != nil {
		route = r.Name
	}
	n.refused(n.plugin, route, reason)
	return status, true
}

// key is what the session counts under, as gong/limit_by.lua's key: the
// plugin instance, then the client address, the matched service's or
// route's id, the TLS server name, or nothing (global).
func (n *nativeRun) key(cx *session) string {
	id := n.id
	if id == "" {
		id = emptyUUID
	}
	var by string
	switch n.limitBy {
	case "service", "route":
		route, service, _ := cx.IDs()
		if by = route; n.limitBy == "service" {
			by = service
		}
		if by == "" {
			by = emptyUUID
		}
	case "sni":
		by, _ = cx.s.Var("ssl_preread_server_name")
	case "global":
	default: // the forwarded client, as limit_by.lua's key
		by, _ = cx.s.Var("remote_addr")
	}
	return id + ":" + by
}
