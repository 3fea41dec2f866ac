package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/gong-proxy/gong/lua"
	"github.com/gong-proxy/gong/pdk"
	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/telemetry"
)

// plugged is what a session's plugins see of it, for TCP connections and
// UDP sessions alike: it is their pdk.Session. They read its variables and
// serialized record, and may end it.
type plugged struct {
	s      *Server
	g      *generation
	sess   session
	local  netip.AddrPort // the listener address the client reached
	client netip.AddrPort // after a trusted PROXY header
	peer   netip.AddrPort // the peer as connected, before a PROXY header
	target *routeTarget   // the matched route, once routing is done

	trace   *telemetry.Trace // nil unless tracing is on and the session sampled
	counted bool             // among the active sessions of the metrics

	// The PDK's view of the session, the VM it keeps from preread to log
	// when its ctx tables hold values, and an exit.
	st         *pdk.State
	vm         *lua.VM
	exited     bool
	exitStatus int
	exitBody   []byte

	// The client stream preread handlers may read (ngx.req.socket): the
	// connection, the bytes already read from it, and the reader over both
	// once a handler asked for it.
	reqDown   net.Conn
	reqFirst  *bytes.Reader
	reqReader *bufio.Reader
}

// ReqSocket implements pdk.Downstream for TCP sessions in preread.
func (cx *plugged) ReqSocket() (net.Conn, *bufio.Reader) {
	if cx.reqDown == nil {
		return nil, nil
	}
	if cx.reqReader == nil {
		size := max(cx.g.conf.Stream.PrereadBufferSize, 16)
		cx.reqReader = bufio.NewReaderSize(io.MultiReader(cx.reqFirst, cx.reqDown), size)
	}
	return cx.reqDown, cx.reqReader
}

// unread returns what preread handlers left unconsumed of the client's
// stream, to be proxied first.
func (cx *plugged) unread(first []byte) []byte {
	if cx.reqReader == nil {
		return first
	}
	buffered, _ := cx.reqReader.Peek(cx.reqReader.Buffered())
	rest := make([]byte, 0, len(buffered)+cx.reqFirst.Len())
	rest = append(rest, buffered...)
	tail, _ := io.ReadAll(cx.reqFirst)
	cx.reqDown.SetReadDeadline(time.Time{})
	return append(rest, tail...)
}

// context is the ", client: ..., server: ..." tail nginx puts on log lines.
func (cx *plugged) context() string {
	return fmt.Sprintf(", client: %s, server: %s", cx.client.Addr(), cx.local)
}

// Var implements pdk.Session: the nginx stream variables of the access
// log, and those only plugins read: realip_remote_addr/port (the TCP
// peer, before a PROXY header), binary_remote_addr, nginx_version,
// ssl_preread_server_name and upstream_host (the host kong.service set,
// else the service's).
func (cx *plugged) Var(name string) (string, bool) {
	switch name {
	case "realip_remote_addr":
		return cx.peer.Addr().String(), true
	case "realip_remote_port":
		return strconv.Itoa(int(cx.peer.Port())), true
	case "binary_remote_addr":
		return string(cx.client.Addr().Unmap().AsSlice()), true
	case "nginx_version":
		return "1.27.1", true
	case "ssl_preread_server_name":
		return cx.sess.sni, cx.sess.sni != ""
	case "upstream_host":
		if cx.st != nil && cx.st.Upstream.Host != "" {
			return cx.st.Upstream.Host, true
		}
		if cx.target != nil && cx.target.service != nil {
			return cx.target.service.decl.Host, true
		}
		return "", true
	}
	f, ok := logVariables[name]
	if !ok {
		return "", false
	}
	return string(f(nil, &cx.sess)), true
}

// Protocol implements pdk.Session: the route's only protocol, else tls for
// a terminated connection, else tcp.
func (cx *plugged) Protocol() string {
	if cx.target == nil {
		return ""
	}
	if p := cx.target.route.Protocols; len(p) == 1 {
		return p[0]
	}
	if cx.sess.tls != nil {
		return "tls"
	}
	return "tcp"
}

// Exit implements pdk.Session: kong.response.exit and ngx.exit end the
// session with status, sending body first when there is one. Status 0
// only ends the preread phase.
func (cx *plugged) Exit(status int, body []byte) {
	cx.exitStatus, cx.exitBody, cx.exited = status, body, status != 0
}

