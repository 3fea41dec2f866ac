package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gong-proxy/gong/runtime"
	"github.com/gong-proxy/gong/runtime/conf"
)

// quitAsync starts a graceful quit and returns a channel closed when
// Quit has returned.
func quitAsync(g *gong) <-chan struct{} {
	quit := make(chan struct{})
	go func() { g.srv.Quit(); close(quit) }()
	return quit
}

// quitResult waits up to limit for a quit to end and returns what Done
// reports. A quit that does not end in time is stopped and fails the test.
func quitResult(t *testing.T, g *gong, quit <-chan struct{}, limit time.Duration) error {
	t.Helper()
	select {
	case <-quit:
	case <-time.After(limit):
		g.srv.Stop()
		t.Fatalf("quit did not end within %s", limit)
	}
	return <-g.srv.Done()
}

// TestQuitCutsSessionsAtDeadline: with nginx_main_worker_shutdown_timeout
// = 1s a connection that stays open is closed a second after the quit
// began; its log phase (tcp-log) and access-log line still happen, and
// Done reports the cut.
func TestQuitCutsSessionsAtDeadline(t *testing.T) {
	logAddr, lines := tcpLines(t)
	host, port := hostPort(logAddr)
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
          - name: tcp-log
            protocols: [tcp]
            config: {host: %s, port: %s}
`, echo, p, host, port)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nnginx_main_worker_shutdown_timeout = 1s\n", p), yml)
	held := dial(t, fmt.Sprintf("127.0.0.1:%d", p))
	if got, err := exchange(held, "hello"); err != nil || got != "e: hello" {
		t.Fatalf("exchange through gong: %q, %v", got, err)
	}

	began := time.Now()
	err := quitResult(t, g, quitAsync(g), 10*time.Second)
	took := time.Since(began)
	if took < time.Second || took > 6*time.Second {
		t.Errorf("quit took %s; want the 1s deadline (plus a margin)", took)
	}
	var q *runtime.QuitError
	if !errors.As(err, &q) || q.Cut != 1 || q.Lost != 0 {
		t.Fatalf("Done after quit = %v; want a QuitError with 1 session cut", err)
	}
	if !strings.Contains(err.Error(), "1 session(s) still open after 1s were closed") {
		t.Errorf("QuitError says %q", err)
	}
	expectClosed(t, held)
	rec := checkRecordLine(t, next(t, lines, "tcp-log record of the cut session").line)
	if rec.Session.Received != 6 {
		t.Errorf("logged record received %d bytes; want 6", rec.Session.Received)
	}
	if got := readLines(t, g.accessLog); len(got) != 1 || !strings.Contains(got[0], " TCP 200 ") {
		t.Errorf("access log after the cut: %q; want one TCP 200 line", got)
	}
	g.waitErrLog(t, "the cut is logged", "closed 1 session(s) still open 1s after the graceful quit began")
}

// checkRecordLine decodes a tcp-log line into the fields the tests check.
func checkRecordLine(t *testing.T, line string) logRecord {
	t.Helper()
	var rec logRecord
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("not a JSON record: %v\n%s", err, line)
	}
	return rec
}

// TestQuitWithoutSessionsIsClean: with nothing in flight a quit ends at
// once, well before the default 30s deadline, and reports nothing cut.
func TestQuitWithoutSessionsIsClean(t *testing.T) {
	echo := startEcho(t, "e")
	p := listenPort(t)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), echoYML("e", echo, p))
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil || got != "e: x" {
		t.Fatalf("exchange through gong: %q, %v", got, err)
	}
	g.waitSessionsEnded(t, 1)
	if err := quitResult(t, g, quitAsync(g), 10*time.Second); err != nil {
		t.Errorf("Done after a quit with no session = %v; want nil", err)
	}
}

// TestQuitDrainsUDP: a UDP session open when the quit begins still gets
// its upstream's reply, and ends by idling out rather than being cut; a
// new client gets no session.
func TestQuitDrainsUDP(t *testing.T) {
	release := make(chan struct{})
	upstream := startUDPServer(t, func(msg string) string {
		if msg == "slow" {
			<-release
		}
		return "u: " + msg
	})
	uh, up := hostPort(upstream)
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: udp-service
    url: udp://%s:%s
    read_timeout: 500
    write_timeout: 500
    routes:
      - protocols: [udp]
        destinations: [{port: %d}]
`, uh, up, p)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d udp\nnginx_main_worker_shutdown_timeout = 20s\n", p), yml)
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	c := dialUDP(t, addr)
	if got := udpAsk(t, c, "first"); got != "u: first" {
		t.Fatalf("UDP reply %q", got)
	}
	if _, err := io.WriteString(c, "slow"); err != nil {
		t.Fatal(err)
	}
	quit := quitAsync(g)
	eventually(t, "the quit begins", g.srv.Exiting)
	// A new client is not served while the listener drains.
	late := dialUDP(t, addr)
	io.WriteString(late, "late")
	close(release)
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "u: slow" {
		t.Fatalf("reply after the quit began: %q, %v; want u: slow", buf[:n], err)
	}
	if err := quitResult(t, g, quit, 15*time.Second); err != nil {
		t.Errorf("Done after the UDP session idled out = %v; want nil", err)
	}
	late.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := late.Read(buf); err == nil {
		t.Errorf("a client that came during the quit was answered: %q", buf[:n])
	}
}

