package telemetry

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/gong-proxy/gong/runtime/conf"
)

// Instrumentation is one kind of child span tracing_instrumentations
// turns on. The connection span itself is recorded whenever tracing is on.
type Instrumentation uint8

const (
	Connection  Instrumentation = 1 << iota // the per-connection attributes and events
	TLS                                     // ClientHello preread and the downstream handshake
	Router                                  // each route match
	Plugins                                 // each plugin handler call
	Balancer                                // each upstream connect attempt
	UpstreamTLS                             // the upstream handshake
)

var instrumentationNames = map[string]Instrumentation{
	"connection": Connection, "tls": TLS, "router": Router,
	"plugins": Plugins, "balancer": Balancer, "upstream_tls": UpstreamTLS,
}

// Tracer records connections as OpenTelemetry spans and exports them with
// OTLP, as kong.conf's tracing_* properties say. A nil *Tracer is tracing
// off: Start returns a nil *Trace, which costs the connection nothing.
type Tracer struct {
	settings conf.Tracing
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	on       Instrumentation
}

// NewTracer builds the tracer of the settings, or returns nil when
// tracing_instrumentations is off. Exporters connect lazily: a collector
// that is down delays nothing but the export.
func NewTracer(c conf.Tracing) (*Tracer, error) {
	if len(c.Instrumentations) == 0 {
		return nil, nil
	}
	t := &Tracer{settings: c}
	for _, name := range c.Instrumentations {
		t.on |= instrumentationNames[name]
	}
	exp, err := newExporter(c)
	if err != nil {
		return nil, fmt.Errorf("tracing_otlp_endpoint: %w", err)
	}
	host, _ := os.Hostname()
	attrs := []attribute.KeyValue{
		semconv.ServiceNameKey.String("gong"),
		semconv.HostNameKey.String(host),
	}
	for k, v := range c.ResourceAttributes {
		attrs = append(attrs, attribute.String(k, v)) // later keys win: service.name can be replaced
	}
	t.provider = sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL, attrs...)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SamplingRate))),
		sdktrace.WithBatcher(exp,
			sdktrace.WithMaxExportBatchSize(c.BatchSpanCount),
			sdktrace.WithBatchTimeout(c.BatchFlushDelay),
			sdktrace.WithExportTimeout(c.OTLPTimeout)),
	)
	t.tracer = t.provider.Tracer("github.com/gong-proxy/gong")
	return t, nil
}

// newExporter is the OTLP exporter of tracing_otlp_protocol. A grpc
// endpoint given as host:port or http://host:port is plaintext;
// https://host:port uses TLS.
func newExporter(c conf.Tracing) (sdktrace.SpanExporter, error) {
	ctx := context.Background()
	if c.OTLPProtocol == "grpc" {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithHeaders(c.OTLPHeaders), otlptracegrpc.WithTimeout(c.OTLPTimeout)}
		if strings.Contains(c.OTLPEndpoint, "://") {
			opts = append(opts, otlptracegrpc.WithEndpointURL(c.OTLPEndpoint))
		} else {
			opts = append(opts, otlptracegrpc.WithEndpoint(c.OTLPEndpoint), otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	return otlptracehttp.New(ctx,
		otlptracehttp.WithEndpointURL(c.OTLPEndpoint),
		otlptracehttp.WithHeaders(c.OTLPHeaders),
		otlptracehttp.WithTimeout(c.OTLPTimeout))
}

// Same reports whether t was built from settings c, so a reload keeps it.
func (t *Tracer) Same(c conf.Tracing) bool {
	if t == nil {
		return len(c.Instrumentations) == 0
	}
	return reflect.DeepEqual(t.settings, c)
}

// Shutdown exports the spans still queued, within tracing_otlp_timeout,
// and stops the exporter.
func (t *Tracer) Shutdown() error {
	if t == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.settings.OTLPTimeout)
	defer cancel()
	return t.provider.Shutdown(ctx)
}

// Trace is one connection's (or UDP session's) spans: the connection span
// and the context its children start from. It is used from the
// connection's goroutine only. A nil *Trace records nothing.
type Trace struct {
	t    *Tracer
	ctx  context.Context
	root trace.Span
}

// Start begins the span of a connection accepted at start, as a child of
// parent when that is valid (a remote parent: the sampling decision
// follows its sampled flag). It returns nil when the connection is not
// sampled, so unsampled connections pay for no child spans.
func (t *Tracer) Start(name string, parent trace.SpanContext, start time.Time, attrs ...attribute.KeyValue) *Trace {
	if t == nil {
		return nil
	}
	ctx := context.Background()
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start), trace.WithAttributes(attrs...))
	if !span.IsRecording() {
		span.End()
		return nil
	}
	return &Trace{t: t, ctx: ctx, root: span}
}

// noSpan is what Span returns for an instrumentation that is off.
var noSpan = trace.SpanFromContext(context.Background())

// Span starts a child of the connection span for instrumentation in; the
// caller ends it. It is a no-op span when in is not traced.
func (tr *Trace) Span(in Instrumentation, name string, attrs ...attribute.KeyValue) trace.Span {
	if tr == nil || tr.t.on&in == 0 {
		return noSpan
	}
	_, s := tr.t.tracer.Start(tr.ctx, name, trace.WithAttributes(attrs...))
	return s
}

// Child starts a span under parent (a span of this trace, or the
// connection span when parent is nil), whatever the instrumentations:
// plugins' own spans (kong.tracing) use it.
func (tr *Trace) Child(parent trace.Span, name string, start time.Time) trace.Span {
	ctx := tr.ctx
	if parent != nil {
		ctx = trace.ContextWithSpan(ctx, parent)
	}
	_, s := tr.t.tracer.Start(ctx, name, trace.WithTimestamp(start))
	return s
}

// Root is the connection span.
func (tr *Trace) Root() trace.Span { return tr.root }

// SpanContext is the connection span's context, to pass on upstream.
func (tr *Trace) SpanContext() trace.SpanContext { return tr.root.SpanContext() }

// End ends the connection span with the session's final attributes;
// status >= 500 marks it an error, as it is the proxy's failure.
func (tr *Trace) End(status int, attrs ...attribute.KeyValue) {
	tr.root.SetAttributes(attrs...)
	tr.root.SetAttributes(attribute.Int("gong.session.status", status))
	if status >= 500 {
		tr.root.SetStatus(codes.Error, fmt.Sprintf("session status %d", status))
	}
	tr.root.End()
}

// Fail records err on span s and marks it failed.
func Fail(s trace.Span, err error) {
	s.RecordError(err)
	s.SetStatus(codes.Error, err.Error())
}

// TraceparentTLV is the PROXY protocol v2 TLV type, in the range the
// specification leaves to applications, that carries a W3C traceparent
// ("00-<trace id>-<span id>-<flags>") in ASCII.
const TraceparentTLV = 0xE7

// ParseTraceparent reads a W3C traceparent; it returns an invalid
// SpanContext when v is not one.
func ParseTraceparent(v []byte) trace.SpanContext {
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": string(v)})
	return trace.SpanContextFromContext(ctx)
}

// FormatTraceparent writes sc as a W3C traceparent.
func FormatTraceparent(sc trace.SpanContext) []byte {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
	return []byte(c["traceparent"])
}

// SetErrorLog sends the OpenTelemetry SDK's errors, such as failed
// exports, to log. The SDK has one handler per process.
func SetErrorLog(log func(error)) { otel.SetErrorHandler(otel.ErrorHandlerFunc(log)) }
