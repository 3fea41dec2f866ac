package stream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gong-proxy/gong/runtime/errlog"
	"github.com/gong-proxy/gong/runtime/telemetry"
)

// Session statuses, as Kong's stream sessions report them.
const (
	StatusOK                 = 200
	StatusBadRequest         = 400
	StatusInternalError      = 500
	StatusBadGateway         = 502
	StatusServiceUnavailable = 503
)

// Session is one TCP connection (plain or TLS) or one UDP client's
// datagram exchange, from accept (or first datagram) to its log line. Its
// goroutine routes, runs the preread hook and dials; then the relay (TCP)
// or the upstream reader (UDP) runs it until it ends, once, in end.
//
// Close may come at any time (Engine.Stop, the Admin API), hence mu.
type Session struct {
	e      *Engine
	cfg    *Config
	udp    bool
	local  netip.AddrPort // the listener address the client reached
	client netip.AddrPort // after a trusted PROXY header
	peer   netip.AddrPort // the peer as connected, before a PROXY header
	route  *Route         // the matched route, once routing is done
	trace  *telemetry.Trace
	// counted is set once the session is among the active ones of the
	// metrics.
	counted bool
	rec     Record
	// caps holds the session's place under its listener's caps, given
	// back when it ends.
	caps *listenerCaps

	// HookData is what the hooks keep for the session from one phase to
	// the next; the engine never reads it.
	HookData any
	// change is what the preread hook changed of the service (SetService).
	change ServiceChange
	// meters pace the relay's directions (SetMeters); nil: unpaced.
	meters [2]Meter

	// The client side. TCP: down is the socket, client the stream bytes
	// are relayed from (down or its TLS layer) and first the bytes read
	// past a PROXY header or ClientHello, proxied first; reader is the
	// stream preread hooks read through (ClientStream). UDP: pc is the
	// listener answering the client, table its sessions.
	down   *net.TCPConn
	stream net.Conn
	first  []byte
	firstR *bytes.Reader
	reader *bufio.Reader
	pc     *net.UDPConn
	table  *udpTable
	// pending are a UDP client's datagrams waiting, in order, for the
	// session's upstream (nil once it is connected); the table's lock
	// guards them.
	pending [][]byte

	// svc and att are the service dialed and the record of its attempts,
	// released when the session ends (least-connections counts, latency).
	svc *Service
	att *attempts

	// UDP only: the idle timeout, the time of the last datagram either
	// way, of the upstream's first, and the bytes each way.
	idle           time.Duration
	last, firstUp  atomic.Int64
	received, sent atomic.Int64

	// mu guards up, relay and closed, which Close reads, and the facts
	// Info reads while the session runs: client, route, sni and the
	// upstream addresses. The session's goroutine writes them under mu.
	mu    sync.Mutex
	up    net.Conn
	relay *relay
	// udpReader relays a UDP session's replies once it is set up.
	udpReader *udpReader
	sni       string // the SNI the session was routed on
	closed    bool

	// ssl is set for sessions on an ssl listener, whose idle timeout
	// nginx_sproxy_proxy_timeout caps.
	ssl bool
	// refused is set for a TCP session the preread hook ended, which is
	// closed gracefully (see closeRefused).
	refused bool

	// lc is the state of a session an event loop serves (loop_linux.go)
	// on raw sockets: down, stream, up and relay stay nil. It is set
	// before the session is tracked; a session that leaves the loop
	// (loopConn.leave) clears it under mu.
	lc *loopConn
}

// newSession starts the record of a session accepted on local from peer.
func (e *Engine) newSession(cfg *Config, udp bool, local, peer netip.AddrPort) *Session {
	s := &Session{e: e, cfg: cfg, udp: udp, local: local, client: peer, peer: peer}
	protocol := "TCP"
	if udp {
		protocol = "UDP"
	}
	s.rec = Record{ID: e.nextID.Add(1), Protocol: protocol, Start: time.Now(), Server: local}
	return s
}

// ID is the session's number, nginx's $connection.
func (s *Session) ID() uint64 { return s.rec.ID }