// logSink is an http-log endpoint counting the records it receives.
type logSink struct {
	srv     *httptest.Server
	records chan struct{}
}

// newLogSink starts an endpoint; a hanging one never answers.
func newLogSink(t *testing.T, hanging bool) *logSink {
	s := &logSink{records: make(chan struct{}, 64)}
	stop := make(chan struct{})
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hanging {
			<-stop
			return
		}
		body, _ := io.ReadAll(r.Body)
		var batch []map[string]any
		if err := json.Unmarshal(body, &batch); err != nil {
			t.Errorf("http-log body: %v\n%s", err, body)
		}
		for range batch {
			s.records <- struct{}{}
		}
	}))
	t.Cleanup(func() { close(stop); s.srv.Close() })
	return s
}

// await waits for n records.
func (s *logSink) await(t *testing.T, n int, what string) {
	t.Helper()
	for i := 0; i < n; i++ {
		next(t, s.records, fmt.Sprintf("%s: record %d of %d", what, i+1, n))
	}
}

// queuedLogGong is gong with http-log to sink, batching for a minute so
// that entries stay queued until a flush, and quitting within a second.
func queuedLogGong(t *testing.T, sink *logSink) (*gong, string) {
	return logPluginGong(t, "http-log", fmt.Sprintf(`{http_endpoint: "%s", timeout: 30000, queue: {max_batch_size: 100, max_coalescing_delay: 60}}`, sink.srv.URL),
		runtime.Options{Conf: conf.Options{Env: []string{"KONG_NGINX_MAIN_WORKER_SHUTDOWN_TIMEOUT=1s"}}})
}

// TestLogQueueFlushedOnQuit: entries still queued when gong quits are
// sent before it ends, that of a session cut at the deadline included.
func TestLogQueueFlushedOnQuit(t *testing.T) {
	sink := newLogSink(t, false)
	g, gw := queuedLogGong(t, sink)
	for range 3 {
		hello(t, gw)
	}
	held := dial(t, gw)
	if got, err := exchange(held, "x"); err != nil || got != "e: x" {
		t.Fatalf("exchange through gong: %q, %v", got, err)
	}
	err := quitResult(t, g, quitAsync(g), 15*time.Second)
	var q *runtime.QuitError
	if !errors.As(err, &q) || q.Cut != 1 || q.Lost != 0 {
		t.Errorf("Done after quit = %v; want a QuitError with 1 session cut and no entry lost", err)
	}
	sink.await(t, 4, "flushed on quit")
	if got := metricValue(t, g, `gong_log_queue_entries_lost_total{plugin="http-log"}`); got != "" {
		t.Errorf("lost entries counted after a clean flush: %s", got)
	}
}

