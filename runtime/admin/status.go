package admin

import (
	"net/http"
	"strconv"
)

// NewStatus returns the Status API (status_listen): GET /status, the same
// as the Admin API's, GET /status/ready, and the extra handlers, by
// ServeMux pattern.
func NewStatus(b Backend, extra map[string]http.Handler) http.Handler {
	a := &api{b: b}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", a.status)
	mux.HandleFunc("GET /status/ready", a.ready)
	for pattern, h := range extra {
		mux.Handle(pattern, h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { notFound(w) })
	return mux
}

// status answers GET /status as Kong does in DB-less mode: the memory of
// shared dictionaries and Lua VMs (in unit, by default MiB, with scale
// decimals), the server's connection counters and the configuration hash,
// and gong's own section: the Lua VM pool's counts.
// nginx's reading and waiting states do not exist in gong: every session
// in progress counts as writing.
func (a *api) status(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	unit, scale := "m", 2
	if u := q.Get("unit"); u != "" {
		unit = u
	}
	if n, err := strconv.Atoi(q.Get("scale")); err == nil {
		scale = n
	}
	mem, err := a.b.Memory(unit, scale)
	if err != nil {
		writeMessage(w, http.StatusBadRequest, err.Error())
		return
	}
	c := a.b.Counters()
	body := map[string]any{
		"memory": mem,
		"server": map[string]any{
			"connections_accepted": c.Accepted,
			"connections_handled":  c.Accepted,
			"connections_active":   c.Active,
			"connections_reading":  0,
			"connections_writing":  c.Active,
			"connections_waiting":  0,
			"total_requests":       c.Accepted,
		},
		"configuration_hash": a.b.Current().Hash,
		"gong": map[string]any{
			"lua_vms":        c.LuaVMs,
			"lua_vms_idle":   c.LuaVMsIdle,
			"lua_vms_pinned": c.LuaVMsPinned,
		},
	}
	if db, ok := a.b.(interface{ DatabaseReachable() (bool, bool) }); ok {
		if reachable, on := db.DatabaseReachable(); on {
			body["database"] = map[string]bool{"reachable": reachable}
		}
	}
	writeJSON(w, http.StatusOK, body)
}

// ready answers GET /status/ready as Kong does in DB-less mode: 200 once a
// declarative configuration is loaded, 503 while the configuration is
// empty.
func (a *api) ready(w http.ResponseWriter, r *http.Request) {
	if a.b.Current().Hash == EmptyConfigHash {
		writeMessage(w, http.StatusServiceUnavailable, "no configuration available (empty configuration present)")
		return
	}
	writeMessage(w, http.StatusOK, "ready")
}
