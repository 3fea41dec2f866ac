package spec

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/gong-proxy/gong/internal/testsvc"
	"github.com/gong-proxy/gong/runtime/telemetry"
)

// otlpReceiver is an OTLP collector run by a test: it decodes the
// ExportTraceServiceRequests gong sends, over HTTP or gRPC, and keeps
// their spans with their resources' attributes.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu       sync.Mutex
	spans    []*tracepb.Span
	resource map[string]any
}

func (r *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		r.resource = attrs(rs.Resource.Attributes)
		for _, ss := range rs.ScopeSpans {
			r.spans = append(r.spans, ss.Spans...)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) received() []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// startOTLPHTTP serves OTLP/HTTP with protobuf bodies; it returns the
// receiver and its traces URL.
func startOTLPHTTP(t testing.TB) (*otlpReceiver, string) {
	r := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var in coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &in)
		}
		if err != nil || req.URL.Path != "/v1/traces" {
			http.Error(w, fmt.Sprintf("bad export to %s: %v", req.URL.Path, err), http.StatusBadRequest)
			return
		}
		out, _ := r.Export(req.Context(), &in)
		data, _ := proto.Marshal(out)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL + "/v1/traces"
}

// startOTLPGRPC serves OTLP/gRPC; it returns the receiver and its address.
func startOTLPGRPC(t *testing.T) (*otlpReceiver, string) {
	r := &otlpReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, r)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return r, ln.Addr().String()
}

func attrs(kvs []*commonpb.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = v.IntValue
		case *commonpb.AnyValue_BoolValue:
			m[kv.Key] = v.BoolValue
		case *commonpb.AnyValue_DoubleValue:
			m[kv.Key] = v.DoubleValue
		}
	}
	return m
}

func tracingConf(protocol, endpoint string, rate float64) string {
	return fmt.Sprintf("tracing_instrumentations = all\ntracing_sampling_rate = %g\ntracing_otlp_protocol = %s\n"+
		"tracing_otlp_endpoint = %s\ntracing_otlp_timeout = 2000\ntracing_resource_attributes = deployment.environment=spec\n", rate, protocol, endpoint)
}

// spanNamed returns the only span called name, failing otherwise.
func spanNamed(t *testing.T, spans []*tracepb.Span, name string) *tracepb.Span {
	t.Helper()
	var found []*tracepb.Span
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans named %q; want 1 among %s", len(found), name, spanNames(spans))
	}
	return found[0]
}

