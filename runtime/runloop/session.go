package runloop

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/gong-proxy/gong/lua"
	"github.com/gong-proxy/gong/pdk"
	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/errlog"
	"github.com/gong-proxy/gong/runtime/stream"
)

var (
	_ pdk.Session    = (*session)(nil)
	_ pdk.Downstream = (*session)(nil)
	_ pdk.EntityIDs  = (*session)(nil)
	_ pdk.Logger     = pluginLog{}
)

// session is a stream session as its plugins see it (their pdk.Session),
// kept in the session's HookData from preread to log: the PDK's state,
// the VM it keeps when its ctx tables hold values, and an exit.
type session struct {
	s          *stream.Session
	ps         *Plugins
	st         *pdk.State
	vm         *lua.VM
	pinned     bool // vm holds a pin (carry.go)
	exited     bool
	exitStatus int
	exitBody   []byte
}

// sessionOf is the plugins' view of s, made on its first phase.
func sessionOf(s *stream.Session, ps *Plugins) *session {
	if cx, ok := s.HookData.(*session); ok {
		return cx
	}
	cx := &session{s: s, ps: ps}
	cx.st = &pdk.State{Session: cx, Timing: pdk.Timing{Start: s.Record().Start}}
	s.HookData = cx
	return cx
}

// ReqSocket implements pdk.Downstream: the client's stream in preread.
func (cx *session) ReqSocket() (net.Conn, *bufio.Reader) { return cx.s.ClientStream() }

// Var implements pdk.Session: the session's nginx stream variables, and
// upstream_host (the host kong.service set, else the service's).
func (cx *session) Var(name string) (string, bool) {
	if name == "upstream_host" {
		if cx.st.Upstream.Host != "" {
			return cx.st.Upstream.Host, true
		}
		if r := cx.s.Route(); r != nil && r.Service != nil {
			return r.Service.Decl.Host, true
		}
		return "", true
	}
	return cx.s.Var(name)
}

// Protocol implements pdk.Session: the route's only protocol, else tls for
// a terminated connection, else tcp.
func (cx *session) Protocol() string {
	r := cx.s.Route()
	if r == nil {
		return ""
	}
	if p := r.Decl.Protocols; len(p) == 1 {
		return p[0]
	}
	if cx.s.Record().TLS != nil {
		return "tls"
	}
	return "tcp"
}

// Exit implements pdk.Session: kong.response.exit and ngx.exit end the
// session with status, sending body first when there is one. Status 0
// only ends the preread phase.
func (cx *session) Exit(status int, body []byte) {
	cx.exitStatus, cx.exitBody, cx.exited = status, body, status != 0
}

// Entities implements pdk.Session: the matched route and its service,
// as Bind made them for the generation (callers only read them); no
// service when the route has no usable one.
func (cx *session) Entities() (route, service map[string]any) {
	r := cx.s.Route()
	if r == nil {
		return nil, nil
	}
	runs := cx.ps.routes[r.Decl.ID]
	if r.Service != nil {
		service = runs.service
	}
	return runs.route, service
}

// IDs implements pdk.EntityIDs.
func (cx *session) IDs() (routeID, serviceID string, hasService bool) {
	r := cx.s.Route()
	if r == nil {
		return "", "", false
	}
	if r.Service != nil {
		serviceID, hasService = r.Service.Decl.ID, true
	}
	return r.Decl.ID, serviceID, hasService
}

// UpstreamExists implements pdk.Session.
func (cx *session) UpstreamExists(name string) bool { return cx.s.Config().HasUpstream(name) }

// Status implements pdk.Session: the status once the session ended.
func (cx *session) Status() int { return cx.s.Record().Status }

