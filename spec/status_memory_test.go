package spec

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/gong-proxy/gong/runtime/balancer/dnstest"
)

// memoryYML: service e to echo on port p, whose log phase stores 4 KiB in
// ngx.shared.counters and logs what kong.node.get_memory_stats reports of
// the Lua VMs, and upstream lost, whose only target does not resolve.
func memoryYML(echo string, p int) string {
	return fmt.Sprintf(`_format_version: "3.0"
services:
  - name: e
    url: tcp://%s
    routes:
      - name: r
        protocols: [tcp]
        destinations: [{port: %d}]
        plugins:
          - name: pre-function
            protocols: [tcp]
            config:
              log:
                - 'ngx.shared.counters:set("k", string.rep("x", 4096))'
                - 'local vms = kong.node.get_memory_stats("m", 1).workers_lua_vms; kong.log.notice("workers_lua_vms: ", #vms, " ", vms[1].pid, " ", vms[1].http_allocated_gc)'
upstreams:
  - name: lost
    targets: [{target: "missing.gong.test:9000"}]
`, echo, p)
}

// TestStatusMemoryAndNodeMetrics: /status's memory section and Kong's node
// series on status_listen follow the shared dictionaries, the Go heap and
// the connections; a target whose name does not resolve is dns_error.
func TestStatusMemoryAndNodeMetrics(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	p := listenPort(t)
	z := dnstest.Start(t)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nstatus_listen = 127.0.0.1:0\nuntrusted_lua = on\n"+
		"nginx_stream_lua_shared_dict = counters 1m\n", p)+dnsConf(t, z), memoryYML(echo, p))
	addrs := g.srv.APIAddrs("status_listen")
	if len(addrs) == 0 {
		t.Fatal("no status_listen address")
	}
	base := "http://" + addrs[0].String()
	dict := func(q string) map[string]any {
		t.Helper()
		code, body := get(t, base+"/status"+q)
		mem, _ := body["memory"].(map[string]any)
		dicts, _ := mem["lua_shared_dicts"].(map[string]any)
		counters, _ := dicts["counters"].(map[string]any)
		if code != http.StatusOK || counters == nil {
			t.Fatalf("GET /status%s: %d %v; want the counters dictionary in memory", q, code, body)
		}
		return counters
	}

	before := dict("?unit=b")["allocated_slabs"].(float64)
	if c := dict("?unit=b")["capacity"]; c != float64(1<<20) {
		t.Errorf("capacity in bytes: %v; want %d", c, 1<<20)
	}
	if c := dict("")["capacity"]; c != "1.00 MiB" {
		t.Errorf("capacity by default: %v; want Kong's 1.00 MiB", c)
	}
	if c := dict("?unit=k&scale=0")["capacity"]; c != "1024 KiB" {
		t.Errorf("capacity in KiB without decimals: %v; want 1024 KiB", c)
	}
	if code, body := get(t, base+"/status?unit=x"); code != http.StatusBadRequest ||
		body["message"] != "invalid unit 'x' (expected 'k/K', 'm/M', or 'g/G')" {
		t.Errorf("GET /status?unit=x: %d %v; want Kong's 400", code, body)
	}
	_, body := get(t, base+"/status?unit=b")
	vms, _ := body["memory"].(map[string]any)["workers_lua_vms"].([]any)
	if len(vms) != 1 {
		t.Fatalf("workers_lua_vms: %v; want gong's one process", vms)
	}
	if vm := vms[0].(map[string]any); vm["pid"] != float64(os.Getpid()) || vm["http_allocated_gc"].(float64) <= 0 {
		t.Errorf("workers_lua_vms: %v; want pid %d and the heap's bytes", vm, os.Getpid())
	}

	addr := fmt.Sprintf("127.0.0.1:%d", p)
	open := dial(t, addr)
	if got, err := exchange(open, "x"); err != nil || got != "e: x" {
		t.Fatalf("through gong: %q, %v\n%s", got, err, g.errLog)
	}
	node := func(f map[string]*dto.MetricFamily, state string) float64 {
		return value(f, "kong_nginx_connections_total", "subsystem=stream", "state="+state)
	}
	fams := waitForMetrics(t, base+"/metrics", "the open connection", func(f map[string]*dto.MetricFamily) bool {
		return node(f, "active") == 1
	})
	for _, state := range []string{"writing", "accepted", "handled", "total"} {
		if got := node(fams, state); got != 1 {
			t.Errorf("kong_nginx_connections_total{state=%s} = %v with one connection; want 1", state, got)
		}
	}
	for _, state := range []string{"reading", "waiting"} {
		if got := node(fams, state); got != 0 {
			t.Errorf("kong_nginx_connections_total{state=%s} = %v; want 0", state, got)
		}
	}
	if got := value(fams, "kong_memory_lua_shared_dict_total_bytes", "shared_dict=counters", "kong_subsystem=stream"); got != 1<<20 {
		t.Errorf("kong_memory_lua_shared_dict_total_bytes{counters} = %v; want %d", got, 1<<20)
	}
	if got := value(fams, "kong_memory_workers_lua_vms_bytes", "pid="+strconv.Itoa(os.Getpid()), "kong_subsystem=stream"); got <= 0 {
		t.Errorf("kong_memory_workers_lua_vms_bytes = %v; want the heap's bytes", got)
	}
	if got := value(fams, "kong_datastore_reachable"); got != -1 {
		t.Errorf("kong_datastore_reachable = %v on a DB-less node; want no series", got)
	}
	lost := []string{"upstream=lost", "target=missing.gong.test:9000", "address="}
	if got := value(fams, "kong_upstream_target_health", append(lost, "state=dns_error")...); got != 1 {
		t.Errorf("kong_upstream_target_health of an unresolved target, dns_error = %v; want 1", got)
	}
	if got := value(fams, "kong_upstream_target_health", append(lost, "state=healthchecks_off")...); got != 0 {
		t.Errorf("kong_upstream_target_health of an unresolved target, healthchecks_off = %v; want 0", got)
	}

	open.Close()
	fams = waitForMetrics(t, base+"/metrics", "the connection closed", func(f map[string]*dto.MetricFamily) bool {
		return node(f, "active") == 0
	})
	if got := node(fams, "accepted"); got != 1 {
		t.Errorf("accepted after the close: %v; want 1", got)
	}
	eventually(t, "the log phase's 4 KiB in allocated_slabs", func() bool {
		return dict("?unit=b")["allocated_slabs"].(float64) >= before+4096
	})
	// kong.node.get_memory_stats reports the process's Lua VMs as /status.
	vmsLine := regexp.MustCompile(fmt.Sprintf(`workers_lua_vms: 1 %d [0-9]+\.[0-9] MiB`, os.Getpid()))
	eventually(t, "the log phase's kong.node.get_memory_stats", func() bool { return vmsLine.MatchString(g.errLog.String()) })
	fams = scrape(t, base+"/metrics")
	if got := value(fams, "kong_memory_lua_shared_dict_bytes", "shared_dict=counters"); got < before+4096 {
		t.Errorf("kong_memory_lua_shared_dict_bytes{counters} = %v; want at least %v", got, before+4096)
	}
}