func spanNames(spans []*tracepb.Span) string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// TestTracingTLSConnection: a TLS-terminated connection through two
// plugins is one server span, with children for the ClientHello, the
// handshake, both route matches, each plugin phase, the balancer try, and
// the plugin's own span under its phase's.
func TestTracingTLSConnection(t *testing.T) {
	t.Parallel()
	recv, endpoint := startOTLPHTTP(t)
	echo := startEcho(t, "plain")
	p := listenPort(t)
	path := filepath.Join(t.TempDir(), "rec")
	yml, _, _ := tlsConfig(t, echo, p)
	yml += fmt.Sprintf("plugins:\n  - {name: recorder, protocols: [tls], config: {path: %s}}\n  - {name: spans, route: by-sni}\n", path)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\nplugins = bundled, recorder, spans\nlua_package_path = %s\n", p, fixturePath(t))+
		tracingConf("http/protobuf", endpoint, 1), yml)
	tlsEcho(t, p).Close()
	g.stop() // flushes the spans

	spans := recv.received()
	root := spanNamed(t, spans, "stream connection")
	if root.Kind != tracepb.Span_SPAN_KIND_SERVER || len(root.ParentSpanId) != 0 {
		t.Errorf("connection span kind %v, parent %x; want a server root", root.Kind, root.ParentSpanId)
	}
	ra := attrs(root.Attributes)
	for k, want := range map[string]any{
		"network.transport": "tcp", "network.type": "ipv4", "client.address": "127.0.0.1", "server.port": int64(p),
		"gong.route.name": "by-sni", "gong.service.name": "echo", "gong.session.status": int64(200),
		"gong.session.bytes_received": int64(2), "gong.session.bytes_sent": int64(9),
		"tls.client.server_name": "exact.test", "gong.session.close_reason": "closed", "spans.active": true,
	} {
		if ra[k] != want {
			t.Errorf("connection span %s = %v (%T); want %v", k, ra[k], ra[k], want)
		}
	}
	if ra["gong.upstream.address"] != echo {
		t.Errorf("connection span upstream %v; want %s", ra["gong.upstream.address"], echo)
	}
	if recv.resource["service.name"] != "gong" || recv.resource["deployment.environment"] != "spec" {
		t.Errorf("resource %v; want service.name gong and the configured attribute", recv.resource)
	}
	children := []string{"stream tls client hello", "stream tls handshake", "kong.certificate.plugin.recorder",
		"kong.preread.plugin.recorder", "kong.preread.plugin.spans", "stream balancer try",
		"kong.log.plugin.recorder", "kong.log.plugin.spans"}
	for _, name := range children {
		s := spanNamed(t, spans, name)
		if string(s.TraceId) != string(root.TraceId) || string(s.ParentSpanId) != string(root.SpanId) {
			t.Errorf("span %q is not a child of the connection span", name)
		}
	}
	var routes int
	for _, s := range spans {
		if s.Name == "stream route match" && attrs(s.Attributes)["gong.route.name"] == "by-sni" {
			routes++
		}
	}
	if routes != 2 {
		t.Errorf("%d route matches of by-sni; want 2 (ClientHello, then the decrypted stream)", routes)
	}
	hs := attrs(spanNamed(t, spans, "stream tls handshake").Attributes)
	if hs["tls.protocol.version"] != "1.3" || hs["tls.established"] != true {
		t.Errorf("handshake span attributes %v", hs)
	}
	pre := attrs(spanNamed(t, spans, "kong.preread.plugin.recorder").Attributes)
	if pre["gong.plugin.name"] != "recorder" || pre["gong.plugin.priority"] != int64(1000) {
		t.Errorf("plugin span attributes %v", pre)
	}
	work := spanNamed(t, spans, "spans.work")
	if string(work.ParentSpanId) != string(spanNamed(t, spans, "kong.preread.plugin.spans").SpanId) {
		t.Errorf("the plugin's own span is not under its preread span")
	}
	if wa := attrs(work.Attributes); wa["spans.mark"] != "marked" || wa["spans.client"] != "127.0.0.1" {
		t.Errorf("plugin span attributes %v", wa)
	}
	if ev := spanNamed(t, spans, "spans.log").Events; len(ev) != 1 || ev[0].Name != "logged" {
		t.Errorf("plugin span events %v", ev)
	}
	try := attrs(spanNamed(t, spans, "stream balancer try").Attributes)
	if h, port := hostPort(echo); try["network.peer.address"] != h || fmt.Sprint(try["network.peer.port"]) != port {
		t.Errorf("balancer try attributes %v; want the echo server %s", try, echo)
	}
}

// TestTracingOverGRPC: the OTLP/gRPC exporter delivers the connection
// span too, and a refused upstream shows as failed tries.
func TestTracingOverGRPC(t *testing.T) {
	t.Parallel()
	recv, addr := startOTLPGRPC(t)
	p := listenPort(t)
	refused := testsvc.RefusedAddr(t)
	yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n%s", svc("gone", refused, "    retries: 1\n",
		fmt.Sprintf("      - name: r\n        protocols: [tcp]\n        destinations: [{port: %d}]\n", p)))
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p)+tracingConf("grpc", addr, 1), yml)
	c := dial(t, fmt.Sprintf("127.0.0.1:%d", p))
	expectClosed(t, c)
	g.stop()
	spans := recv.received()
	root := spanNamed(t, spans, "stream connection")
	if ra := attrs(root.Attributes); ra["gong.session.status"] != int64(502) || root.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("connection span status %v, %v; want 502 and an error", ra["gong.session.status"], root.Status)
	}
	var failed int
	for _, s := range spans {
		if s.Name == "stream balancer try" && s.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR && len(s.Events) > 0 {
			failed++
		}
	}
	if failed != 2 {
		t.Errorf("%d failed balancer tries with an error event; want 2 (retries: 1)", failed)
	}
}

