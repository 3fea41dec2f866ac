package runtime

import (
	"errors"
	"net/netip"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/gong-proxy/gong/pdk"
	"github.com/gong-proxy/gong/router"
	"github.com/gong-proxy/gong/runtime/telemetry"
)

// This file is where sessions meet telemetry: their span and the metrics
// they move. Every trace call is behind a nil check of the session's
// trace, so with tracing off (or a session not sampled) nothing is
// allocated on the connection path.

// startTrace begins the session's span when tracing is on, as a child of
// parent when a trusted PROXY header carried one.
func (cx *plugged) startTrace(transport string, parent trace.SpanContext) {
	if cx.g.tracer == nil {
		return
	}
	netType := "ipv4"
	if cx.client.Addr().Is6() && !cx.client.Addr().Is4In6() {
		netType = "ipv6"
	}
	name := "stream connection"
	if transport == "udp" {
		name = "stream udp session"
	}
	cx.trace = cx.g.tracer.Start(name, parent, cx.sess.start,
		semconv.NetworkTransportKey.String(transport),
		semconv.NetworkTypeKey.String(netType),
		semconv.ClientAddressKey.String(cx.client.Addr().Unmap().String()),
		semconv.ClientPortKey.Int(int(cx.client.Port())),
		semconv.NetworkPeerAddressKey.String(cx.peer.Addr().Unmap().String()),
		semconv.NetworkPeerPortKey.Int(int(cx.peer.Port())),
		semconv.ServerAddressKey.String(cx.local.Addr().Unmap().String()),
		semconv.ServerPortKey.Int(int(cx.local.Port())),
		attribute.Int64("gong.connection.id", int64(cx.sess.id)),
	)
}

// closeReasons words a session status for the span's close reason.
var closeReasons = map[int]string{
	statusOK:                 "closed",
	statusBadRequest:         "bad request",
	403:                      "forbidden",
	statusInternalError:      "internal error",
	statusBadGateway:         "upstream unreachable",
	statusServiceUnavailable: "no service available",
}

// endTrace ends the session's span with what became known: route,
// service, upstream, bytes and status.
func (cx *plugged) endTrace() {
	if cx.trace == nil {
		return
	}
	s := &cx.sess
	attrs := []attribute.KeyValue{
		attribute.Int64("gong.session.bytes_received", s.bytesReceived),
		attribute.Int64("gong.session.bytes_sent", s.bytesSent),
		attribute.Int64("gong.upstream.bytes_received", s.upstreamBytesRecv),
		attribute.Int64("gong.upstream.bytes_sent", s.upstreamBytesSent),
	}
	if r, ok := closeReasons[s.status]; ok {
		attrs = append(attrs, attribute.String("gong.session.close_reason", r))
	}
	if cx.target != nil {
		attrs = append(attrs, attribute.String("gong.route.id", cx.target.route.ID), attribute.String("gong.route.name", cx.target.name))
		if svc := cx.target.service; svc != nil {
			attrs = append(attrs, attribute.String("gong.service.id", svc.decl.ID), attribute.String("gong.service.name", svc.name))
			if up, ok := svc.peers.(*upstreamPeers); ok {
				attrs = append(attrs, attribute.String("gong.upstream.name", up.name))
			}
		}
	}
	if n := len(s.upstreamAddrs); n > 0 {
		attrs = append(attrs, attribute.String("gong.upstream.address", s.upstreamAddrs[n-1]))
	}
	if s.sni != "" {
		attrs = append(attrs, attribute.String("tls.client.server_name", s.sni))
	}
	cx.trace.End(s.status, attrs...)
}