// Entities implements pdk.Session: the matched route and its service.
func (cx *plugged) Entities() (route, service map[string]any) {
	if cx.target == nil {
		return nil, nil
	}
	if cx.target.service != nil {
		service = entityMap(cx.target.service.decl)
	}
	return entityMap(cx.target.route), service
}

// UpstreamExists implements pdk.Session.
func (cx *plugged) UpstreamExists(name string) bool {
	_, ok := cx.g.upstreams[name]
	return ok
}

// Status implements pdk.Session: the status once the session ended.
func (cx *plugged) Status() int { return cx.sess.status }

// Serialize implements pdk.Session: Kong's stream log record
// (kong/pdk/log.lua serialize, stream branch).
func (cx *plugged) Serialize() map[string]any {
	s := &cx.sess
	end := s.end
	if end.IsZero() {
		end = time.Now()
	}
	rec := map[string]any{
		"session": map[string]any{
			"received":    s.bytesReceived,
			"sent":        s.bytesSent,
			"status":      s.status,
			"server_port": int(cx.g.destination(cx.local).Port()),
		},
		"upstream": map[string]any{
			"received": s.upstreamBytesRecv,
			"sent":     s.upstreamBytesSent,
		},
		"latencies": map[string]any{
			"kong":    0,
			"session": end.Sub(s.start).Milliseconds(),
		},
		"client_ip":  cx.client.Addr().String(),
		"started_at": s.start.UnixMilli(),
		"workspace":  "0dc6f45b-8f8d-40d2-a504-473544ee190b",
		"tries":      cx.tries(),
	}
	if len(s.upstreamConnectTimes) > 0 {
		rec["latencies"].(map[string]any)["kong"] = s.upstreamConnectTimes[len(s.upstreamConnectTimes)-1].Milliseconds()
	}
	if s.tls != nil {
		rec["session"].(map[string]any)["tls"] = map[string]any{
			"version":       logVariables["ssl_protocol"](nil, s),
			"cipher":        logVariables["ssl_cipher"](nil, s),
			"client_verify": clientIdentity(s).Verify,
		}
	}
	if route, service := cx.Entities(); route != nil {
		rec["route"] = route
		if service != nil {
			rec["service"] = service
		}
	}
	return rec
}

// balancerTry is one pick of the balancer: when it began, how long it
// took, and the host name the peer stands for (the target's, or the
// service's host).
type balancerTry struct {
	start   time.Time
	latency time.Duration
	host    string
}

// tried records a connect attempt to peer.
func (s *session) tried(peer string, t balancerTry) {
	s.upstreamAddrs = append(s.upstreamAddrs, peer)
	s.balancerTries = append(s.balancerTries, t)
}

// tries is balancer_data.tries: one entry per connect attempt.
func (cx *plugged) tries() []pdk.BalancerTry {
	s := &cx.sess
	out := make([]pdk.BalancerTry, len(s.upstreamAddrs))
	for i, addr := range s.upstreamAddrs {
		ip, port := splitHostPort(addr)
		b := s.balancerTries[i]
		out[i] = pdk.BalancerTry{IP: ip, Port: port, Start: b.start, Latency: b.latency, Retried: i < len(out)-1}
	}
	return out
}

