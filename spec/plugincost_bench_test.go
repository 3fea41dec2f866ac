package spec

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gong-proxy/gong/runtime"
)

// BenchmarkPluginCost is one connection (open, one echoed line, close)
// through a route with each bundled plugin alone, the bench's
// ip-restriction + file-log pair, a preread plugin that only reads
// kong.client.get_ip(), and none. Besides ns/op it reports the process's
// CPU time per connection (cpu-us/op, getrusage), which includes the
// client, the echo server and the log plugins' sinks, all in this
// process: subtract the none row for a plugin's added cost.
func BenchmarkPluginCost(b *testing.B) {
	sinks := startSinks(b)
	dir := b.TempDir()
	plugins := []struct{ name, plugins string }{
		{"none", ""},
		{"client-ip", "{name: client-ip}"},
		{"ip-restriction", "{name: ip-restriction, config: {allow: [127.0.0.0/8]}}"},
		{"file-log", fmt.Sprintf("{name: file-log, protocols: [tcp], config: {path: %s}}", filepath.Join(dir, "file.log"))},
		{"ip-restriction+file-log", fmt.Sprintf("{name: ip-restriction, config: {allow: [127.0.0.0/8]}}, {name: file-log, protocols: [tcp], config: {path: %s}}", filepath.Join(dir, "pair.log"))},
		{"tcp-log", fmt.Sprintf("{name: tcp-log, protocols: [tcp], config: {host: 127.0.0.1, port: %d}}", sinks.tcp)},
		{"udp-log", fmt.Sprintf("{name: udp-log, protocols: [tcp], config: {host: 127.0.0.1, port: %d}}", sinks.udp)},
		{"http-log", fmt.Sprintf("{name: http-log, protocols: [tcp], config: {http_endpoint: %q}}", sinks.http)},
		{"syslog", "{name: syslog, protocols: [tcp]}"},
		{"statsd", fmt.Sprintf("{name: statsd, protocols: [tcp], config: {host: 127.0.0.1, port: %d}}", sinks.udp)},
		{"pre-function", `{name: pre-function, protocols: [tcp], config: {log: ["local x = 1"]}}`},
	}
	for _, p := range plugins {
		b.Run(p.name, func(b *testing.B) {
			echo := startEcho(b, "e")
			port := listenPort(b)
			yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n  - name: e\n    url: tcp://%s\n    routes:\n      - protocols: [tcp]\n        destinations: [{port: %d}]\n        plugins: [%s]\n",
				echo, port, p.plugins)
			startGongWith(b, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nproxy_stream_access_log = off\nplugins = bundled, client-ip\nlua_package_path = %s\n",
				port, fixturePath(b)), yml, runtime.Options{SyslogSocket: sinks.syslog})
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			for range 50 { // the VM pool grows to its working size
				if _, err := roundTrip(addr, "x"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			cpu0 := processCPU(b)
			for b.Loop() {
				if _, err := roundTrip(addr, "x"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
		})
	}
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// logSinks are servers that take log plugins' output and discard it.
type logSinks struct {
	tcp, udp     int
	http, syslog string
}

func startSinks(b *testing.B) logSinks {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	serveConns(b, ln, func(c net.Conn, _ int) { io.Copy(io.Discard, c); c.Close() })
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	syslog, err := net.ListenPacket("unixgram", filepath.Join(b.TempDir(), "log.sock"))
	if err != nil {
		b.Fatal(err)
	}
	for _, pc := range []net.PacketConn{udp, syslog} {
		b.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 65536)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	b.Cleanup(srv.Close)
	return logSinks{tcp: ln.Addr().(*net.TCPAddr).Port, udp: udp.LocalAddr().(*net.UDPAddr).Port,
		http: srv.URL, syslog: syslog.LocalAddr().String()}
}
