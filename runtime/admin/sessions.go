package admin

import (
	"cmp"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// listSessions answers GET /sessions, a gong extension: the sessions in
// progress, oldest first, with Kong's pagination. Query filters: route and
// service (id or name), client and upstream (an IP, or IP:port), protocol
// (tcp or udp).
func (a *api) listSessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now := time.Now()
	sessions := a.b.Sessions()
	slices.SortFunc(sessions, func(x, y Session) int { return cmp.Compare(x.ID, y.ID) })
	var items []any
	for _, s := range sessions {
		if !matchRef(s.Route, q.Get("route")) || !matchRef(s.Service, q.Get("service")) ||
			!matchAddr(s.Client, q.Get("client")) || !matchAddr(s.Upstream, q.Get("upstream")) ||
			q.Get("protocol") != "" && q.Get("protocol") != s.Protocol {
			continue
		}
		items = append(items, sessionJSON{Session: s, StartedAt: s.Started.UnixMilli(),
			Age: now.Sub(s.Started).Seconds()})
	}
	writePage(w, r, items, make([][]string, len(items)))
}

// sessionJSON is a session with its start (Unix milliseconds) and age
// (seconds).
type sessionJSON struct {
	Session
	StartedAt int64   `json:"started_at"`
	Age       float64 `json:"age"`
}

func matchRef(ref *Ref, want string) bool {
	if want == "" {
		return true
	}
	return ref != nil && (ref.ID == want || ref.Name != nil && *ref.Name == want)
}

// matchAddr matches an ip:port address against an IP or an ip:port.
func matchAddr(addr, want string) bool {
	if want == "" {
		return true
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return false
	}
	if ip, err := netip.ParseAddr(want); err == nil {
		return ap.Addr().Unmap() == ip.Unmap()
	}
	wap, err := netip.ParseAddrPort(want)
	return err == nil && ap.Addr().Unmap() == wap.Addr().Unmap() && ap.Port() == wap.Port()
}

// closeSession answers DELETE /sessions/{id}: the session ends at once,
// both sockets closed, and the answer is 204, as Kong answers a deletion.
func (a *api) closeSession(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || !a.b.CloseSession(id) {
		notFound(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
