package telemetry

import (
	"testing"
	"time"

	"github.com/gong-proxy/gong/runtime/conf"
)

func TestTraceparent(t *testing.T) {
	tests := []struct {
		in      string
		valid   bool
		sampled bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true, true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true, false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false, false}, // zero trace id
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false, false}, // zero span id
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false, false}, // forbidden version
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", false, false},
		{"not a traceparent", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		sc := ParseTraceparent([]byte(tt.in))
		if sc.IsValid() != tt.valid || sc.IsSampled() != tt.sampled {
			t.Errorf("ParseTraceparent(%q): valid %v, sampled %v; want %v, %v", tt.in, sc.IsValid(), sc.IsSampled(), tt.valid, tt.sampled)
			continue
		}
		if tt.valid && !sc.IsRemote() {
			t.Errorf("ParseTraceparent(%q) is not a remote parent", tt.in)
		}
		if tt.valid && string(FormatTraceparent(sc)) != tt.in {
			t.Errorf("FormatTraceparent(ParseTraceparent(%q)) = %q", tt.in, FormatTraceparent(sc))
		}
	}
}

func TestTracerOffAndSame(t *testing.T) {
	off := conf.Tracing{SamplingRate: 0.01}
	tr, err := NewTracer(off)
	if tr != nil || err != nil {
		t.Fatalf("NewTracer(off) = %v, %v; want nil, nil", tr, err)
	}
	if tr.Start("x", ParseTraceparent(nil), time.Now()) != nil || !tr.Same(off) || tr.Shutdown() != nil {
		t.Error("a nil tracer must trace nothing and match settings that are off")
	}
	on := conf.Tracing{Instrumentations: []string{"tls"}, SamplingRate: 1, OTLPProtocol: "http/protobuf",
		OTLPEndpoint: "http://127.0.0.1:1/v1/traces", OTLPTimeout: time.Second, BatchSpanCount: 10, BatchFlushDelay: time.Second,
		ResourceAttributes: map[string]string{"a": "b"}}
	if tr, err = NewTracer(on); err != nil || tr == nil {
		t.Fatalf("NewTracer(on) = %v, %v", tr, err)
	}
	defer tr.Shutdown()
	changed := on
	changed.ResourceAttributes = map[string]string{"a": "c"}
	if !tr.Same(on) || tr.Same(changed) || tr.Same(off) {
		t.Error("Same must compare every setting")
	}
	trace := tr.Start("conn", ParseTraceparent(nil), time.Now())
	if trace == nil {
		t.Fatal("rate 1 did not sample")
	}
	if sp := trace.Span(TLS, "handshake"); !sp.IsRecording() {
		t.Error("a span of the tls instrumentation does not record")
	}
	if sp := trace.Span(Router, "route"); sp.IsRecording() {
		t.Error("a span of an instrumentation that is off records")
	}
	trace.End(200)
}
