package admin

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gong-proxy/gong/runtime/conf"
)

// root answers GET /: the node, its plugins and its configuration, in
// Kong's shape.
func (a *api) root(w http.ResponseWriter, r *http.Request) {
	snap := a.b.Current()
	available := map[string]any{}
	for _, p := range a.b.Plugins() {
		available[p.Name] = map[string]any{"version": p.Version, "priority": p.Priority}
	}
	enabled := []string{}
	for _, p := range snap.Config.Plugins {
		if !slices.Contains(enabled, p.Name) {
			enabled = append(enabled, p.Name)
		}
	}
	n := a.opts.Node
	writeJSON(w, http.StatusOK, map[string]any{
		"tagline":     "Welcome to kong",
		"version":     n.Version,
		"edition":     "community",
		"hostname":    n.Hostname,
		"node_id":     n.ID,
		"lua_version": n.LuaVersion,
		"timers":      map[string]int{"running": 0, "pending": 0},
		"pids":        map[string]any{"master": n.PID, "workers": []int{n.PID}},
		"plugins": map[string]any{
			"available_on_server": available,
			"enabled_in_cluster":  enabled,
		},
		"configuration": configuration(snap.Conf),
	})
}

// configuration is kong.conf as GET / shows it: every property as
// resolved, secrets hidden, and the listeners parsed as Kong lists them.
func configuration(c *conf.Config) map[string]any {
	out := map[string]any{}
	for _, k := range c.Keys() {
		v, _ := c.Get(k)
		if conf.Sensitive(k) {
			v = conf.SensitivePlaceholder
		}
		out[k] = v
	}
	out["stream_listeners"] = listeners(c.StreamListeners)
	out["admin_listeners"] = listeners(c.AdminListeners)
	out["status_listeners"] = listeners(c.StatusListeners)
	out["stream_proxy_ssl_enabled"] = slices.ContainsFunc(c.StreamListeners, func(l conf.Listener) bool { return l.SSL })
	out["admin_ssl_enabled"] = slices.ContainsFunc(c.AdminListeners, func(l conf.Listener) bool { return l.SSL })
	return out
}

// listeners renders parsed *_listen entries as Kong's *_listeners.
func listeners(ls []conf.Listener) []map[string]any {
	out := []map[string]any{}
	for _, l := range ls {
		m := map[string]any{
			"listener": l.Listener, "ip": strings.Trim(l.Host, "[]"), "port": l.Port,
			"ssl": l.SSL, "http2": l.HTTP2, "udp": l.UDP, "proxy_protocol": l.ProxyProtocol,
			"deferred": l.Deferred, "bind": l.Bind, "reuseport": l.ReusePort,
		}
		if l.Backlog > 0 {
			m["backlog="+strconv.Itoa(l.Backlog)] = true
		}
		out = append(out, m)
	}
	return out
}
