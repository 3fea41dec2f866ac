package spec

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gong-proxy/gong/runtime"
)

// logRecord is the part of kong.log.serialize's stream record the log
// plugin tests check.
type logRecord struct {
	Session struct {
		Status   int `json:"status"`
		Received int `json:"received"`
		Sent     int `json:"sent"`
	} `json:"session"`
	Route    struct{ Name string } `json:"route"`
	Service  struct{ Name string } `json:"service"`
	ClientIP string                `json:"client_ip"`
	Tries    []map[string]any      `json:"tries"`
}

// checkRecord asserts data is the record of one "hello" exchange through
// route logged of service echo-service, and returns it.
func checkRecord(t *testing.T, data []byte) logRecord {
	t.Helper()
	var rec logRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("not a JSON record: %v\n%s", err, data)
	}
	if rec.Session.Status != 200 || rec.Session.Received != 6 || rec.Session.Sent != 9 ||
		rec.Route.Name != "logged" || rec.Service.Name != "echo-service" || rec.ClientIP != "127.0.0.1" {
		t.Errorf("serialized record %+v\n%s", rec, data)
	}
	return rec
}

// logPluginGong starts gong with one route (logged, port p, to an echo
// upstream) and the plugin with config (a YAML flow mapping) on it, and
// returns the listener's address.
func logPluginGong(t *testing.T, plugin, config string, ro runtime.Options) (*gong, string) {
	t.Helper()
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: echo-service
    url: tcp://%s
    routes:
      - name: logged
        protocols: [tcp]
        destinations: [{port: %d}]
        plugins:
          - name: %s
            protocols: [tcp]
            config: %s
`, echo, p, plugin, config)
	g := startGongWith(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml, ro)
	return g, fmt.Sprintf("127.0.0.1:%d", p)
}

// hello makes one proxied "hello" exchange.
func hello(t *testing.T, addr string) {
	t.Helper()
	if got, err := roundTrip(addr, "hello"); err != nil || got != "e: hello" {
		t.Fatalf("exchange through gong: %q, %v", got, err)
	}
}

// tcpLines accepts connections and delivers every line received, with
// the number of the connection it came on (1, 2, ...).
type tcpLine struct {
	conn int
	line string
}

func tcpLines(t testing.TB) (string, <-chan tcpLine) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveLines(t, ln)
}

func serveLines(t testing.TB, ln net.Listener) (string, <-chan tcpLine) {
	t.Helper()
	ch := make(chan tcpLine, 16)
	addr := serveConns(t, ln, func(c net.Conn, n int) {
		defer c.Close()
		eachLine(c, func(line string) bool {
			ch <- tcpLine{n, line}
			return true
		})
	})
	return addr, ch
}

// datagrams delivers what arrives on a UDP socket, one string per datagram.
func datagrams(t *testing.T) (string, <-chan string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String(), readPackets(pc)
}

func readPackets(pc net.PacketConn) <-chan string {
	ch := make(chan string, 64)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return ch
}

// next returns the next value of ch, failing after 10 seconds.
func next[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		panic("unreachable")
	}
}

func TestTCPLog(t *testing.T) {
	t.Parallel()
	addr, lines := tcpLines(t)
	host, port := hostPort(addr)
	_, gw := logPluginGong(t, "tcp-log", fmt.Sprintf("{host: %s, port: %s}", host, port), runtime.Options{})
	hello(t, gw)
	first := next(t, lines, "tcp-log line")
	checkRecord(t, []byte(first.line))
	// The second record reuses the kept-alive connection.
	hello(t, gw)
	second := next(t, lines, "second tcp-log line")
	checkRecord(t, []byte(second.line))
	if second.conn != first.conn {
		t.Errorf("second record came on connection %d; want the kept-alive %d", second.conn, first.conn)
	}
}

func TestTCPLogTLS(t *testing.T) {
	t.Parallel()
	// httptest's server supplies a certificate for the TLS log server.
	cert := httptest.NewTLSServer(http.NotFoundHandler())
	cfg := cert.TLS.Clone()
	cert.Close()
	sni := make(chan string, 4)
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		sni <- hello.ServerName
		return nil, nil
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, lines := serveLines(t, ln)
	host, port := hostPort(addr)
	_, gw := logPluginGong(t, "tcp-log", fmt.Sprintf("{host: %s, port: %s, tls: true, tls_sni: logs.example.com}", host, port), runtime.Options{})
	hello(t, gw)
	checkRecord(t, []byte(next(t, lines, "tcp-log line over TLS").line))
	if got := next(t, sni, "TLS handshake"); got != "logs.example.com" {
		t.Errorf("SNI %q; want tls_sni", got)
	}
	// The kept-alive TLS connection carries the next record without a
	// new handshake.
	hello(t, gw)
	checkRecord(t, []byte(next(t, lines, "second tcp-log line over TLS").line))
	select {
	case s := <-sni:
		t.Errorf("second handshake (SNI %q); want the kept-alive connection", s)
	default:
	}
}

func TestUDPLog(t *testing.T) {
	t.Parallel()
	addr, packets := datagrams(t)
	host, port := hostPort(addr)
	_, gw := logPluginGong(t, "udp-log", fmt.Sprintf("{host: %s, port: %s}", host, port), runtime.Options{})
	hello(t, gw)
	checkRecord(t, []byte(next(t, packets, "udp-log datagram")))
}

func TestHTTPLog(t *testing.T) {
	t.Parallel()
	type request struct {
		method, path, contentType, auth, custom string
		body                                    []byte
	}
	reqs := make(chan request, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		reqs <- request{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), r.Header.Get("X-Custom"), body}
	}))
	t.Cleanup(srv.Close)
	endpoint := strings.Replace(srv.URL, "http://", "http://user:secret@", 1) + "/logs"
	_, gw := logPluginGong(t, "http-log",
		fmt.Sprintf(`{http_endpoint: "%s", method: PUT, headers: {X-Custom: yes}}`, endpoint), runtime.Options{})
	hello(t, gw)
	r := next(t, reqs, "http-log request")
	if r.method != "PUT" || r.path != "/logs" || r.contentType != "application/json" ||
		r.auth != "Basic dXNlcjpzZWNyZXQ=" || r.custom != "yes" {
		t.Errorf("request %s %s, Content-Type %q, Authorization %q, X-Custom %q", r.method, r.path, r.contentType, r.auth, r.custom)
	}
	checkRecord(t, r.body)
}

func TestHTTPLogBatches(t *testing.T) {
	t.Parallel()
	bodies := make(chan []byte, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		bodies <- body
	}))
	t.Cleanup(srv.Close)
	_, gw := logPluginGong(t, "http-log",
		fmt.Sprintf(`{http_endpoint: "%s", queue: {max_batch_size: 2, max_coalescing_delay: 0.2}}`, srv.URL), runtime.Options{})
	hello(t, gw)
	hello(t, gw)
	// Queues live in a VM, so the two records may come in one batch or,
	// when the sessions ended on different VMs, in two.
	for n := 0; n < 2; {
		var batch []json.RawMessage
		body := next(t, bodies, "http-log batch")
		if err := json.Unmarshal(body, &batch); err != nil || len(batch) == 0 || n+len(batch) > 2 {
			t.Fatalf("batch of %d (%v); want a JSON array of the records:\n%s", len(batch), err, body)
		}
		for _, rec := range batch {
			checkRecord(t, rec)
		}
		n += len(batch)
	}
}

func TestSyslog(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log.sock")
	pc, err := net.ListenPacket("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	msgs := readPackets(pc)
	_, gw := logPluginGong(t, "syslog", "{successful_severity: warning, facility: local1}", runtime.Options{SyslogSocket: path})
	hello(t, gw)
	msg := next(t, msgs, "syslog message")
	// local1 (17) * 8 + warning (4)
	if !strings.HasPrefix(msg, "<140>") || !strings.Contains(msg, " kong[") {
		t.Errorf("syslog message %q; want priority <140> from kong", msg)
	}
	checkRecord(t, []byte(msg[strings.Index(msg, "{"):]))
}

func TestStatsd(t *testing.T) {
	t.Parallel()
	addr, packets := datagrams(t)
	host, port := hostPort(addr)
	_, gw := logPluginGong(t, "statsd", fmt.Sprintf("{host: %s, port: %s}", host, port), runtime.Options{})
	hello(t, gw)
	want := map[string]bool{
		"kong.service.echo-service.request.count:1|c": false,
		"kong.service.echo-service.request.size:6|c":  false,
		"kong.service.echo-service.response.size:9|c": false,
		"kong.service.echo-service.status.200:1|c":    false,
	}
	prefixes := []string{"kong.service.echo-service.latency:", "kong.service.echo-service.kong_latency:"}
	seen := map[string]bool{}
	for missing := len(want) + len(prefixes); missing > 0; {
		m := next(t, packets, "statsd metric")
		if _, ok := want[m]; ok && !want[m] {
			want[m] = true
			missing--
		}
		for _, p := range prefixes {
			if strings.HasPrefix(m, p) && strings.HasSuffix(m, "|ms") && !seen[p] {
				seen[p] = true
				missing--
			}
		}
	}
}

func TestLoggly(t *testing.T) {
	t.Parallel()
	addr, packets := datagrams(t)
	host, port := hostPort(addr)
	_, gw := logPluginGong(t, "loggly", fmt.Sprintf("{host: %s, port: %s, key: abc, tags: [t1]}", host, port), runtime.Options{})
	hello(t, gw)
	msg := next(t, packets, "loggly datagram")
	// info (6) + 8
	if !strings.HasPrefix(msg, "<14>1 ") || !strings.Contains(msg, ` kong - - [abc@41058 tag="t1"] {`) {
		t.Errorf("loggly line %q", msg)
	}
	checkRecord(t, []byte(msg[strings.Index(msg, "{"):]))
}

func TestDatadog(t *testing.T) {
	t.Parallel()
	addr, packets := datagrams(t)
	host, port := hostPort(addr)
	_, gw := logPluginGong(t, "datadog", fmt.Sprintf("{host: %s, port: %s}", host, port), runtime.Options{})
	hello(t, gw)
	want := map[string]bool{
		"kong.request.count:1|c|#name:echo-service,status:200,app:kong":  false,
		"kong.request.size:6|ms|#name:echo-service,status:200,app:kong":  false,
		"kong.response.size:9|ms|#name:echo-service,status:200,app:kong": false,
	}
	for missing := len(want); missing > 0; {
		m := next(t, packets, "datadog metric")
		if done, ok := want[m]; ok && !done {
			want[m] = true
			missing--
		}
	}
}

func TestHTTPLogRetries(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	bodies := make(chan []byte, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) == 1 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		bodies <- body
	}))
	t.Cleanup(srv.Close)
	g, gw := logPluginGong(t, "http-log", fmt.Sprintf(`{http_endpoint: "%s"}`, srv.URL), runtime.Options{})
	hello(t, gw)
	checkRecord(t, next(t, bodies, "retried http-log request"))
	if log := g.errLog.String(); !strings.Contains(log, "handler could not process entries: request to 127.0.0.1:") ||
		!strings.Contains(log, "returned status code 503 and body not yet") {
		t.Errorf("error log lacks the failed attempt:\n%s", log)
	}
}

// BenchmarkTCPLogConnection is one connection through gong with tcp-log,
// until its record has reached the log server.
func BenchmarkTCPLogConnection(b *testing.B) {
	logAddr, lines := tcpLines(b)
	host, port := hostPort(logAddr)
	echo := startEcho(b, "e")
	p := listenPort(b)
	yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n  - name: e\n    url: tcp://%s\n    routes:\n      - protocols: [tcp]\n        destinations: [{port: %d}]\n        plugins: [{name: tcp-log, protocols: [tcp], config: {host: %s, port: %s}}]\n",
		echo, p, host, port)
	startGong(b, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nproxy_stream_access_log = off\n", p), yml)
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := roundTrip(addr, "x"); err != nil {
			b.Fatal(err)
		}
		select {
		case <-lines:
		case <-time.After(10 * time.Second):
			b.Fatal("no tcp-log record within 10s")
		}
	}
}

func TestStatsdTCPWithTags(t *testing.T) {
	t.Parallel()
	addr, lines := tcpLines(t)
	host, port := hostPort(addr)
	_, gw := logPluginGong(t, "statsd", fmt.Sprintf(
		"{host: %s, port: %s, use_tcp: true, tag_style: dogstatsd, metrics: [{name: request_count, stat_type: counter, sample_rate: 1}]}",
		host, port), runtime.Options{})
	hello(t, gw)
	got := next(t, lines, "statsd metric over TCP").line
	want := "kong.request.count:1|c|#service:echo-service,route:logged,workspace:0dc6f45b-8f8d-40d2-a504-473544ee190b,node:"
	if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, ",status:200") {
		t.Errorf("metric %q; want %s<host>,status:200", got, want)
	}
}
