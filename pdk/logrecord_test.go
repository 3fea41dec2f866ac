package pdk

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	glua "github.com/yuin/gopher-lua"
)

// TestLogRecordMatchesSerialize: gong.log_record writes the JSON that
// cjson.encode(kong.log.serialize()) writes, for records of every shape the
// runtime makes and under cjson's settings, and declines (nil) where it
// cannot promise that.
func TestLogRecordMatchesSerialize(t *testing.T) {
	start := time.UnixMilli(1700000000000)
	entities := map[string]any{"id": "r", "name": "a/b \"q\"", "protocols": []any{"tcp"}, "snis": nil,
		"destinations": []any{map[string]any{"port": float64(9000), "ip": "10.0.0.0/8"}}, "tags": []any{},
		"strip": true, "big": float64(123456789012345678), "frac": 0.1}
	records := map[string]*LogRecord{
		"full": {
			Received: 64, Sent: 0, Status: 200, ServerPort: 9000,
			TLS:              &RecordTLS{Version: "TLSv1.3", Cipher: "TLS_AES_128_GCM_SHA256", ClientVerify: "NONE"},
			UpstreamReceived: 64, UpstreamSent: 64,
			KongLatency: 2, SessionLatency: 3,
			ClientIP:  "127.0.0.1 \"quoted\"",
			StartedAt: start.UnixMilli(),
			Tries:     []BalancerTry{{IP: "127.0.0.1", Port: 7000, Start: start, Latency: time.Millisecond, Retried: true}, {IP: "::1", Port: 7001, Start: start}},
			Route:     entities,
			Service:   map[string]any{"id": "s", "empty": map[string]any{}, "nils": map[string]any{"x": nil}},
		},
		"no route": {ClientIP: "127.0.0.1", Tries: []BalancerTry{}, SessionLatency: 1},
		"no tries": {ClientIP: "127.0.0.1", Route: entities},
	}
	settings := map[string]string{
		"defaults":     "",
		"settings":     `cjson.encode_number_precision(3) cjson.encode_escape_forward_slash(false) cjson.encode_empty_table_as_object(false)`,
		"precision 16": `cjson.encode_number_precision(16)`,
	}
	for rname, rec := range records {
		for sname, set := range settings {
			for _, ctx := range []string{"", "timing", "timing and ngx.ctx", "timing only"} {
				withCtx := ctx
				e := newEnv(t, PhaseLog, Options{})
				e.sess.record = rec
				e.sess.route, e.sess.service = rec.Route, rec.Service
				if ctx != "" {
					e.st.Timing = Timing{Start: start, PrereadStart: start, PrereadEnd: start.Add(time.Millisecond), LogStart: start.Add(2 * time.Millisecond)}
					e.st.Proxied = true
				}
				if ctx == "timing" || ctx == "timing and ngx.ctx" {
					e.st.SetBalancerData(e.vm.L, BalancerData{Host: "h", Port: 7000, Tries: []BalancerTry{{IP: "127.0.0.2", Port: 7002, Start: start, Latency: 3 * time.Millisecond}}})
				}
				if ctx == "timing and ngx.ctx" {
					runLua(t, e.vm, `ngx.ctx.KONG_PROXY_LATENCY = 77; table.insert(ngx.ctx.balancer_data.tries, {ip = "edited"})`)
				}
				runLua(t, e.vm, `cjson = require "cjson"; log_record = require "gong.log_record" `+set)
				// The second time, route and service come from the cache;
				// the third, after a setting changed, no longer.
				for i, change := range []string{"", "", "cjson.encode_escape_forward_slash(true) cjson.encode_number_precision(2)"} {
					runLua(t, e.vm, change)
					fast := runLua(t, e.vm, `return log_record(cjson)`)[0]
					slow := runString(t, e.vm, `return cjson.encode(kong.log.serialize())`)
					if fast == glua.LNil {
						t.Errorf("%s, %s, ctx %q, call %d: log_record = nil; want the record", rname, sname, withCtx, i)
						continue
					}
					var got, want any
					if err := json.Unmarshal([]byte(fast.String()), &got); err != nil {
						t.Fatalf("%s, %s: log_record wrote invalid JSON %s: %v", rname, sname, fast, err)
					}
					json.Unmarshal([]byte(slow), &want)
					if !reflect.DeepEqual(got, want) || len(fast.String()) != len(slow) {
						t.Errorf("%s, %s, ctx %q, call %d:\nlog_record %s\nserialize  %s", rname, sname, withCtx, i, fast, slow)
					}
				}
			}
		}
	}

	e := newEnv(t, PhaseLog, Options{})
	e.sess.record = records["full"]
	runLua(t, e.vm, `cjson = require "cjson"; log_record = require "gong.log_record"`)
	runLua(t, e.vm, `kong.log.set_serialize_value("a", 1)`)
	if got := runLua(t, e.vm, `return log_record(cjson)`)[0]; got != glua.LNil {
		t.Errorf("log_record after set_serialize_value = %s; want nil", got)
	}
	e.st.serializeValues = nil
	runLua(t, e.vm, `cjson.encode_max_depth(3)`)
	if got := runLua(t, e.vm, `return log_record(cjson)`)[0]; got != glua.LNil {
		t.Errorf("log_record with encode_max_depth 3 = %s; want nil", got)
	}
	e.st.Phase = PhasePreread
	if got := runLua(t, e.vm, `return log_record(require "cjson.safe")`)[0]; got != glua.LNil {
		t.Errorf("log_record in preread = %s; want nil", got)
	}
}
