package spec

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gong-proxy/gong/runtime"
)

// The tests here run plugins written the way Kong's own stream plugins
// are (ip-restriction, file-log, statsd, the log plugins'
// custom_fields_by_lua), so that those run on gong unchanged.

// kongStyleRecord is what the kongstyle fixture appends per session.
type kongStyleRecord struct {
	Session     struct{ Status int }  `json:"session"`
	Route       struct{ Name string } `json:"route"`
	Queue       string                `json:"queue"`
	WorkspaceID string                `json:"workspace_id"`
	Greeting    string                `json:"greeting"`
}

// fileRecords polls path until it holds n kongstyle records.
func fileRecords(t *testing.T, path string, n int) []kongStyleRecord {
	t.Helper()
	var lines []string
	eventually(t, fmt.Sprintf("%d records in %s", n, path), func() bool {
		data, _ := os.ReadFile(path)
		lines = strings.Split(string(data), "\n")
		lines = lines[:len(lines)-1] // complete lines only
		return len(lines) >= n
	})
	recs := make([]kongStyleRecord, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &recs[i]); err != nil {
			t.Fatalf("record %d is not JSON: %v\n%s", i, err, l)
		}
	}
	return recs
}

func TestKongStylePlugin(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	pOpen, pDenied, pEscape := listenPort(t), listenPort(t), listenPort(t)
	dir := t.TempDir()
	logPath, marker := filepath.Join(dir, "sessions.log"), filepath.Join(dir, "escaped")
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: e
    url: tcp://%[1]s
    routes:
      - name: open
        protocols: [tcp]
        destinations: [{port: %[2]d}]
        plugins:
          - id: 11111111-1111-4111-8111-111111111111
            name: kongstyle
            config:
              path: %[5]s
              queue: {max_coalescing_delay: 0}
              custom_fields_by_lua: {greeting: "return 'hi ' .. kong.client.get_ip()"}
      - name: denied
        protocols: [tcp]
        destinations: [{port: %[3]d}]
        plugins:
          - id: 22222222-2222-4222-8222-222222222222
            name: kongstyle
            config: {path: %[5]s, deny: [127.0.0.0/8], queue: {max_coalescing_delay: 0}}
      - name: escape
        protocols: [tcp]
        destinations: [{port: %[4]d}]
        plugins:
          - name: kongstyle
            config:
              path: %[5]s
              custom_fields_by_lua: {escaped: "return os.execute('touch %[6]s')"}
`, echo, pOpen, pDenied, pEscape, logPath, marker)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:%d\nplugins = bundled, kongstyle\nlua_package_path = %s\n",
		pOpen, pDenied, pEscape, fixturePath(t)), yml)

	hello(t, fmt.Sprintf("127.0.0.1:%d", pOpen))
	recs := fileRecords(t, logPath, 1)
	if r := recs[0]; r.Route.Name != "open" || r.Session.Status != 200 || r.Greeting != "hi 127.0.0.1" ||
		r.Queue != "11111111-1111-4111-8111-111111111111" || r.WorkspaceID != "0dc6f45b-8f8d-40d2-a504-473544ee190b" {
		t.Errorf("record %+v", r)
	}
	// print went to the error log at notice level, in OpenResty's format.
	eventually(t, "print in the error log", func() bool {
		return strings.Contains(g.errLog.String(), "[notice]") &&
			strings.Contains(g.errLog.String(), "[lua] kong.plugins.kongstyle.handler:49: session of 127.0.0.1 ended")
	})

	// match_bin on binary_remote_addr denies loopback: closed with 403,
	// logged on the instance's own queue.
	c := dial(t, fmt.Sprintf("127.0.0.1:%d", pDenied))
	expectClosed(t, c)
	recs = fileRecords(t, logPath, 2)
	if r := recs[1]; r.Route.Name != "denied" || r.Session.Status != 403 || r.Queue != "22222222-2222-4222-8222-222222222222" {
		t.Errorf("denied record %+v", r)
	}

	// The sandbox of custom_fields_by_lua has no os.execute: the log
	// phase fails and nothing ran.
	hello(t, fmt.Sprintf("127.0.0.1:%d", pEscape))
	eventually(t, "the sandbox's refusal in the error log", func() bool {
		return strings.Contains(g.errLog.String(), `plugin "kongstyle" log phase`)
	})
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("os.execute ran in custom_fields_by_lua (%v)", err)
	}
	lines := g.accessLines(t)
	if len(lines) != 3 || !strings.Contains(lines[1], " 403 ") {
		t.Errorf("access log:\n%s", strings.Join(lines, "\n"))
	}
}

// TestCustomFieldsByLua checks the bundled log plugins add the fields
// custom_fields_by_lua computes to the record they send.
func TestCustomFieldsByLua(t *testing.T) {
	t.Parallel()
	addr, lines := tcpLines(t)
	host, port := hostPort(addr)
	_, gw := logPluginGong(t, "tcp-log", fmt.Sprintf(`{host: %s, port: %s, custom_fields_by_lua: {route_upper: "return kong.router.get_route().name:upper()", sum: "return 1 + 2"}}`, host, port), runtime.Options{})
	hello(t, gw)
	line := next(t, lines, "tcp-log line").line
	checkRecord(t, []byte(line))
	var rec struct {
		RouteUpper string `json:"route_upper"`
		Sum        int    `json:"sum"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.RouteUpper != "LOGGED" || rec.Sum != 3 {
		t.Errorf("custom fields %+v, %v\n%s", rec, err, line)
	}
}

