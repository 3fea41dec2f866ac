package pdk

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	glua "github.com/yuin/gopher-lua"
)

// BenchmarkCosocketSend sends one 200-byte log line per operation over a
// kept-alive connection, as tcp-log does: connect (from the pool), send,
// setkeepalive.
func BenchmarkCosocketSend(b *testing.B) {
	addr, _ := serveTCP(b, func(c net.Conn) { io.Copy(io.Discard, c) })
	host, port, _ := net.SplitHostPort(addr)
	sockets := NewSocketPool()
	defer sockets.Close()
	e := newEnv(b, PhasePreread, Options{Sockets: sockets})
	fn, err := e.vm.L.LoadString(fmt.Sprintf(`
		local line = %q
		return function()
			local sock = ngx.socket.tcp()
			sock:settimeout(10000)
			assert(sock:connect(%q, %s))
			assert(sock:send(line))
			assert(sock:setkeepalive(60000))
		end`, strings.Repeat("x", 199)+"\n", host, port))
	if err != nil {
		b.Fatal(err)
	}
	res, err := e.vm.Call(b.Context(), fn)
	if err != nil {
		b.Fatal(err)
	}
	send := res[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.vm.Call(b.Context(), send); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSerializeEncode is the log phase's own work in every log
// plugin: kong.log.serialize() of a proxied TCP session, then
// cjson.encode of the record; and the same JSON from gong.log_record,
// which the bundled log plugins use.
func BenchmarkSerializeEncode(b *testing.B) {
	for name, code := range map[string]string{
		"serialize":  `return cjson.encode(kong.log.serialize())`,
		"log_record": `return log_record(cjson)`,
	} {
		b.Run(name, func(b *testing.B) {
			e := newEnv(b, PhaseLog, Options{})
			e.sess.record = &LogRecord{
				Received: 6, Sent: 9, Status: 200, ServerPort: 5555,
				UpstreamReceived: 9, UpstreamSent: 6,
				KongLatency: 1, SessionLatency: 3,
				Tries: []BalancerTry{{IP: "127.0.0.1", Port: 9000}},
				Route: map[string]any{"id": "ced4af45-3185-5af9-b912-eaa3adb4934f", "name": "logged", "protocols": []string{"tcp"},
					"destinations": []any{map[string]any{"port": 5555}}, "created_at": 1795646341, "updated_at": 1795646341,
					"service": "6e2a11b7-a01e-5617-b705-0f66b32701f9", "preserve_host": false},
				Service: map[string]any{"id": "6e2a11b7-a01e-5617-b705-0f66b32701f9", "name": "echo-service", "host": "127.0.0.1",
					"port": 9000, "protocol": "tcp", "retries": 5, "connect_timeout": 60000, "read_timeout": 60000,
					"write_timeout": 60000, "enabled": true, "created_at": 1795646341, "updated_at": 1795646341},
				ClientIP:  "127.0.0.1",
				StartedAt: 1795646341086,
			}
			e.sess.route, e.sess.service = e.sess.record.Route, e.sess.record.Service
			fn, err := e.vm.L.LoadString(`
				local cjson = require "cjson"
				local log_record = require "gong.log_record"
				return function() ` + code + ` end`)
			if err != nil {
				b.Fatal(err)
			}
			res, err := e.vm.Call(b.Context(), fn)
			if err != nil {
				b.Fatal(err)
			}
			encode := res[0]
			b.ReportAllocs()
			for b.Loop() {
				out, err := e.vm.Call(b.Context(), encode)
				if err != nil || len(out) != 1 || out[0].Type() != glua.LTString {
					b.Fatal(out, err)
				}
			}
		})
	}
}
