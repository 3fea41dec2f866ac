package admin

import (
	"net/http"
	"slices"
)

// Health states, as Kong names them.
const (
	healthy         = "HEALTHY"
	unhealthy       = "UNHEALTHY"
	healthchecksOff = "HEALTHCHECKS_OFF"
	dnsError        = "DNS_ERROR"
)

// health answers GET /upstreams/{key}/health: each target with its
// addresses and their health, with Kong's pagination; with
// balancer_health=1, the upstream's own health.
func (a *api) health(w http.ResponseWriter, r *http.Request) {
	ix := a.idx.get(a.b.Current().Config)
	u := ix.find("upstreams", r.PathValue("key"))
	if u == nil {
		notFound(w)
		return
	}
	name, _ := u.body["name"].(string)
	h, _ := a.b.Health(name)
	targetHealth := func(addrs []Address) string {
		switch {
		case !h.Checked:
			return healthchecksOff
		case len(addrs) == 0:
			return dnsError
		case slices.ContainsFunc(addrs, func(a Address) bool { return a.Healthy }):
			return healthy
		}
		return unhealthy
	}
	if truthy(r.URL.Query().Get("balancer_health")) {
		var all []Address
		for _, addrs := range h.Targets {
			all = append(all, addrs...)
		}
		state := targetHealth(all)
		if state == dnsError {
			state = unhealthy
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"id": u.id, "health": state}, "next": nil, "node_id": a.opts.Node.ID})
		return
	}
	var items []any
	var tags [][]string
	for _, t := range ix.list["targets"] {
		if t.refs["upstream"] != u.id {
			continue
		}
		target, _ := t.body["target"].(string)
		addrs := h.Targets[target]
		list := []map[string]any{}
		for _, ad := range addrs {
			state := healthchecksOff
			if h.Checked {
				state = unhealthy
				if ad.Healthy {
					state = healthy
				}
			}
			list = append(list, map[string]any{"ip": ad.IP, "port": ad.Port, "weight": ad.Weight, "health": state})
		}
		item := map[string]any{}
		for k, v := range t.body {
			item[k] = v
		}
		item["health"] = targetHealth(addrs)
		item["data"] = map[string]any{"addresses": list}
		items = append(items, item)
		tags = append(tags, t.tags)
	}
	writePage(w, r, items, tags)
}

// setHealth answers PUT /upstreams/{key}/targets/{target}[/{address}]/healthy
// or /unhealthy: the target (by id or "host:port") of that upstream gets
// the health in the balancer until health checks change it, 204.
func (a *api) setHealth(healthy bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ix := a.idx.get(a.b.Current().Config)
		u := ix.find("upstreams", r.PathValue("key"))
		if u == nil {
			notFound(w)
			return
		}
		key := r.PathValue("target")
		var target string
		for _, t := range ix.list["targets"] {
			name, _ := t.body["target"].(string)
			if t.refs["upstream"] == u.id && (t.id == key || name == key) {
				target = name
				break
			}
		}
		if target == "" {
			notFound(w)
			return
		}
		name, _ := u.body["name"].(string)
		if err := a.b.SetHealth(name, target, r.PathValue("address"), healthy); err != nil {
			writeMessage(w, http.StatusBadRequest, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