// UDP reports a UDP session.
func (s *Session) UDP() bool { return s.udp }

// Config is the configuration the session started with.
func (s *Session) Config() *Config { return s.cfg }

// Local is the listener address the client reached.
func (s *Session) Local() netip.AddrPort { return s.local }

// Client is the client's address: a trusted PROXY header's source, else
// the peer's.
func (s *Session) Client() netip.AddrPort { return s.client }

// Peer is the address the connection came from, before a PROXY header.
func (s *Session) Peer() netip.AddrPort { return s.peer }

// Route is the matched route; nil before routing or when none matched.
func (s *Session) Route() *Route { return s.route }

// Trace is the session's trace; nil unless tracing is on and the session
// was sampled.
func (s *Session) Trace() *telemetry.Trace { return s.trace }

// Record is what the session leaves for the access log and the log hook.
// The session's goroutine writes it; hooks read it from that goroutine.
func (s *Session) Record() *Record { return &s.rec }

// Log writes an error-log line about the session: its number, then msg,
// then the client and server addresses and attrs, as nginx adds a
// connection's context.
func (s *Session) Log(level slog.Level, msg string, attrs ...any) {
	ctx := context.Background()
	if !s.e.log.Enabled(ctx, level) {
		return
	}
	s.e.log.Log(ctx, level, msg, append([]any{errlog.Conn(s.rec.ID), "client", s.client.Addr(), "server", s.local}, attrs...)...)
}

// SetService records what a preread hook changed of the route's service
// (kong.service): the next dial applies it.
func (s *Session) SetService(ch ServiceChange) { s.change = ch }

// SetMeters paces the session's relay, as a preread hook asks: down the
// bytes to the client, up those from it. A nil Meter leaves its
// direction unpaced (spliced where it can be).
func (s *Session) SetMeters(down, up Meter) {
	s.meters[toClient], s.meters[toUpstream] = down, up
}

// ClientStream is the client's stream for preread hooks to read from
// (ngx.req.socket): the connection, and a reader over the bytes already
// read and the connection, made on the first call. What the reader holds
// unread when preread ends is proxied first. conn is nil for UDP. A
// session on an event loop leaves it for goroutines (loopConn.leave).
func (s *Session) ClientStream() (net.Conn, *bufio.Reader) {
	if s.lc != nil && s.lc.leave() != nil {
		return nil, nil
	}
	if s.stream == nil {
		return nil, nil
	}
	if s.reader == nil {
		size := max(s.cfg.Conf.Stream.PrereadBufferSize, 16)
		s.firstR = bytes.NewReader(s.first)
		s.reader = bufio.NewReaderSize(io.MultiReader(s.firstR, s.stream), size)
	}
	return s.stream, s.reader
}

// unread returns what preread hooks left unread of the client's stream,
// to be proxied first.
func (s *Session) unread() []byte {
	if s.reader == nil {
		return s.first
	}
	buffered, _ := s.reader.Peek(s.reader.Buffered())
	rest := make([]byte, 0, len(buffered)+s.firstR.Len())
	rest = append(rest, buffered...)
	tail, _ := io.ReadAll(s.firstR)
	s.stream.SetReadDeadline(time.Time{})
	return append(rest, tail...)
}

// WriteClient sends p to the client (a hook's answer, such as
// kong.response.exit's body), counted in the bytes sent.
func (s *Session) WriteClient(p []byte) (int, error) {
	if s.lc != nil {
		if err := s.lc.leave(); err != nil {
			return 0, err
		}
	}
	var n int
	var err error
	if s.udp {
		n, err = s.pc.WriteToUDPAddrPort(p, s.client)
	} else {
		n, err = s.stream.Write(p)
	}
	if err == nil {
		s.rec.BytesSent += int64(n)
	}
	return n, err
}