// TestTracingPlainConnection: a plain TCP session (served by the event
// loops) has its connection span, its route match and its connect
// attempt, each under the connection's.
func TestTracingPlainConnection(t *testing.T) {
	t.Parallel()
	recv, endpoint := startOTLPHTTP(t)
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n%s", svc("e", echo, "",
		fmt.Sprintf("      - name: plain\n        protocols: [tcp]\n        destinations: [{port: %d}]\n", p)))
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p)+tracingConf("http/protobuf", endpoint, 1), yml)
	c := dial(t, fmt.Sprintf("127.0.0.1:%d", p))
	if got, err := exchange(c, "x"); err != nil || got != "e: x" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	echoed := uint64(time.Now().UnixNano())
	c.Close()
	g.stop()
	spans := recv.received()
	root := spanNamed(t, spans, "stream connection")
	ra := attrs(root.Attributes)
	for k, want := range map[string]any{
		"network.transport": "tcp", "server.port": int64(p), "gong.route.name": "plain",
		"gong.session.status": int64(200), "gong.session.bytes_received": int64(2), "gong.session.bytes_sent": int64(5),
	} {
		if ra[k] != want {
			t.Errorf("connection span %s = %v (%T); want %v", k, ra[k], ra[k], want)
		}
	}
	for _, name := range []string{"stream route match", "stream balancer try"} {
		s := spanNamed(t, spans, name)
		if string(s.TraceId) != string(root.TraceId) || string(s.ParentSpanId) != string(root.SpanId) {
			t.Errorf("span %q is not a child of the connection span", name)
		}
	}
	try := spanNamed(t, spans, "stream balancer try")
	if h, port := hostPort(echo); attrs(try.Attributes)["network.peer.address"] != h || fmt.Sprint(attrs(try.Attributes)["network.peer.port"]) != port ||
		try.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("balancer try %v, status %v; want the echo server %s, no error", try.Attributes, try.Status, echo)
	}
	// The attempt ends when the connect does, before the echo came back.
	if try.EndTimeUnixNano < try.StartTimeUnixNano || try.EndTimeUnixNano > echoed {
		t.Errorf("balancer try from %d to %d; want it ended by the echo at %d", try.StartTimeUnixNano, try.EndTimeUnixNano, echoed)
	}
}

// proxyV2 is a PROXY v2 header from 127.0.0.1, with a traceparent TLV
// when traceparent is set.
func proxyV2(t *testing.T, traceparent string) []byte {
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6000})
	if traceparent != "" {
		if err := h.SetTLVs([]proxyproto.TLV{{Type: telemetry.TraceparentTLV, Value: []byte(traceparent)}}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTracingSampling: at rate 0 no connection is traced, unless a
// trusted PROXY header carries a sampled parent, which the span joins.
func TestTracingSampling(t *testing.T) {
	t.Parallel()
	recv, endpoint := startOTLPHTTP(t)
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n%s", svc("e", echo, "",
		fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{port: %d}]\n", p)))
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d proxy_protocol\ntrusted_ips = 127.0.0.1\n", p)+tracingConf("http/protobuf", endpoint, 0), yml)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, header := range [][]byte{
		proxyV2(t, ""), // no parent: rate 0 records nothing
		proxyV2(t, "00-"+traceID+"-"+parentID+"-00"), // a parent that did not sample
		proxyV2(t, "00-"+traceID+"-"+parentID+"-01"), // a sampled parent
	} {
		c := dial(t, fmt.Sprintf("127.0.0.1:%d", p))
		c.Write(header)
		if got, err := exchange(c, "x"); err != nil || got != "e: x" {
			t.Fatalf("echo: %q, %v", got, err)
		}
		c.Close()
	}
	g.stop()
	spans := recv.received()
	root := spanNamed(t, spans, "stream connection")
	if hex.EncodeToString(root.TraceId) != traceID || hex.EncodeToString(root.ParentSpanId) != parentID {
		t.Errorf("connection span in trace %x under %x; want the PROXY header's %s, %s", root.TraceId, root.ParentSpanId, traceID, parentID)
	}
	for _, s := range spans {
		if string(s.TraceId) != string(root.TraceId) {
			t.Errorf("span %q of another trace: only the sampled parent's connection is traced", s.Name)
		}
	}
}

