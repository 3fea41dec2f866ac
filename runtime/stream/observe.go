package stream

import (
	"net/netip"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/gong-proxy/gong/router"
	"github.com/gong-proxy/gong/runtime/telemetry"
)

// This file is where sessions meet telemetry: their span and the metrics
// they move. Every trace call is behind a nil check of the session's
// trace, so with tracing off (or a session not sampled) nothing is
// allocated on the connection path.

// startTrace begins the session's span when tracing is on, as a child of
// parent when a trusted PROXY header carried one.
func (s *Session) startTrace(transport string, parent trace.SpanContext) {
	if s.cfg.Tracer == nil {
		return
	}
	netType := "ipv4"
	if s.client.Addr().Is6() && !s.client.Addr().Is4In6() {
		netType = "ipv6"
	}
	name := "stream connection"
	if transport == "udp" {
		name = "stream udp session"
	}
	s.trace = s.cfg.Tracer.Start(name, parent, s.rec.Start,
		semconv.NetworkTransportKey.String(transport),
		semconv.NetworkTypeKey.String(netType),
		semconv.ClientAddressKey.String(s.client.Addr().Unmap().String()),
		semconv.ClientPortKey.Int(int(s.client.Port())),
		semconv.NetworkPeerAddressKey.String(s.peer.Addr().Unmap().String()),
		semconv.NetworkPeerPortKey.Int(int(s.peer.Port())),
		semconv.ServerAddressKey.String(s.local.Addr().Unmap().String()),
		semconv.ServerPortKey.Int(int(s.local.Port())),
		attribute.Int64("gong.connection.id", int64(s.rec.ID)),
	)
}

// closeReasons words a session status for the span's close reason.
var closeReasons = map[int]string{
	StatusOK:                 "closed",
	StatusBadRequest:         "bad request",
	403:                      "forbidden",
	StatusInternalError:      "internal error",
	StatusBadGateway:         "upstream unreachable",
	StatusServiceUnavailable: "no service available",
}

// endTrace ends the session's span with what became known: route,
// service, upstream, bytes and status.
func (s *Session) endTrace() {
	if s.trace == nil {
		return
	}
	r := &s.rec
	attrs := []attribute.KeyValue{
		attribute.Int64("gong.session.bytes_received", r.BytesReceived),
		attribute.Int64("gong.session.bytes_sent", r.BytesSent),
		attribute.Int64("gong.upstream.bytes_received", r.UpstreamBytesRecv),
		attribute.Int64("gong.upstream.bytes_sent", r.UpstreamBytesSent),
	}
	if reason, ok := closeReasons[r.Status]; ok {
		attrs = append(attrs, attribute.String("gong.session.close_reason", reason))
	}
	if s.route != nil {
		attrs = append(attrs, attribute.String("gong.route.id", s.route.Decl.ID), attribute.String("gong.route.name", s.route.Name))
		if svc := s.route.Service; svc != nil {
			attrs = append(attrs, attribute.String("gong.service.id", svc.Decl.ID), attribute.String("gong.service.name", svc.name))
			if up := svc.Upstream(); up != "" {
				attrs = append(attrs, attribute.String("gong.upstream.name", up))
			}
		}
	}
	if n := len(r.Tries); n > 0 {
		attrs = append(attrs, attribute.String("gong.upstream.address", r.Tries[n-1].Addr))
	}
	if r.SNI != "" {
		attrs = append(attrs, attribute.String("tls.client.server_name", r.SNI))
	}
	s.trace.End(r.Status, attrs...)
}

// routeSpan records one route match of a traced session: the router's
// answer, nil when no route matched.
func (s *Session) routeSpan(match *router.Route, sni string) {
	sp := s.trace.Span(telemetry.Router, "stream route match")
	if sni != "" {
		sp.SetAttributes(attribute.String("tls.client.server_name", sni))
	}
	if match == nil {
		sp.AddEvent("no route matched")
	} else {
		sp.SetAttributes(attribute.String("gong.route.id", match.ID), attribute.String("gong.route.name", match.Name))
	}
	sp.End()
}

// attemptSpan starts the span of one upstream connect attempt.
func (s *Session) attemptSpan(svc *Service, attempt int, peer string) trace.Span {
	attrs := []attribute.KeyValue{attribute.String("gong.service.name", svc.name), attribute.Int("gong.balancer.try", attempt+1)}
	if ap, err := netip.ParseAddrPort(peer); err == nil {
		attrs = append(attrs, semconv.NetworkPeerAddressKey.String(ap.Addr().String()), semconv.NetworkPeerPortKey.Int(int(ap.Port())))
	}
	return s.trace.Span(telemetry.Balancer, "stream balancer try", attrs...)
}

// opened counts a routed session among the active ones.
func (s *Session) opened() {
	s.counted = true
	s.series().Opened()
}

// ended moves the session metrics: Kong counts only routed sessions.
func (s *Session) ended() {
	if s.route == nil {
		return
	}
	rs := s.series()
	if s.counted {
		rs.Closed()
	}
	r := &s.rec
	m := telemetry.Session{Status: r.Status,
		Proxied:  len(r.Tries) > 0 && r.Status == StatusOK,
		Duration: r.End.Sub(r.Start), Received: r.BytesReceived, Sent: r.BytesSent}
	if n := len(r.UpstreamConnectTimes); n > 0 {
		m.KongLatency = r.UpstreamConnectTimes[n-1]
	}
	rs.Ended(m)
}

// series are the metrics of the session's route, resolved by the route's
// first session (two racing first sessions resolve equal ones).
func (s *Session) series() *telemetry.RouteSeries {
	if rs := s.route.series.Load(); rs != nil {
		return rs
	}
	rs := s.e.metrics.Series(s.metricLabels())
	s.route.series.Store(rs)
	return rs
}

// metricLabels are Kong's service and route labels: the service's name,
// else its host; the route's name, else its id.
func (s *Session) metricLabels() (service, route string) {
	if svc := s.route.Service; svc != nil {
		service = derefOr(svc.Decl.Name, svc.Decl.Host)
	}
	return service, s.route.Name
}