// Var returns an nginx stream variable of the session and whether nginx
// would have it set: those of the access log, and
// realip_remote_addr/port (the peer, before a PROXY header),
// binary_remote_addr, nginx_version and ssl_preread_server_name.
func (s *Session) Var(name string) (string, bool) {
	switch name {
	case "realip_remote_addr":
		return s.peer.Addr().String(), true
	case "realip_remote_port":
		return strconv.Itoa(int(s.peer.Port())), true
	case "binary_remote_addr":
		return string(s.client.Addr().Unmap().AsSlice()), true
	case "nginx_version":
		return "1.27.1", true
	case "ssl_preread_server_name":
		return s.rec.SNI, s.rec.SNI != ""
	case "kong_tls_passthrough_block":
		// "1" where Kong sets it: the sessions of tls_passthrough routes.
		if s.ssl && s.rec.TLS == nil && s.route != nil && slices.Contains(s.route.Decl.Protocols, "tls_passthrough") {
			return "1", true
		}
		return "", false
	}
	p, ok := variable(name)
	if !ok {
		return "", false
	}
	v, ok := p.appendValue(nil, &s.rec)
	return string(v), ok
}

// Try is one connect attempt: the peer, when the balancer began picking
// it, how long that took, and the host name it stands for.
type Try struct {
	Addr      string
	Start     time.Time
	Latency   time.Duration
	Host      string
	Connected bool // the try the session's upstream came from (its TLS handshake done)
}

// Close ends the session at once.
func (s *Session) Close() error {
	s.mu.Lock()
	s.closed = true
	r, ur, up, down, lc := s.relay, s.udpReader, s.up, s.down, s.lc
	s.mu.Unlock()
	if lc != nil {
		lc.post()
		return nil
	}
	if r != nil {
		return r.Close()
	}
	if ur != nil {
		ur.abort()
		return nil
	}
	if up != nil {
		up.Close()
	}
	if down != nil {
		return down.Close()
	}
	return nil
}

// isClosed reports that Close was called.
func (s *Session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Info is a running session as the Admin API lists it.
type Info struct {
	ID                       uint64
	Protocol                 string // tcp or udp
	Client, Server           netip.AddrPort
	Started                  time.Time
	Route                    *Route // nil before routing
	SNI                      string
	Upstream                 string // the last peer tried
	BytesSent, BytesReceived int64
}

// Info describes the session while it runs.
func (s *Session) Info() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := Info{ID: s.rec.ID, Protocol: strings.ToLower(s.rec.Protocol), Client: s.client, Server: s.local,
		Started: s.rec.Start, Route: s.route, SNI: s.sni}
	if n := len(s.rec.Tries); n > 0 {
		i.Upstream = s.rec.Tries[n-1].Addr
	}
	switch {
	case s.udp:
		i.BytesSent, i.BytesReceived = s.sent.Load(), s.received.Load()
	case s.relay != nil:
		i.BytesSent, i.BytesReceived = s.relay.sent.Load(), s.relay.received.Load()
	case s.lc != nil:
		i.BytesSent, i.BytesReceived = s.lc.sent.Load(), s.lc.received.Load()
	}
	return i
}

// routed records the matched route (nil: none) and the SNI routed on.
func (s *Session) routed(r *Route, sni string) {
	s.mu.Lock()
	s.route, s.sni = r, sni
	s.mu.Unlock()
}