// TestTracingCollectorDown: with the collector unreachable, connections
// still proxy and the server still stops.
func TestTracingCollectorDown(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n%s", svc("e", echo, "",
		fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{port: %d}]\n", p)))
	down := "http://" + testsvc.RefusedAddr(t) + "/v1/traces"
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\ntracing_batch_span_count = 2\ntracing_batch_flush_delay = 1\n", p)+
		tracingConf("http/protobuf", down, 1), yml)
	for i := range 50 {
		if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil || got != "e: x" {
			t.Fatalf("connection %d with the collector down: %q, %v", i, got, err)
		}
	}
	g.stop()
}

// scrape reads /metrics from h with the Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// value is the value of the series of fam whose labels include want
// (name=value pairs), or -1 when there is none.
func value(fams map[string]*dto.MetricFamily, fam string, want ...string) float64 {
	f := fams[fam]
	if f == nil {
		return -1
	}
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// waitFor scrapes until cond holds or 10 seconds pass: sessions end, and
// are counted, just after the client sees the close.
func waitForMetrics(t *testing.T, url, what string, cond func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	t.Helper()
	var fams map[string]*dto.MetricFamily
	eventually(t, "metrics showing "+what, func() bool {
		fams = scrape(t, url)
		return cond(fams)
	})
	return fams
}

// TestMetrics: Kong's stream series and gong's own move as connections
// pass, a plugin runs and the configuration reloads.
func TestMetrics(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	p := listenPort(t)
	path := filepath.Join(t.TempDir(), "rec")
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: pool
    protocol: tcp
    host: echoes
    port: 1
    routes:
      - name: r
        protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: recorder, config: {path: %s}}]
upstreams:
  - name: echoes
    targets: [{target: %s}]