// routeSpan records one route match of a traced session: the router's
// answer, nil when no route matched.
func (cx *plugged) routeSpan(match *router.Route, sni string) {
	sp := cx.trace.Span(telemetry.Router, "stream route match")
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
func (cx *plugged) attemptSpan(svc *service, attempt int, peer string) trace.Span {
	attrs := []attribute.KeyValue{attribute.String("gong.service.name", svc.name), attribute.Int("gong.balancer.try", attempt+1)}
	if ap, err := netip.ParseAddrPort(peer); err == nil {
		attrs = append(attrs, semconv.NetworkPeerAddressKey.String(ap.Addr().String()), semconv.NetworkPeerPortKey.Int(int(ap.Port())))
	}
	return cx.trace.Span(telemetry.Balancer, "stream balancer try", attrs...)
}

// opened counts a routed session among the active ones.
func (cx *plugged) opened() {
	cx.counted = true
	service, route := cx.metricLabels()
	cx.s.metrics.Opened(service, route)
}

// ended moves the session metrics: Kong counts only routed sessions.
func (cx *plugged) ended() {
	if cx.target == nil {
		return
	}
	service, route := cx.metricLabels()
	if cx.counted {
		cx.s.metrics.Closed(service, route)
	}
	s := &cx.sess
	m := telemetry.Session{Service: service, Route: route, Status: s.status,
		Proxied:  len(s.upstreamAddrs) > 0 && s.status == statusOK,
		Duration: s.end.Sub(s.start), Received: s.bytesReceived, Sent: s.bytesSent}
	if n := len(s.upstreamConnectTimes); n > 0 {
		m.KongLatency = s.upstreamConnectTimes[n-1]
	}
	cx.s.metrics.Ended(m)
}

// metricLabels are Kong's service and route labels: the service's name,
// else its host; the route's name, else its id.
func (cx *plugged) metricLabels() (service, route string) {
	if svc := cx.target.service; svc != nil {
		service = derefOr(svc.decl.Name, svc.decl.Host)
	}
	return service, cx.target.name
}

// traceKey carries a session's trace in its TLS handshake context, to
// the certificate phase.
type traceKey struct{}

// pluginTracing is a traced session as kong.tracing sees it.
type pluginTracing struct {
	tr     *telemetry.Trace
	phase  trace.Span // the running plugin handler's span, if traced
	active pdk.Span   // set_active_span's
}

// StartSpan starts a plugin's span: under parent, else the span set
// active, else the running handler's span, else the connection's.
func (pt *pluginTracing) StartSpan(name string, parent pdk.Span, start time.Time) pdk.Span {
	if parent == nil && pt.active == nil && pt.phase != nil && pt.phase.IsRecording() {
		parent = pluginSpan{pt.phase}
	}
	if parent == nil {
		parent = pt.Active()
	}
	return pluginSpan{pt.tr.Child(parent.(pluginSpan).Span, name, start)}
}

// Active is the span set active, else the connection's, as in Kong.
func (pt *pluginTracing) Active() pdk.Span {
	if pt.active != nil {
		return pt.active
	}
	return pluginSpan{pt.tr.Root()}
}

func (pt *pluginTracing) SetActive(sp pdk.Span) { pt.active = sp }

// pluginSpan is an OpenTelemetry span as a plugin holds it.
type pluginSpan struct{ trace.Span }

func (s pluginSpan) SetAttribute(key string, value any) {
	if kv, ok := attributeOf(key, value); ok {
		s.SetAttributes(kv)
	}
}

func (s pluginSpan) AddEvent(name string, attrs map[string]any) {
	kvs := make([]attribute.KeyValue, 0, len(attrs))
	for k, v := range attrs {
		if kv, ok := attributeOf(k, v); ok {
			kvs = append(kvs, kv)
		}
	}
	s.Span.AddEvent(name, trace.WithAttributes(kvs...))
}

func (s pluginSpan) RecordError(msg string) { s.Span.RecordError(errors.New(msg)) }

func (s pluginSpan) SetStatus(code int) {
	switch code {
	case 1:
		s.Span.SetStatus(codes.Ok, "")
	case 2:
		s.Span.SetStatus(codes.Error, "")
	}
}

func (s pluginSpan) Finish(end time.Time) { s.End(trace.WithTimestamp(end)) }

func attributeOf(key string, v any) (attribute.KeyValue, bool) {
	switch v := v.(type) {
	case string:
		return attribute.String(key, v), true
	case int64:
		return attribute.Int64(key, v), true
	case float64:
		return attribute.Float64(key, v), true
	case bool:
		return attribute.Bool(key, v), true
	}
	return attribute.KeyValue{}, false
}