// service is the service the session connects to: the route's, with
// what the preread hook changed (SetService) applied to a copy.
func (s *Session) service(svc *Service) *Service {
	ch := s.change
	if ch == (ServiceChange{}) {
		return svc
	}
	c := *svc
	switch {
	case ch.Upstream != "":
		c.peers = s.cfg.Upstreams[ch.Upstream]
	case ch.Host != "":
		if up, ok := s.cfg.Upstreams[ch.Host]; ok {
			c.peers = up
		} else {
			c.peers = newHostPeers(ch.Host, ch.Port, s.cfg.resolver)
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

// connect runs a routed session up to its upstream: the preread hook,
// then the dial. It returns the upstream connection, or nil after ending
// the session.
func (s *Session) connect() net.Conn {
	svc := s.prepare()
	if svc == nil {
		return nil
	}
	return s.dialOrEnd(svc)
}

// dialOrEnd connects to svc, or ends the session and returns nil.
func (s *Session) dialOrEnd(svc *Service) net.Conn {
	up, status := s.dial(svc)
	if up == nil {
		s.end(status)
	}
	return up
}

// prepare counts a routed session among the active ones and runs its
// preread hook. It returns the service to dial, or nil after ending the
// session.
func (s *Session) prepare() *Service {
	s.rec.Remote = s.client
	s.opened()
	if status, done := s.cfg.Hooks.Preread(s); done {
		s.refused = !s.udp
		s.end(status)
		return nil
	}
	if s.route.Service == nil {
		if s.udp {
			s.Log(errlog.LevelWarn, "no Service found with those values")
		} else {
			s.Log(errlog.LevelWarn, "no Service found with those values", "route", s.route.Name)
		}
		s.end(StatusServiceUnavailable)
		return nil
	}
	return s.service(s.route.Service)
}

// dial connects to the service, over TCP (with TLS when the service's
// protocol asks for it, and a PROXY header when it has proxy_protocol)
// or UDP, trying another peer after each failure up to service.retries
// times. It returns the connection, or nil and the session's status.
func (s *Session) dial(svc *Service) (net.Conn, int) {
	s.svc, s.att = svc, svc.peers.start(s.client, s.udp)
	network := "tcp"
	if s.udp {
		network = "udp"
	}
	for attempt := 0; attempt < svc.tries; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), svc.connect)
		pick := time.Now()
		peer, host, err := svc.peers.next(ctx, s.att)
		if err != nil {
			cancel()
			s.Log(errlog.LevelError, err.Error(), "service", svc.name)
			return nil, StatusServiceUnavailable
		}
		start := time.Now()
		var sp trace.Span
		if s.trace != nil {
			sp = s.attemptSpan(svc, attempt, peer)
		}
		c, err := upstreamDialer.DialContext(ctx, network, peer)
		s.tried(Try{Addr: peer, Start: pick, Latency: start.Sub(pick), Host: host}, start)
		if err == nil && svc.proxyProtocol && !s.udp {
			if err = s.writeProxyHeader(c, sp); err != nil {
				c.Close()
			}
		}
		if sp != nil {
			if err != nil {
				telemetry.Fail(sp, err)
			}
			sp.End()
		}
		if err != nil {
			cancel()
			s.connectFailed(svc, attempt, peer, err)
			continue
		}
		if !s.setUp(c) {
			cancel()
			return nil, StatusOK // closed meanwhile
		}
		if svc.tls == nil {
			cancel()
			s.connectedTry()
			return c, 0
		}
		tc, err := s.handshakeUpstream(ctx, c, svc.tls, host)
		cancel()
		if err == nil {
			s.connectedTry()
			return tc, 0
		}
		c.Close()
		s.e.metrics.HandshakeFailed(true)
		s.Log(errlog.LevelError, "upstream SSL handshake failed: "+err.Error(), "upstream", `"`+peer+`"`)
		if attempt+1 < svc.tries {
			svc.peers.failed(s.att, peer)
		}
	}
	return nil, StatusBadGateway
}

// tried records a connect attempt that began at start, its Try and, for
// TCP, its connect time.
func (s *Session) tried(t Try, start time.Time) {
	s.mu.Lock()
	s.rec.Tries = append(s.rec.Tries, t)
	s.mu.Unlock()
	if !s.udp {
		s.rec.UpstreamConnectTimes = append(s.rec.UpstreamConnectTimes, time.Since(start))
	}
}

// connectFailed logs a failed connect to peer as nginx does and, when
// another attempt follows, reports the failure to the balancer.
func (s *Session) connectFailed(svc *Service, attempt int, peer string, err error) {
	s.Log(errlog.LevelError, connectError(err)+" while connecting to upstream", "upstream", `"`+peer+`"`)
	if attempt+1 < svc.tries {
		svc.peers.failed(s.att, peer)
	}
}