`, p, path, echo)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nplugins = bundled, recorder\nlua_package_path = %s\n", p, fixturePath(t)), yml)
	srv := httptest.NewServer(g.srv.MetricsHandler())
	defer srv.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", p)

	open := dial(t, addr)
	if got, err := exchange(open, "x"); err != nil || got != "e: x" {
		t.Fatalf("echo: %q, %v\n%s", got, err, g.errLog)
	}
	waitForMetrics(t, srv.URL, "one active connection", func(f map[string]*dto.MetricFamily) bool {
		return value(f, "gong_active_connections", "service=pool", "route=r") == 1
	})
	open.Close()
	for range 2 {
		if got, err := roundTrip(addr, "hello"); err != nil || got != "e: hello" {
			t.Fatalf("echo: %q, %v", got, err)
		}
	}
	sessions := []string{"service=pool", "route=r", "code=200", "source=service", "workspace=default"}
	checks := []struct {
		fam    string
		labels []string
		want   float64
	}{
		{"kong_stream_sessions_total", sessions, 3},
		{"gong_active_connections", []string{"service=pool", "route=r"}, 0},
		{"kong_session_duration_ms", []string{"service=pool", "route=r"}, 3},
		{"kong_kong_latency_ms", []string{"service=pool", "route=r"}, 3},
		{"kong_bandwidth_bytes", []string{"route=r", "direction=ingress"}, 2 + 6 + 6},
		{"kong_bandwidth_bytes", []string{"route=r", "direction=egress"}, 5 + 9 + 9},
		{"kong_upstream_target_health", []string{"upstream=echoes", "target=" + echo, "address=" + echo, "state=healthchecks_off", "subsystem=stream"}, 1},
		{"kong_upstream_target_health", []string{"upstream=echoes", "state=healthy"}, 0},
		{"gong_lua_phase_duration_seconds", []string{"plugin=recorder", "phase=preread"}, 3},
		{"gong_lua_phase_duration_seconds", []string{"plugin=recorder", "phase=log"}, 3},
	}
	// A scrape is no snapshot: series written together may be read on
	// either side of the write, so poll until all of them agree.
	var fams map[string]*dto.MetricFamily
	var wrong []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		fams, wrong = scrape(t, srv.URL), nil
		for _, c := range checks {
			if got := value(fams, c.fam, c.labels...); got != c.want {
				wrong = append(wrong, fmt.Sprintf("%s%v = %v; want %v", c.fam, c.labels, got, c.want))
			}
		}
		if len(wrong) == 0 || time.Now().After(deadline) {
			break
		}
		<-time.After(20 * time.Millisecond)
	}
	for _, w := range wrong {
		t.Error(w)
	}
	if value(fams, "gong_lua_vms") < 1 {
		t.Errorf("gong_lua_vms = %v; want the pool's VMs", value(fams, "gong_lua_vms"))
	}

	// A session that matches no route is not counted, as in Kong.
	writeFile(t, g.ymlPath, "_format_version: \"3.0\"\n")
	if err := g.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, g.ymlPath, "not: [yaml")
	if g.srv.Reload() == nil {
		t.Fatal("a broken kong.yml reloaded")
	}
	expectClosed(t, dial(t, addr))
	fams = scrape(t, srv.URL)
	if got := value(fams, "gong_reloads_total", "result=success"); got != 1 {
		t.Errorf("successful reloads %v; want 1", got)
	}
	if got := value(fams, "gong_reloads_total", "result=failure"); got != 1 {
		t.Errorf("failed reloads %v; want 1", got)
	}
	if got := value(fams, "kong_stream_sessions_total", "code=500"); got != -1 {
		t.Errorf("an unrouted session was counted (%v)", got)
	}
}

// BenchmarkTracingNewConnections compares the new-connection rate with
// tracing off, at 1% sampling and at 100%, exporting to a real OTLP/HTTP
// receiver. The three servers take turns in each round, so a noisy
// machine slows them alike; the reported ratios are to tracing off.
func BenchmarkTracingNewConnections(b *testing.B) {
	_, endpoint := startOTLPHTTP(b)
	echo := startEcho(b, "e")
	settings := []struct {
		name  string
		extra string
	}{
		{"off", ""},
		{"1%", tracingConf("http/protobuf", endpoint, 0.01)},
		{"100%", tracingConf("http/protobuf", endpoint, 1)},
	}
	addrs := make([]string, len(settings))
	for i, s := range settings {
		p := listenPort(b)
		yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n%s", svc("e", echo, "",
			fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{port: %d}]\n", p)))
		startGong(b, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nproxy_stream_access_log = off\n", p)+s.extra, yml)
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	const clients, perClient = 8, 25
	elapsed := make([]time.Duration, len(settings))
	round := func(addr string) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for range perClient {
					if _, err := roundTrip(addr, "x"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	for i := 0; b.Loop(); i++ {
		for j := range settings {
			k := (i + j) % len(settings) // rotate who goes first
			elapsed[k] += round(addrs[k])
		}
	}
	conns := float64(b.N * clients * perClient)
	b.ReportMetric(conns/elapsed[0].Seconds(), "conn/s-off")
	for k := 1; k < len(settings); k++ {
		b.ReportMetric(float64(elapsed[0])/float64(elapsed[k]), "ratio-"+settings[k].name)
	}
}

// TestProxyProtocolToUpstream: a service with proxy_protocol (a gong
// extension) gets a PROXY v2 header with the client's address and, for a
// traced connection, a traceparent TLV whose parent is the connect
// attempt's span.
func TestProxyProtocolToUpstream(t *testing.T) {
	t.Parallel()
	recv, endpoint := startOTLPHTTP(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	headers := make(chan *proxyproto.Header, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		h, err := proxyproto.Read(br)
		headers <- h
		if err == nil {
			line, _ := br.ReadString('\n')
			io.WriteString(c, "pp: "+line)
		}
	}()
	p := listenPort(t)
	yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n%s", svc("pp", ln.Addr().String(), "    proxy_protocol: true\n",
		fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{port: %d}]\n", p)))
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p)+tracingConf("http/protobuf", endpoint, 1), yml)
	c := dial(t, fmt.Sprintf("127.0.0.1:%d", p))
	if got, err := exchange(c, "x"); err != nil || got != "pp: x" {
		t.Fatalf("echo behind a PROXY header: %q, %v\n%s", got, err, g.errLog)
	}
	h := <-headers
	if h == nil || h.Version != 2 || h.SourceAddr.String() != c.LocalAddr().String() || h.DestinationAddr.String() != c.RemoteAddr().String() {
		t.Fatalf("PROXY header %+v; want v2 from %s to %s", h, c.LocalAddr(), c.RemoteAddr())
	}
	tlvs, _ := h.TLVs()
	var traceparent string
	for _, tlv := range tlvs {
		if tlv.Type == telemetry.TraceparentTLV {
			traceparent = string(tlv.Value)
		}
	}
	c.Close()
	g.stop()
	try := spanNamed(t, recv.received(), "stream balancer try")
	if want := fmt.Sprintf("00-%x-%x-01", try.TraceId, try.SpanId); traceparent != want {
		t.Errorf("traceparent TLV %q; want the balancer try's %q", traceparent, want)
	}
}

// TestTracingReloadSwapsExporters: a reload that points tracing elsewhere
// sends the new connections' spans there, and still delivers the spans
// of the configuration it replaced.
func TestTracingReloadSwapsExporters(t *testing.T) {
	t.Parallel()
	before, endpointBefore := startOTLPHTTP(t)
	after, endpointAfter := startOTLPHTTP(t)
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n%s", svc("e", echo, "",
		fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{port: %d}]\n", p)))
	listen := fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p)
	g := startGong(t, listen+tracingConf("http/protobuf", endpointBefore, 1), yml)
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	if got, err := roundTrip(addr, "x"); err != nil || got != "e: x" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	base := "prefix = " + g.dir + "\ndatabase = off\ndeclarative_config = " + g.ymlPath + "\nproxy_stream_access_log = off\n"
	writeFile(t, g.confPath, base+listen+tracingConf("http/protobuf", endpointAfter, 1))
	if err := g.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got, err := roundTrip(addr, "x"); err != nil || got != "e: x" {
			t.Fatalf("echo after the reload: %q, %v", got, err)
		}
	}
	g.stop()
	count := func(spans []*tracepb.Span) (n int) {
		for _, s := range spans {
			if s.Name == "stream connection" {
				n++
			}
		}
		return n
	}
	// A connection keeps its generation's tracer, even when it ends after
	// the reload.
	if b, a := count(before.received()), count(after.received()); b != 1 || a != 2 {
		t.Errorf("connection spans: %d before the reload, %d after; want 1 and 2", b, a)
	}
}

// TestTracingUDPSession: a UDP session is one span with the datagram
// bytes, and its route match.
func TestTracingUDPSession(t *testing.T) {
	t.Parallel()
	recv, endpoint := startOTLPHTTP(t)
	echo := startUDPEcho(t, "u")
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: u
    url: udp://%s
    read_timeout: 100
    write_timeout: 100
    routes:
      - name: udp-route
        protocols: [udp]
        destinations: [{port: %d}]
`, echo, p)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d udp\n", p)+tracingConf("http/protobuf", endpoint, 1), yml)
	if got := udpAsk(t, dialUDP(t, fmt.Sprintf("127.0.0.1:%d", p)), "ping"); got != "u: ping" {
		t.Fatalf("udp echo: %q", got)
	}
	// The session ends once idle for the service's 100 ms timeout.
	g.waitSessionsEnded(t, 1)
	g.stop()
	spans := recv.received()
	root := spanNamed(t, spans, "stream udp session")
	ra := attrs(root.Attributes)
	if ra["network.transport"] != "udp" || ra["gong.route.name"] != "udp-route" || ra["gong.session.bytes_received"] != int64(4) || ra["gong.session.bytes_sent"] != int64(7) {
		t.Errorf("udp session span attributes %v", ra)
	}
	if m := spanNamed(t, spans, "stream route match"); string(m.ParentSpanId) != string(root.SpanId) {
		t.Errorf("route match is not a child of the session span")
	}
}

// TestMetricsTLSHandshakeErrors: a client that cannot agree on a TLS
// version is counted as a downstream handshake error.
func TestMetricsTLSHandshakeErrors(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "plain")
	p := listenPort(t)
	yml, _, _ := tlsConfig(t, echo, p)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\nssl_cipher_suite = modern\n", p), yml)
	srv := httptest.NewServer(g.srv.MetricsHandler())
	defer srv.Close()
	if _, err := tlsDial(t, fmt.Sprintf("127.0.0.1:%d", p), "exact.test", &tls.Config{MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("a TLS 1.2 handshake succeeded with ssl_cipher_suite = modern")
	}
	waitForMetrics(t, srv.URL, "one downstream handshake error", func(f map[string]*dto.MetricFamily) bool {
		return value(f, "gong_tls_handshake_errors_total", "side=downstream") == 1
	})
}
