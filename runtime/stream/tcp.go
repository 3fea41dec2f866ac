package stream

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
	"go.opentelemetry.io/otel/trace"

	"github.com/gong-proxy/gong/router"
	"github.com/gong-proxy/gong/runtime/errlog"
	"github.com/gong-proxy/gong/runtime/telemetry"
)

// acceptLoop accepts from ln until it closes: for good, or for the event
// loops to take the socket over (handing).
func (e *Engine) acceptLoop(o *socket, ln net.Listener) {
	defer o.loop.Done()
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if o.closed.Load() || o.handing.Load() {
				return
			}
			// Out of descriptors or similar: wait a little, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			e.log.Log(context.Background(), errlog.LevelCrit, fmt.Sprintf("accept() failed on %s: %v", o.key.Addr, err))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		cfg := e.acquire()
		l := cfg.Listeners[o.key]
		if reason := e.admit(cfg, &o.caps, l.MaxSessions, l.MaxRate); reason != "" {
			e.refuse(&o.caps, reason) // counted before the client can see the close
			conn.Close()              // at once: a refused client is not left in the backlog
			cfg.Done()
			continue
		}
		tc := conn.(*net.TCPConn)
		if o.fromFile { // made by net.FileListener, which turns keepalive on
			tc.SetKeepAliveConfig(keepAlive(l.KeepAlive))
		}
		e.conns.Add(1)
		e.workers.run(func() { e.serveTCP(cfg, o, tc) })
	}
}

func (e *Engine) serveTCP(cfg *Config, o *socket, down *net.TCPConn) {
	l, ok := cfg.Listeners[o.key]
	s := e.newSession(cfg, false, down.LocalAddr().(*net.TCPAddr).AddrPort(), down.RemoteAddr().(*net.TCPAddr).AddrPort())
	s.down, s.stream, s.caps = down, down, &o.caps
	e.track(s)
	if !ok {
		s.end(0) // the listener left the configuration while this was accepted
		return
	}
	var parent trace.SpanContext
	if l.ProxyProtocol {
		var err error
		if parent, err = s.readProxyHeader(); err != nil {
			s.brokenHeader(err)
			return
		}
	}
	s.startTrace("tcp", parent)
	if l.SSL {
		s.ssl = true
		s.serveTLS()
		return
	}
	if s.match(s.tcpConnInfo()) {
		s.proxy()
	}
}

// tcpConnInfo is what routes a plain TCP session.
func (s *Session) tcpConnInfo() router.ConnInfo {
	return router.ConnInfo{Protocol: "tcp", Src: s.client, Dst: s.cfg.Destination(s.local)}
}

// readProxyHeader reads a PROXY v1 or v2 header within
// nginx_sproxy_proxy_protocol_timeout, keeping the bytes read past it to
// be proxied first. The header's source becomes the client address, and
// its traceparent TLV the parent of the session's span, only when the
// peer is in trusted_ips.
func (s *Session) readProxyHeader() (trace.SpanContext, error) {
	if t := s.cfg.Conf.Stream.ProxyProtocolTimeout; t > 0 {
		s.down.SetReadDeadline(time.Now().Add(t))
	}
	br := bufio.NewReaderSize(s.down, 256)
	h, err := proxyproto.Read(br)
	s.down.SetReadDeadline(time.Time{})
	if err != nil {
		return trace.SpanContext{}, err
	}
	s.first, _ = br.Peek(br.Buffered())
	return s.useProxyHeader(h), nil
}

// useProxyHeader takes from a PROXY header what a peer in trusted_ips
// may say: the client's address, and the parent of the session's span,
// which it returns.
func (s *Session) useProxyHeader(h *proxyproto.Header) trace.SpanContext {
	if !s.cfg.Trusted(s.client.Addr()) {
		return trace.SpanContext{}
	}
	if src, ok := h.SourceAddr.(*net.TCPAddr); ok && h.Command.IsProxy() {
		s.mu.Lock()
		s.client = src.AddrPort()
		s.mu.Unlock()
	}
	if s.cfg.Tracer == nil {
		return trace.SpanContext{}
	}
	return traceParent(h)
}