// TestLogQueueFlushedOnReload: a reload sends the old configuration's
// queued entries rather than dropping them with its VMs.
func TestLogQueueFlushedOnReload(t *testing.T) {
	sink := newLogSink(t, false)
	g, gw := queuedLogGong(t, sink)
	for range 3 {
		hello(t, gw)
	}
	g.waitSessionsEnded(t, 3)
	if err := g.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	sink.await(t, 3, "flushed on reload")
}

// TestLogQueueLostCounted: entries a sink never accepts are counted in
// /metrics when a reload's flush gives up, and a quit that loses entries
// says so.
func TestLogQueueLostCounted(t *testing.T) {
	sink := newLogSink(t, true)
	g, gw := queuedLogGong(t, sink)
	for range 3 {
		hello(t, gw)
	}
	g.waitSessionsEnded(t, 3)
	if err := g.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	g.waitErrLog(t, "the loss is logged", "3 log queue entries were still queued when their configuration closed and are lost")
	if got := metricValue(t, g, `gong_log_queue_entries_lost_total{plugin="http-log"}`); got != "3" {
		t.Errorf("lost entries after a reload to a sink that never answers: %q; want 3", got)
	}
	hello(t, gw)
	g.waitSessionsEnded(t, 4)
	err := quitResult(t, g, quitAsync(g), 20*time.Second)
	var q *runtime.QuitError
	if !errors.As(err, &q) || q.Lost != 1 || q.Cut != 0 {
		t.Errorf("Done after quit = %v; want a QuitError with 1 entry lost", err)
	}
	if got := metricValue(t, g, `gong_log_queue_entries_lost_total{plugin="http-log"}`); got != "4" {
		t.Errorf("lost entries after the quit: %q; want 4", got)
	}
}

// metricValue returns the value of the series named (with its labels) in
// gong's /metrics, empty when absent.
func metricValue(t *testing.T, g *gong, series string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	g.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// TestCLIQuitExitStatus: "gong start" exits 0 after a quit with nothing to
// cut, and 2, saying why, after one that closed a session at
// nginx_main_worker_shutdown_timeout; "gong quit" sees both end by
// themselves.
func TestCLIQuitExitStatus(t *testing.T) {
	echo := startEcho(t, "e")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "prefix")
	p, socket := activationSocket(t)
	writeFile(t, filepath.Join(dir, "kong.conf"), fmt.Sprintf("database = off\ndeclarative_config = kong.yml\n"+
		"stream_listen = 127.0.0.1:%d\nproxy_stream_access_log = off\nadmin_listen = off\nstatus_listen = off\n"+
		"nginx_main_worker_shutdown_timeout = 1s\n", p))
	writeFile(t, filepath.Join(dir, "kong.yml"), echoYML("e", echo, p))
	quit := func() {
		t.Helper()
		if out, errOut, code := runGong(t, dir, nil, "quit", "-p", prefix); code != 0 || out != "gong stopped (gracefully)\n" {
			t.Errorf("gong quit: exit %d, %q %q", code, out, errOut)
		}
	}

	_, exited := startGongProcess(t, dir, io.Discard, socket, "-c", "kong.conf", "-p", prefix)
	quit()
	if err := <-exited; err != nil {
		t.Errorf("gong start after a clean quit: %v; want exit status 0", err)
	}
	exited <- nil

	var stderr syncBuffer
	_, exited = startGongProcess(t, dir, &stderr, socket, "-c", "kong.conf", "-p", prefix)
	held := dial(t, fmt.Sprintf("127.0.0.1:%d", p))
	if got, err := exchange(held, "x"); err != nil || got != "e: x" {
		t.Fatalf("exchange through gong: %q, %v", got, err)
	}
	quit()
	err := <-exited
	exited <- err
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("gong start after a quit that cut a session: %v; want exit status 2", err)
	}
	if want := "Error: graceful quit incomplete: 1 session(s) still open after 1s were closed"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}
	expectClosed(t, held)
}