// upstreamDialer connects to upstreams. KeepAlive -1 leaves SO_KEEPALIVE
// off, as nginx's stream proxy does without proxy_socket_keepalive (which
// Kong does not set), and saves four setsockopt calls per connection.
var upstreamDialer = net.Dialer{KeepAlive: -1}

// connectedTry marks the last try as the one that connected.
func (s *Session) connectedTry() {
	s.mu.Lock()
	s.rec.Tries[len(s.rec.Tries)-1].Connected = true
	s.mu.Unlock()
}

// setUp makes c the session's upstream connection, which Close closes;
// false (c closed) when the session was closed meanwhile.
func (s *Session) setUp(c net.Conn) bool {
	s.mu.Lock()
	s.up = c
	closed := s.closed
	s.mu.Unlock()
	if closed {
		c.Close()
	}
	return !closed
}

// connectError words a failed connect as nginx does: "upstream timed out
// (110: Connection timed out)" or "connect() failed (111: Connection
// refused)".
func connectError(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return "upstream timed out (110: Connection timed out)"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg := errno.Error()
		return fmt.Sprintf("connect() failed (%d: %s)", int(errno), strings.ToUpper(msg[:1])+msg[1:])
	}
	return fmt.Sprintf("connect() failed (%v)", err)
}

// end closes the session's sockets, releases its peer, runs the log hook,
// writes its access-log line and lets Quit and Stop know it is gone.
func (s *Session) end(status int) {
	// On an event loop, a log hook that may block runs on a worker.
	hop := s.lc != nil && s.lc.onLoop() && !s.cfg.Hooks.NoPlugins(s.route)
	connected, drain := s.closeSockets()
	if hop {
		s.e.workers.run(func() { s.settle(status, connected, drain) })
		return
	}
	s.settle(status, connected, drain)
}

// settle is the rest of end once the sockets are closed: the peer's
// release, the record, the log hook, metrics, access log and caps.
func (s *Session) settle(status int, connected, drain bool) {
	if s.att != nil {
		var connectTime time.Duration
		if connected && len(s.rec.UpstreamConnectTimes) > 0 {
			connectTime = s.rec.UpstreamConnectTimes[len(s.rec.UpstreamConnectTimes)-1]
		}
		s.svc.peers.release(s.att, connectTime, status)
	}
	s.rec.Status = status
	s.rec.End = time.Now()
	s.rec.Remote = s.client
	if s.udp {
		s.rec.BytesSent += s.sent.Load()
		s.rec.BytesReceived = s.received.Load()
		s.rec.UpstreamBytesSent, s.rec.UpstreamBytesRecv = s.rec.BytesReceived, s.rec.BytesSent
		if t := s.firstUp.Load(); t != 0 {
			s.rec.UpstreamFirstByte = time.Unix(0, t)
		}
	}
	s.cfg.Hooks.Log(s)
	s.endTrace()
	s.ended()
	s.e.untrack(s)
	if s.cfg.access != nil {
		s.cfg.access.Write(s.cfg.format.appendLine(nil, &s.rec))
	}
	s.caps.release(s.e)
	if drain {
		s.drain()
	}
	s.cfg.Done()
	s.e.conns.Done()
}

// closeSockets closes what the session still has open of its sockets,
// reporting whether it had an upstream connection and whether drain
// must finish closing the client's. A session refused on an event loop
// leaves it for closeRefused's graceful close.
func (s *Session) closeSockets() (connected, drain bool) {
	if s.lc != nil && (!s.refused || s.lc.leave() != nil) {
		return s.lc.closeSockets(), false
	}
	s.mu.Lock()
	up, r := s.up, s.relay
	s.mu.Unlock()
	// A relay that ended by closing both sockets leaves nothing to close:
	// closing again would only make errors.
	closed := r != nil && r.closedBoth()
	switch {
	case s.refused:
		drain = s.closeRefused()
	case s.down != nil && !closed:
		s.down.Close()
	}
	if up != nil && !closed {
		up.Close()
	}
	return up != nil, drain
}