// brokenHeader ends a session whose PROXY header could not be read.
func (s *Session) brokenHeader(err error) {
	s.Log(errlog.LevelError, fmt.Sprintf("broken header: %v while reading PROXY protocol", err))
	s.end(StatusBadRequest)
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
func (s *Session) writeProxyHeader(up net.Conn, attempt trace.Span) error {
	h := proxyproto.HeaderProxyFromAddrs(2,
		net.TCPAddrFromAddrPort(netip.AddrPortFrom(s.client.Addr().Unmap(), s.client.Port())),
		net.TCPAddrFromAddrPort(netip.AddrPortFrom(s.local.Addr().Unmap(), s.local.Port())))
	if s.trace != nil {
		sc := attempt.SpanContext()
		if !sc.IsValid() {
			sc = s.trace.SpanContext()
		}
		if err := h.SetTLVs([]proxyproto.TLV{{Type: telemetry.TraceparentTLV, Value: telemetry.FormatTraceparent(sc)}}); err != nil {
			return err
		}
	}
	_, err := h.WriteTo(up)
	return err
}

// match routes the session; without a match it ends the session with
// Kong's status 500.
func (s *Session) match(ci router.ConnInfo) bool {
	if s.find(ci) {
		return true
	}
	s.noRoute()
	return false
}

// find routes the session, reporting whether a route matched.
func (s *Session) find(ci router.ConnInfo) bool {
	rt, ok := s.cfg.router.Match(ci)
	if s.trace != nil {
		s.routeSpan(rt, ci.SNI)
	}
	if ok {
		s.routed(rt.Value.(*Route), ci.SNI)
	}
	return ok
}

// noRoute ends a session that no route matched, as Kong does.
func (s *Session) noRoute() {
	s.Log(errlog.LevelError, "no Route found with those values")
	s.end(StatusInternalError)
}

// proxy connects the routed session to its service and relays the
// client's stream to it, sending first the bytes already read; this
// goroutine carries the direction to the upstream. The session ends when
// the relay does, or here on failure.
func (s *Session) proxy() {
	if up := s.connect(); up != nil {
		s.relayWith(up)
	}
}

// proxyTo connects the session to svc and relays, as proxy.
func (s *Session) proxyTo(svc *Service) {
	if up := s.dialOrEnd(svc); up != nil {
		s.relayWith(up)
	}
}

// relayWith relays the session's client stream to and from up.
func (s *Session) relayWith(up net.Conn) {
	st := s.cfg.Conf.Stream
	r := newRelay(s.stream, s.down, up, st.SessionIdle(s.route.Service.idle, s.ssl), st.HalfClose, s.e.parker, s.e.workers, s.meters, s.relayDone)
	s.mu.Lock()
	s.relay = r
	s.mu.Unlock()
	if err := r.start(s.unread()); err != nil {
		s.Log(errlog.LevelError, "send() to upstream failed: "+err.Error())
		s.end(StatusBadGateway)
		return
	}
	r.pumpToUpstream()
}

// relayDone ends a relayed session.
func (s *Session) relayDone(r *relay, err error) {
	s.relayEnded(r.sent.Load(), r.received.Load(), r.firstFromUp.Load(), err, r.up.RemoteAddr())
}

// relayEnded ends a session whose relay sent and received those bytes to
// and from the client, the upstream's first at firstUp (unix
// nanoseconds, 0: none), and ended with err (nil: a close).
func (s *Session) relayEnded(sent, received, firstUp int64, err error, upstream any) {
	s.rec.BytesSent, s.rec.BytesReceived = sent, received
	s.rec.UpstreamBytesSent, s.rec.UpstreamBytesRecv = received, sent
	if firstUp != 0 {
		s.rec.UpstreamFirstByte = time.Unix(0, firstUp)
	}
	if err != nil {
		s.Log(errlog.LevelInfo, "connection closed with an error: "+err.Error(), "upstream", upstream)
		if s.trace != nil {
			s.trace.Root().RecordError(err)
		}
	}
	s.end(StatusOK)
}
