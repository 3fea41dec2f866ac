package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pires/go-proxyproto"
	"go.opentelemetry.io/otel/trace"

	"github.com/gong-proxy/gong/router"
	"github.com/gong-proxy/gong/runtime/telemetry"
	"github.com/gong-proxy/gong/tlsmgr"
)

// Session statuses, as Kong's stream sessions report them.
const (
	statusOK                 = 200
	statusBadRequest         = 400
	statusInternalError      = 500
	statusBadGateway         = 502
	statusServiceUnavailable = 503
)

func (s *Server) acceptLoop(o *socket) {
	defer o.loop.Done()
	var backoff time.Duration
	for {
		conn, err := o.ln.Accept()
		if err != nil {
			if o.closed.Load() {
				return
			}
			// Out of descriptors or similar: wait a little, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.logf(LevelCrit, 0, "accept() failed on %s: %v", o.key.addr, err)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		g := s.acquire()
		s.conns.Add(1)
		go s.serveTCP(g, o.key, conn.(*net.TCPConn))
	}
}

// conn is one TCP session in progress. Its goroutine routes and dials;
// once relaying, the relay's last direction ends it (relayDone). Close
// may come from Server.Stop at any time, hence mu.
type conn struct {
	plugged
	down *net.TCPConn
	// svc and att are the service dialed and the record of its attempts,
	// released when the session ends (least-connections counts, latency).
	svc *service
	att *attempts

	// mu guards up and relay, which Close reads, and the facts GET
	// /sessions reads while the session runs: client, target, sni and
	// upstreamAddrs. The session's goroutine writes them under mu.
	mu    sync.Mutex
	up    net.Conn
	relay *relay
	sni   string // the SNI the session was routed on
	// ssl is set for sessions on an ssl listener, whose idle timeout
	// nginx_sproxy_proxy_timeout caps.
	ssl bool
	// refused is the client connection (TLS or not) of a session a
	// plugin ended in preread, closed gracefully.
	refused net.Conn
}

// Close ends the session at once; Server.Stop calls it.
func (cx *conn) Close() error {
	cx.mu.Lock()
	r, up := cx.relay, cx.up
	cx.mu.Unlock()
	if r != nil {
		return r.Close()
	}
	if up != nil {
		up.Close()
	}
	return cx.down.Close()
}

func (s *Server) serveTCP(g *generation, key listenKey, down *net.TCPConn) {
	l, ok := g.listeners[key]
	cx := &conn{plugged: plugged{s: s, g: g}, down: down}
	cx.local = down.LocalAddr().(*net.TCPAddr).AddrPort()
	cx.client = down.RemoteAddr().(*net.TCPAddr).AddrPort()
	cx.peer = cx.client
	cx.sess = session{id: s.nextID.Add(1), protocol: "TCP", start: time.Now()}
	cx.sess.serverAddr, cx.sess.serverPort = cx.local.Addr().String(), int(cx.local.Port())
	s.track(cx)
	if !ok {
		cx.end(nil, 0) // the listener left the configuration while this was accepted
		return
	}
	var first []byte
	var parent trace.SpanContext
	if l.ProxyProtocol {
		var err error
		if first, parent, err = cx.readProxyHeader(); err != nil {
			s.log.logf(LevelError, cx.sess.id, "broken header: %v while reading PROXY protocol%s", err, cx.context())
			cx.end(nil, statusBadRequest)
			return
		}
	}
	cx.startTrace("tcp", parent)
	if l.SSL {
		cx.ssl = true
		cx.serveTLS(first)
		return
	}
	ci := router.ConnInfo{Protocol: "tcp", Src: cx.client, Dst: cx.g.destination(cx.local)}
	if target, ok := cx.route(ci); ok {
		cx.proxyTo(target, cx.down, first)
	}
}

// readProxyHeader reads a PROXY v1 or v2 header within
// nginx_sproxy_proxy_protocol_timeout, and returns the bytes read past it.
// The header's source becomes the client address, and its traceparent TLV
// the parent of the session's span, only when the peer is in trusted_ips.
func (cx *conn) readProxyHeader() ([]byte, trace.SpanContext, error) {
	if t := cx.g.conf.Stream.ProxyProtocolTimeout; t > 0 {
		cx.down.SetReadDeadline(time.Now().Add(t))
	}
	br := bufio.NewReaderSize(cx.down, 256)
	h, err := proxyproto.Read(br)
	cx.down.SetReadDeadline(time.Time{})
	if err != nil {
		return nil, trace.SpanContext{}, err
	}
	var parent trace.SpanContext
	if cx.g.trusted(cx.client.Addr()) {
		if src, ok := h.SourceAddr.(*net.TCPAddr); ok && h.Command.IsProxy() {
			cx.mu.Lock()
			cx.client = src.AddrPort()
			cx.mu.Unlock()
		}
		if cx.g.tracer != nil {
			parent = traceParent(h)
		}
	}
	rest, _ := br.Peek(br.Buffered())
	return rest, parent, nil
}

// traceParent is the span context of a PROXY v2 header's traceparent TLV
// (telemetry.TraceparentTLV), invalid when it has none.
func traceParent(h *proxyproto.Header) trace.SpanContext {
	tlvs, _ := h.TLVs()
	for _, t := range tlvs {
		if t.Type == telemetry.TraceparentTLV {
			return telemetry.ParseTraceparent(t.Value)
		}
	}
	return trace.SpanContext{}
}

// writeProxyHeader sends a new upstream connection a PROXY v2 header with
// the client's address and the one it reached, and, for a traced session,
// a traceparent TLV naming the connect attempt's span (else the
// session's) as the parent.
func (cx *conn) writeProxyHeader(up net.Conn, attempt trace.Span) error {
	h := proxyproto.HeaderProxyFromAddrs(2,
		net.TCPAddrFromAddrPort(netip.AddrPortFrom(cx.client.Addr().Unmap(), cx.client.Port())),
		net.TCPAddrFromAddrPort(netip.AddrPortFrom(cx.local.Addr().Unmap(), cx.local.Port())))
	if cx.trace != nil {
		sc := attempt.SpanContext()
		if !sc.IsValid() {
			sc = cx.trace.SpanContext()
		}
		if err := h.SetTLVs([]proxyproto.TLV{{Type: telemetry.TraceparentTLV, Value: telemetry.FormatTraceparent(sc)}}); err != nil {
			return err
		}
	}
	_, err := h.WriteTo(up)
	return err
}

// route matches the connection; without a match it ends the session
// with Kong's status 500.
func (cx *conn) route(ci router.ConnInfo) (*routeTarget, bool) {
	rt, ok := cx.g.router.Match(ci)
	if cx.trace != nil {
		cx.routeSpan(rt, ci.SNI)
	}
	if !ok {
		cx.s.log.logf(LevelError, cx.sess.id, "no Route found with those values%s", cx.context())
		cx.end(nil, statusInternalError)
		return nil, false
	}
	cx.mu.Lock()
	cx.target, cx.sni = rt.Value.(*routeTarget), ci.SNI
	cx.mu.Unlock()
	return cx.target, true
}

// proxyTo connects to the route's service and starts relaying down (the
// client connection, or its TLS layer) to it, first sending first. The
// session ends when the relay does, or here on failure.
func (cx *conn) proxyTo(target *routeTarget, down net.Conn, first []byte) {
	cx.sess.remoteAddr, cx.sess.remotePort = cx.client.Addr().String(), int(cx.client.Port())
	cx.opened()
	if len(target.preread) > 0 {
		cx.reqDown, cx.reqFirst = down, bytes.NewReader(first)
		status, done := cx.preread(target, down)
		first = cx.unread(first)
		if done {
			cx.refused = down
			cx.end(nil, status)
			return
		}
	}
	if target.service == nil {
		cx.s.log.logf(LevelWarn, cx.sess.id, "no Service found with those values%s, route: %s", cx.context(), target.name)
		cx.end(nil, statusServiceUnavailable)
		return
	}
	up, status := cx.dial(cx.service(target.service))
	if up == nil {
		cx.end(nil, status)
		return
	}
	r := &relay{down: down, downRaw: cx.down, up: up, idle: cx.g.conf.Stream.SessionIdle(target.service.idle, cx.ssl), parker: cx.s.parker, done: cx.relayDone}
	cx.mu.Lock()
	cx.relay = r
	cx.mu.Unlock()
	if err := r.start(first); err != nil {
		cx.s.log.logf(LevelError, cx.sess.id, "send() to upstream failed: %v%s", err, cx.context())
		cx.end(up, statusBadGateway)
	}
}

// relayDone ends a relayed session.
func (cx *conn) relayDone(r *relay, err error) {
	cx.sess.bytesSent, cx.sess.bytesReceived = r.sent.Load(), r.received.Load()
	cx.sess.upstreamBytesSent, cx.sess.upstreamBytesRecv = cx.sess.bytesReceived, cx.sess.bytesSent
	if err != nil {
		cx.s.log.logf(LevelInfo, cx.sess.id, "connection closed with an error: %v%s, upstream: %s", err, cx.context(), r.up.RemoteAddr())
		if cx.trace != nil {
			cx.trace.Root().RecordError(err)
		}
	}
	cx.end(r.up, statusOK)
}

// dial connects to the service, with TLS when its protocol asks for it,
// trying another peer after each failure up to service.retries times.
func (cx *conn) dial(svc *service) (net.Conn, int) {
	cx.svc, cx.att = svc, svc.peers.start(cx.client, false)
	for attempt := 0; attempt < svc.tries; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), svc.connect)
		pick := time.Now()
		peer, host, err := svc.peers.next(ctx, cx.att)
		if err != nil {
			cancel()
			cx.s.log.logf(LevelError, cx.sess.id, "%v%s, service: %s", err, cx.context(), svc.name)
			return nil, statusServiceUnavailable
		}
		start := time.Now()
		var sp trace.Span
		if cx.trace != nil {
			sp = cx.attemptSpan(svc, attempt, peer)
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", peer)
		cx.mu.Lock()
		cx.sess.tried(peer, balancerTry{start: pick, latency: start.Sub(pick), host: host})
		cx.mu.Unlock()
		cx.sess.upstreamConnectTimes = append(cx.sess.upstreamConnectTimes, time.Since(start))
		if err == nil && svc.proxyProtocol {
			if err = cx.writeProxyHeader(c, sp); err != nil {
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
			cx.s.log.logf(LevelError, cx.sess.id, "%s while connecting to upstream%s, upstream: \"%s\"", connectError(err), cx.context(), peer)
			if attempt+1 < svc.tries {
				svc.peers.failed(cx.att, peer)
			}
			continue
		}
		cx.mu.Lock()
		cx.up = c
		cx.mu.Unlock()
		if svc.tls == nil {
			cancel()
			return c, 0
		}
		tc, err := cx.handshakeUpstream(ctx, c, svc.tls, host)
		cancel()
		if err == nil {
			return tc, 0
		}
		c.Close()
		cx.s.metrics.HandshakeFailed(true)
		cx.s.log.logf(LevelError, cx.sess.id, "upstream SSL handshake failed: %v%s, upstream: \"%s\"", err, cx.context(), peer)
		if attempt+1 < svc.tries {
			svc.peers.failed(cx.att, peer)
		}
	}
	return nil, statusBadGateway
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

// end closes the session's sockets (up may be nil), writes its access-log
// line and lets Quit and Stop know it is gone.
func (cx *conn) end(up net.Conn, status int) {
	if cx.refused != nil {
		tlsmgr.Shutdown(cx.refused, cx.down)
	} else {
		cx.down.Close()
	}
	if up != nil {
		up.Close()
	}
	if cx.att != nil {
		var connectTime time.Duration
		if up != nil {
			connectTime = cx.sess.upstreamConnectTimes[len(cx.sess.upstreamConnectTimes)-1]
		}
		cx.svc.peers.release(cx.att, connectTime, status)
	}
	cx.sess.status = status
	cx.sess.end = time.Now()
	cx.sess.remoteAddr = cx.client.Addr().String()
	cx.sess.remotePort = int(cx.client.Port())
	cx.logPhase()
	cx.endTrace()
	cx.ended()
	cx.s.untrack(cx)
	if cx.g.access != nil {
		cx.g.access.write(cx.g.format.appendLine(nil, &cx.sess))
	}
	if cx.refused != nil {
		tlsmgr.Drain(cx.down)
	}
	cx.g.done()
	cx.s.conns.Done()
}