// balancerData is ngx.ctx.balancer_data: the service's host, port,
// retries and timeouts as kong.service changed them in preread (Kong's
// defaults without a service), and once the balancer ran, its tries and
// the last peer. nil when no route matched.
func (cx *plugged) balancerData() *pdk.BalancerData {
	if cx.target == nil {
		return nil
	}
	d := &pdk.BalancerData{Retries: 5, ConnectTimeout: 60000, SendTimeout: 60000, ReadTimeout: 60000, Tries: cx.tries()}
	if svc := cx.target.service; svc != nil {
		d.Host, d.Port = svc.decl.Host, svc.decl.Port
		if cx.st != nil {
			switch ch := cx.st.Upstream; {
			case ch.Upstream != "":
				d.Host = ch.Upstream
			case ch.Host != "":
				d.Host, d.Port = ch.Host, ch.Port
			}
		}
		d.Scheme, d.Type = svc.decl.Protocol, declarative.HostnameType(d.Host)
		d.Retries, d.ConnectTimeout = svc.decl.Retries, svc.decl.ConnectTimeout
		d.SendTimeout, d.ReadTimeout = svc.decl.WriteTimeout, svc.decl.ReadTimeout
	}
	if n := len(d.Tries); n > 0 {
		last := d.Tries[n-1]
		d.IP, d.Port, d.Hostname = last.IP, last.Port, cx.sess.balancerTries[n-1].host
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

// runPlugins runs one phase of the session's plugins. The VM a phase
// borrows goes back to the pool afterwards, unless the plugins left
// values in kong.ctx or ngx.ctx: then the session keeps it until its log
// phase (design.md "Lua VMs"). It reports a handler error, logged here.
func (cx *plugged) runPlugins(phase pdk.Phase, runs []pluginRun) error {
	ps := cx.g.plugins
	vm := cx.vm
	if vm == nil {
		ctx, cancel := context.WithTimeout(context.Background(), phaseTimeout)
		var err error
		vm, err = ps.pool.Get(ctx)
		cancel()
		if err != nil {
			cx.s.log.logf(LevelError, cx.sess.id, "no Lua VM for the %s phase: %v%s", phase, err, cx.context())
			return err
		}
	}
	if cx.st == nil {
		cx.st = &pdk.State{Session: cx}
	}
	if d := cx.balancerData(); d != nil {
		cx.st.SetBalancerData(vm.L, *d)
	}
	err := ps.run(vm, cx.st, phase, runs, func() bool { return cx.exited }, cx.trace)
	if err != nil {
		cx.s.log.logf(LevelError, cx.sess.id, "%v%s", err, cx.context())
	}
	cx.vm = nil
	if phase == pdk.PhasePreread {
		cx.st.DropBalancerData()
	}
	switch {
	case err != nil && isVMFailure(err):
		ps.pool.Discard(vm)
	case phase == pdk.PhasePreread && !cx.st.CtxEmpty():
		cx.vm = vm
	default:
		ps.pool.Put(vm)
	}
	return err
}

// service is the service the session connects to: the route's, with
// what preread plugins changed through kong.service (another target or
// upstream, upstream TLS settings) applied to a copy.
func (cx *plugged) service(svc *service) *service {
	if cx.st == nil || cx.st.Upstream == (pdk.UpstreamChange{}) {
		return svc
	}
	ch := cx.st.Upstream
	c := *svc
	switch {
	case ch.Upstream != "":
		c.peers = cx.g.upstreams[ch.Upstream]
	case ch.Host != "":
		if up, ok := cx.g.upstreams[ch.Host]; ok {
			c.peers = up
		} else {
			c.peers = &hostPeers{host: ch.Host, port: ch.Port, resolver: cx.g.resolver}
		}
	}
	if c.tls != nil && (ch.TLSVerify != nil || ch.TLSVerifyDepth != nil || ch.TLSClientCert != nil || ch.TLSRoots != nil) {
		t := *c.tls
		if ch.TLSVerify != nil {
			t.verify = *ch.TLSVerify
		}
		if ch.TLSVerifyDepth != nil {
			t.depth = *ch.TLSVerifyDepth
		}
		if ch.TLSClientCert != nil {
			t.clientCert = ch.TLSClientCert
		}
		if ch.TLSRoots != nil {
			t.roots = ch.TLSRoots
		}
		c.tls = &t
	}
	if ch.DisableTLS {
		c.tls = nil
	}
	return &c
}

// preread runs the route's preread handlers; done reports that the
// session ended there (an exit, or an error: status 500 as in Kong).
func (cx *plugged) preread(target *routeTarget, down io.Writer) (status int, done bool) {
	if err := cx.runPlugins(pdk.PhasePreread, target.preread); err != nil {
		return statusInternalError, true
	}
	if !cx.exited {
		return 0, false
	}
	if len(cx.exitBody) > 0 {
		if n, err := down.Write(cx.exitBody); err == nil {
			cx.sess.bytesSent += int64(n)
		}
	}
	return cx.exitStatus, true
}

// logPhase runs the log handlers of the plugins that saw the session, or
// the global ones when no route matched.
func (cx *plugged) logPhase() {
	defer func() { cx.st.End() }() // what plugins held for the session (limit-conn's count)
	runs := cx.g.globalLog
	if cx.target != nil {
		runs = cx.target.log
	}
	if len(runs) > 0 {
		cx.runPlugins(pdk.PhaseLog, runs)
	} else if cx.vm != nil {
		cx.g.plugins.pool.Put(cx.vm)
		cx.vm = nil
	}
}
