package pdk

// LogRecord is Kong's stream log record (kong/pdk/log.lua serialize,
// stream branch) as a Session fills it. It is typed rather than a map so
// that gong.log_record writes its JSON without building one per session
// (logrecord.go); Map gives the map kong.log.serialize turns into Lua
// tables.
type LogRecord struct {
	// session.received, session.sent: bytes from and to the client.
	Received, Sent int64
	// session.status and session.server_port.
	Status, ServerPort int
	// session.tls, nil without terminated TLS.
	TLS *RecordTLS
	// upstream.received, upstream.sent: bytes from and to the upstream.
	UpstreamReceived, UpstreamSent int64
	// latencies.kong and latencies.session, in milliseconds.
	KongLatency, SessionLatency int64
	ClientIP                    string
	// started_at: the session's start, in Unix milliseconds.
	StartedAt int64
	Tries     []BalancerTry
	// route and service as Session.Entities returns them: nil when none.
	Route, Service map[string]any
}

// RecordTLS is session.tls.
type RecordTLS struct {
	Version, Cipher, ClientVerify string
}

// defaultWorkspace is the id of Kong CE's one workspace, the record's
// workspace.
const defaultWorkspace = "0dc6f45b-8f8d-40d2-a504-473544ee190b"

// Map is r as the map toLua converts: the members Kong's serializer
// writes, with route and service only when there are. A nil record is an
// empty map.
func (r *LogRecord) Map() map[string]any {
	if r == nil {
		return map[string]any{}
	}
	session := map[string]any{"received": r.Received, "sent": r.Sent, "status": r.Status, "server_port": r.ServerPort}
	if r.TLS != nil {
		session["tls"] = map[string]any{"version": r.TLS.Version, "cipher": r.TLS.Cipher, "client_verify": r.TLS.ClientVerify}
	}
	m := map[string]any{
		"session":    session,
		"upstream":   map[string]any{"received": r.UpstreamReceived, "sent": r.UpstreamSent},
		"latencies":  map[string]any{"kong": r.KongLatency, "session": r.SessionLatency},
		"client_ip":  r.ClientIP,
		"started_at": r.StartedAt,
		"workspace":  defaultWorkspace,
		"tries":      r.Tries,
	}
	if r.Route != nil {
		m["route"] = r.Route
		if r.Service != nil {
			m["service"] = r.Service
		}
	}
	return m
}
