package runloop

import (
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gong-proxy/gong/pdk"
	"github.com/gong-proxy/gong/runtime/telemetry"
)

// This file is kong.tracing: plugins' spans under the session's trace.

var (
	_ pdk.Tracing = (*pluginTracing)(nil)
	_ pdk.Span    = pluginSpan{}
)

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
