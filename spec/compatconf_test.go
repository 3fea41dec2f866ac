package spec

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/gong-proxy/gong/runtime"
	"github.com/gong-proxy/gong/runtime/conf"
)

// TestSproxyProxyTimeoutCapsSSLListeners: nginx_sproxy_proxy_timeout ends
// an idle session on an ssl listener even though its service allows a
// minute, as Kong's TLS preread hop does.
func TestSproxyProxyTimeoutCapsSSLListeners(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "plain")
	p := listenPort(t)
	yml := "_format_version: \"3.0\"\nservices:\n" + svc("e", echo, "", fmt.Sprintf("      - protocols: [tls]\n        destinations: [{port: %d}]\n", p))
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\nnginx_sproxy_proxy_timeout = 300ms\n", p), yml)
	c, err := tlsDial(t, fmt.Sprintf("127.0.0.1:%d", p), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := exchange(c, "x"); err != nil || got != "plain: x" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	// The connection's deadline is 10s; the service's idle timeout 60s.
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read on an idle session = %v; want EOF once nginx_sproxy_proxy_timeout passed", err)
	}
}

// TestRefusedTLSSessionClosesCleanly: a TLS session ip-restriction
// refuses in preread ends with close_notify and FIN, never a reset, even
// when the client has sent data gong did not read: 100 clients in a row
// write a line and read to EOF without an error.
func TestRefusedTLSSessionClosesCleanly(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "plain")
	p := listenPort(t)
	yml := "_format_version: \"3.0\"\nservices:\n" + svc("e", echo, "", fmt.Sprintf(`      - protocols: [tls]
        destinations: [{port: %d}]
        plugins:
          - name: ip-restriction
            protocols: [tls]
            config: {deny: [127.0.0.1]}
`, p))
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\n", p), yml)
	for i := range 100 {
		c, err := tlsDial(t, fmt.Sprintf("127.0.0.1:%d", p), "", nil)
		if err != nil {
			t.Fatalf("attempt %d: handshake: %v", i+1, err)
		}
		c.Write([]byte("hello, are you there?\n"))
		if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
			t.Fatalf("attempt %d: read %d bytes, then %v; want EOF and nothing else", i+1, n, err)
		}
		c.Close()
	}
	g.waitErrLog(t, "denial logged", "IP address not allowed")
}

// TestAPIErrorLogs: the Admin API's errors go to admin_error_log and the
// Status API's to status_error_log, not to the stream error log.
func TestAPIErrorLogs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	adminPort, statusPort := listenPort(t), listenPort(t)
	confPath := filepath.Join(dir, "kong.conf")
	writeFile(t, confPath, fmt.Sprintf("prefix = %s\ndatabase = off\nlog_level = info\n"+
		"admin_listen = 127.0.0.1:%d\nstatus_listen = 127.0.0.1:%d ssl\n"+
		"proxy_stream_access_log = off\nproxy_stream_error_log = %s/error.log\nadmin_error_log = %s/admin_error.log\nstatus_error_log = %s/status_error.log\n",
		dir, adminPort, statusPort, dir, dir, dir))
	c, _, err := conf.Load(conf.Options{Path: confPath, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := runtime.New(runtime.Options{Config: c, Sockets: sockets})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/config", adminPort), "application/json",
		strings.NewReader(`{"_format_version": "3.0", "services": [{"name": "s", "host": "127.0.0.1", "protocol": "nope"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	plain, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", statusPort))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(plain, "GET /status HTTP/1.0\r\n\r\n")
	io.Copy(io.Discard, plain)
	plain.Close()
	read := func(name string) string { b, _ := os.ReadFile(filepath.Join(dir, name)); return string(b) }
	eventually(t, "admin error logged", func() bool { return strings.Contains(read("admin_error.log"), "POST /config failed") })
	eventually(t, "status error logged", func() bool {
		return strings.Contains(read("status_error.log"), "status_listen: http: TLS handshake error")
	})
	if stream := read("error.log"); strings.Contains(stream, "POST /config failed") || strings.Contains(stream, "TLS handshake error") {
		t.Errorf("the stream error log has the APIs' errors:\n%s", stream)
	}
}

// TestKongObservabilityPlugins: a Kong kong.yml with the prometheus and
// opentelemetry plugins loads unchanged; the opentelemetry entry sends the
// connection's spans to its traces_endpoint, with its resource attributes
// and sampling rate, though kong.conf names no collector.
func TestKongObservabilityPlugins(t *testing.T) {
	t.Parallel()
	recv, endpoint := startOTLPHTTP(t)
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
plugins:
  - name: prometheus
    config: {per_consumer: false, status_code_metrics: true, latency_metrics: true, bandwidth_metrics: true, upstream_health_metrics: true}
  - name: opentelemetry
    config:
      traces_endpoint: %s
      headers: {X-Auth: token}
      resource_attributes: {service.name: kong-edge}
      batch_span_count: 10
      batch_flush_delay: 1
      sampling_rate: 1
      propagation: {default_format: w3c}
services:
%s`, endpoint, svc("s", echo, "", fmt.Sprintf("      - protocols: [tcp]\n        destinations: [{port: %d}]\n", p)))
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\ntracing_instrumentations = all\n", p), yml)
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil || got != "e: x" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	g.waitSessionsEnded(t, 1)
	g.stop()
	spanNamed(t, recv.received(), "stream connection")
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if recv.resource["service.name"] != "kong-edge" {
		t.Errorf("resource service.name = %v; want the plugin's resource_attributes", recv.resource["service.name"])
	}
}

// TestPrometheusPluginSelectsSeries: a prometheus plugin entry's flags
// select Kong's series; the others are not recorded.
func TestPrometheusPluginSelectsSeries(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
plugins:
  - name: prometheus
    config: {status_code_metrics: true, latency_metrics: false, bandwidth_metrics: false, upstream_health_metrics: false}
services:
%s`, svc("s", echo, "", fmt.Sprintf("      - name: r\n        protocols: [tcp]\n        destinations: [{port: %d}]\n", p)))
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	srv := httptest.NewServer(g.srv.MetricsHandler())
	defer srv.Close()
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil || got != "e: x" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	fams := waitForMetrics(t, srv.URL, "the session counted", func(f map[string]*dto.MetricFamily) bool {
		return f["kong_stream_sessions_total"] != nil
	})
	for _, name := range []string{"kong_session_duration_ms", "kong_kong_latency_ms", "kong_bandwidth_bytes"} {
		if fams[name] != nil {
			t.Errorf("%s recorded; the plugin turned it off", name)
		}
	}
}