// TestFileLogCustomFields checks file-log takes custom_fields_by_lua, as
// Kong's does.
func TestFileLogCustomFields(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "file.log")
	g, gw := logPluginGong(t, "file-log", fmt.Sprintf(`{path: %s, custom_fields_by_lua: {client: "return kong.client.get_ip()"}}`, path), runtime.Options{})
	hello(t, gw)
	g.stop()
	var rec struct{ Client string }
	lines := readLines(t, path)
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &rec) != nil || rec.Client != "127.0.0.1" {
		t.Errorf("file-log wrote %q", lines)
	}
}

// TestPluginChoosesUpstreamTLS has a plugin set, in preread, the client
// certificate and trust store of the upstream handshake: the upstream
// requires a client certificate the service has none of, and its CA is in
// no store the service knows.
func TestPluginChoosesUpstreamTLS(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "upstream CA")
	upCert := newLeaf(t, "mtls-upstream", []string{"backend.test"}, &ca, false)
	clientCA := newCA(t, "client CA")
	clientCert := newLeaf(t, "gong-client", nil, &clientCA, false)
	clients := x509.NewCertPool()
	clients.AddCert(clientCA.cert)
	up, _ := startTLSEcho(t, "mtls-upstream", upCert, clients)
	_, upPort := hostPort(up)
	hosts := filepath.Join(t.TempDir(), "hosts")
	writeFile(t, hosts, "127.0.0.1 backend.test\n")
	pPlugin, pBare := listenPort(t), listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: mtls
    url: tls://backend.test:%s
    tls_verify: true
    retries: 0
    routes:
      - name: with-plugin
        protocols: [tcp]
        destinations: [{port: %d}]
        plugins:
          - name: upstreamtls
            config:
              cert: %s              key: %s              ca: %s      - name: bare
        protocols: [tcp]
        destinations: [{port: %d}]
`, upPort, pPlugin, yamlBlock(clientCert.certPEM, 16), yamlBlock(clientCert.keyPEM, 16), yamlBlock(ca.certPEM, 16), pBare)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\nplugins = bundled, upstreamtls\nlua_package_path = %s\ndns_hostsfile = %s\n",
		pPlugin, pBare, fixturePath(t), hosts), yml)
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pPlugin), "x"); err != nil || got != "mtls-upstream: x" {
		t.Errorf("with the plugin's certificate and store: %q, %v", got, err)
	}
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pBare), "x"); err == nil {
		t.Errorf("without them: proxied (%q); want the connection refused", got)
	}
}

// TestNodeID checks kong.node.get_id answers the node id the Admin API
// reports, as zipkin, datadog and statsd tag their data with it, when
// kong.conf sets no node_id.
func TestNodeID(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - url: tcp://%s
    routes:
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins: [{name: post-function, protocols: [tcp], config: {log: ["kong.log.notice('node ', kong.node.get_id(), '.')"]}}]
`, echo, p)
	g, base := startAdmin(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	_, root := get(t, base+"/")
	id, _ := root["node_id"].(string)
	hello(t, fmt.Sprintf("127.0.0.1:%d", p))
	eventually(t, "the node id logged", func() bool { return strings.Contains(g.errLog.String(), "node ") })
	if id == "" || !strings.Contains(g.errLog.String(), "node "+id+".") {
		t.Errorf("Admin API node_id %q; error log:\n%s", id, g.errLog)
	}
}