// Serialize implements pdk.Session: Kong's stream log record
// (kong/pdk/log.lua serialize, stream branch).
func (cx *session) Serialize() *pdk.LogRecord {
	s := cx.s.Record()
	end := s.End
	if end.IsZero() {
		end = time.Now()
	}
	rec := &pdk.LogRecord{
		Received:         s.BytesReceived,
		Sent:             s.BytesSent,
		Status:           s.Status,
		ServerPort:       int(cx.s.Config().Destination(cx.s.Local()).Port()),
		UpstreamReceived: s.UpstreamBytesRecv,
		UpstreamSent:     s.UpstreamBytesSent,
		SessionLatency:   end.Sub(s.Start).Milliseconds(),
		ClientIP:         cx.s.Client().Addr().String(),
		StartedAt:        s.Start.UnixMilli(),
		Tries:            cx.tries(),
	}
	if len(s.UpstreamConnectTimes) > 0 {
		rec.KongLatency = s.UpstreamConnectTimes[len(s.UpstreamConnectTimes)-1].Milliseconds()
	}
	if s.TLS != nil {
		rec.TLS = &pdk.RecordTLS{
			Version:      stream.ClientTLSVersion(s),
			Cipher:       stream.ClientTLSCipher(s),
			ClientVerify: stream.ClientIdentity(s).Verify,
		}
	}
	if route, service := cx.Entities(); route != nil {
		rec.Route = route
		if service != nil {
			rec.Service = service
		}
	}
	return rec
}

// tries is balancer_data.tries: one entry per connect attempt.
func (cx *session) tries() []pdk.BalancerTry {
	tries := cx.s.Record().Tries
	out := make([]pdk.BalancerTry, len(tries))
	for i, t := range tries {
		ip, port := splitHostPort(t.Addr)
		out[i] = pdk.BalancerTry{IP: ip, Port: port, Start: t.Start, Latency: t.Latency, Retried: i < len(out)-1}
	}
	return out
}

// balancerData is ngx.ctx.balancer_data: the service's host, port,
// retries and timeouts as kong.service changed them in preread (Kong's
// defaults without a service), and once the balancer ran, its tries and
// the last peer. nil when no route matched.
func (cx *session) balancerData() *pdk.BalancerData {
	r := cx.s.Route()
	if r == nil {
		return nil
	}
	d := &pdk.BalancerData{Retries: 5, ConnectTimeout: 60000, SendTimeout: 60000, ReadTimeout: 60000, Tries: cx.tries()}
	if svc := r.Service; svc != nil {
		d.Host, d.Port = svc.Decl.Host, svc.Decl.Port
		switch ch := cx.st.Upstream; {
		case ch.Upstream != "":
			d.Host = ch.Upstream
		case ch.Host != "":
			d.Host, d.Port = ch.Host, ch.Port
		}
		d.Scheme, d.Type = svc.Decl.Protocol, declarative.HostnameType(d.Host)
		d.Retries, d.ConnectTimeout = svc.Decl.Retries, svc.Decl.ConnectTimeout
		d.SendTimeout, d.ReadTimeout = svc.Decl.WriteTimeout, svc.Decl.ReadTimeout
	}
	if n := len(d.Tries); n > 0 {
		last := d.Tries[n-1]
		d.IP, d.Port, d.Hostname = last.IP, last.Port, cx.s.Record().Tries[n-1].Host
		if d.Hostname == "" { // an IP target has no name
			d.Hostname = last.IP
		}
	}
	return d
}

func splitHostPort(addr string) (string, int) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			p, _ := strconv.Atoi(addr[i+1:])
			h := addr[:i]
			if len(h) > 1 && h[0] == '[' {
				h = h[1 : len(h)-1]
			}
			return h, p
		}
	}
	return addr, 0
}

// entityMap is an entity as plugins see it: its JSON fields.
func entityMap(v any) map[string]any {
	var m map[string]any
	data, err := json.Marshal(v)
	if err == nil {
		json.Unmarshal(data, &m)
	}
	return m
}

// pluginLog is the error log as the PDK's Logger: kong.log and ngx.log
// lines at their nginx level.
type pluginLog struct{ l *slog.Logger }

func (p pluginLog) Log(level pdk.LogLevel, line string) {
	p.l.Log(context.Background(), errlog.NginxLevel(int(level)), line)
}
