package stream

import (
	"maps"
	"slices"
	"testing"

	"github.com/gong-proxy/gong/runtime/telemetry"
)

// The loops serve a listener only when every route that may match its
// sessions has a service they can dial, whatever its plugins.
func TestLoopListenersByRoute(t *testing.T) {
	yml := `_format_version: "3.0"
services:
  - name: ip
    host: 127.0.0.1
    port: 9000
    protocol: tcp
    routes: [{name: by-ip, protocols: [tcp], destinations: [{port: 18001}]}]
  - name: name
    host: example.test
    port: 9000
    protocol: tcp
    routes: [{name: by-name, protocols: [tcp], destinations: [{port: 18002}]}]
  - name: tls
    host: 127.0.0.1
    port: 9443
    protocol: tls
    routes: [{name: tls-up, protocols: [tcp], destinations: [{port: 18004}]}]
  - name: mapped
    host: 127.0.0.1
    port: 9000
    protocol: tcp
    routes: [{name: by-mapped-port, protocols: [tcp], destinations: [{port: 80}]}]
`
	listen := "stream_listen = 127.0.0.1:18001, 127.0.0.1:18002, 127.0.0.1:18003 ssl, 127.0.0.1:18004, " +
		"127.0.0.1:18005 proxy_protocol, 127.0.0.1:18006 so_keepalive=on, 127.0.0.1:18007, 127.0.0.1:18008 udp\n" +
		"port_maps = 18007:80\n"
	cfg, _, _ := testConfig(t, &fakeHooks{}, yml, listen)
	got := slices.Sorted(func(yield func(string) bool) {
		for k := range maps.Keys(cfg.loopListeners()) {
			if !yield(k.Addr) {
				return
			}
		}
	})
	// 18002's route needs DNS, 18004's upstream TLS, 18003 is ssl.
	want := []string{"127.0.0.1:18001", "127.0.0.1:18005", "127.0.0.1:18006", "127.0.0.1:18007"}
	if !slices.Equal(got, want) {
		t.Errorf("loop listeners %v; want %v", got, want)
	}

	cfg.Tracer = &telemetry.Tracer{}
	if l := cfg.loopListeners(); len(l) != len(want) {
		t.Errorf("with tracing on, loop listeners %v; want %v, as with it off", l, want)
	}
}
