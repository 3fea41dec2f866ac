package spec

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/gong-proxy/gong/runtime"
	"github.com/gong-proxy/gong/runtime/conf"
)

// TestVaultReferences: a certificate key and an http-log endpoint come
// from the file vault through a vaults entity's prefix; the handshake
// serves the certificate and the plugin posts to the secret endpoint.
func TestVaultReferences(t *testing.T) {
	t.Parallel()
	secrets := t.TempDir()
	leaf := newLeaf(t, "vault.test", []string{"vault.test"}, nil, true)
	logs := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		logs <- r.URL.Path
	}))
	t.Cleanup(srv.Close)
	writeFile(t, filepath.Join(secrets, "tls.key"), leaf.keyPEM)
	writeFile(t, filepath.Join(secrets, "log-url"), srv.URL+"/from-vault\n")
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
vaults:
  - prefix: k8s
    name: file
certificates:
  - cert: %s
    key: "{vault://k8s/tls.key}"
    snis: [{name: vault.test}]
services:
  - name: s
    url: tcp://%s
    routes:
      - protocols: [tls]
        snis: [vault.test]
        plugins:
          - name: http-log
            protocols: [tls]
            config: {http_endpoint: "{vault://k8s/log-url}"}
`, yamlBlock(leaf.certPEM, 6), echo)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\nvault_file_base_dir = %s\n", p, secrets), yml)
	c, err := tlsDial(t, fmt.Sprintf("127.0.0.1:%d", p), "vault.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cn := servedCN(c); cn != "vault.test" {
		t.Errorf("served CN=%q; want the certificate whose key came from the vault", cn)
	}
	if got, err := exchange(c, "x"); err != nil || got != "e: x" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	c.Close()
	if path := next(t, logs, "http-log request"); path != "/from-vault" {
		t.Errorf("http-log posted to %q; want the endpoint from the vault", path)
	}
}

// TestVaultUnresolvableReferenceFailsTheLoad: the error names the
// reference; no secret appears in it.
func TestVaultUnresolvableReferenceFailsTheLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), "hunter2")
	tests := []struct{ name, conf, yml, want string }{
		{"kong.conf", "admin_token = {vault://file/nope}\n", `_format_version: "3.0"`,
			"failed to dereference '{vault://file/nope}': could not get value from external vault (no value found (nope)) [{vault://file/nope}] for config option 'admin_token'"},
		{"kong.yml", "", "_format_version: \"3.0\"\ncertificates:\n  - cert: \"{vault://file/token}\"\n    key: \"{vault://file/nope}\"\n",
			"failed to dereference '{vault://file/nope}'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			confPath, ymlPath := filepath.Join(dir, "kong.conf"), filepath.Join(dir, "kong.yml")
			writeFile(t, confPath, "prefix = "+dir+"\ndatabase = off\ndeclarative_config = "+ymlPath+
				"\nadmin_listen = off\nstatus_listen = off\nvault_file_base_dir = "+dir+"\n"+tt.conf)
			writeFile(t, ymlPath, tt.yml)
			c, _, err := conf.Load(conf.Options{Path: confPath, Dir: dir})
			if err == nil {
				var srv *runtime.Server
				if srv, err = runtime.New(runtime.Options{Config: c, ErrorLog: io.Discard, Sockets: sockets}); err == nil {
					err = srv.Start()
					srv.Stop()
				}
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v; want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
	os.Remove(filepath.Join(dir, "token"))
}

// TestVaultRotation: with a ttl on the file vault, a certificate and an
// http-log endpoint whose secrets change on disk take the new values
// while the configuration serves, without a reload, and a connection
// opened before keeps working. A deleted key keeps serving for
// resurrect_ttl, then handshakes for its SNI fail, and it serves again
// when the file is back. The rotator's goroutine ends with the server.
func TestVaultRotation(t *testing.T) {
	secrets := t.TempDir()
	first := newLeaf(t, "first", []string{"vault.test"}, nil, true)
	second := newLeaf(t, "second", []string{"vault.test"}, nil, true)
	logs := make(chan string, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		select {
		case logs <- r.URL.Path:
		default:
		}
	}))
	t.Cleanup(srv.Close)
	writeFile(t, filepath.Join(secrets, "tls.crt"), first.certPEM)
	writeFile(t, filepath.Join(secrets, "tls.key"), first.keyPEM)
	writeFile(t, filepath.Join(secrets, "log-url"), srv.URL+"/first\n")
	echo := startEcho(t, "e")
	p := listenPort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	yml := fmt.Sprintf(`_format_version: "3.0"
vaults:
  - prefix: k8s
    name: file
    config: {ttl: 0.5, resurrect_ttl: 4}
certificates:
  - cert: "{vault://k8s/tls.crt/}"
    key: "{vault://k8s/tls.key/}"
    snis: [{name: vault.test}]
services:
  - name: s
    url: tcp://%s
    routes:
      - protocols: [tls]
        snis: [vault.test]
        plugins:
          - name: http-log
            protocols: [tls]
            config: {http_endpoint: "{vault://k8s/log-url}", queue: {max_batch_size: 1, max_coalescing_delay: 0.01}}
`, echo)
	g := startGong(t, fmt.Sprintf("stream_listen = %s ssl\nvault_file_base_dir = %s\nvault_rotation_interval = 0.1\n", addr, secrets), yml)

	served := func() string {
		c, err := tlsDial(t, addr, "vault.test", nil)
		if err != nil {
			return "handshake failed"
		}
		defer c.Close()
		return servedCN(c)
	}
	// loggedTo makes a connection and reports whether http-log posted it
	// to path (an older post may still arrive first).
	loggedTo := func(path string) bool {
		c, err := tlsDial(t, addr, "vault.test", nil)
		if err != nil {
			return false
		}
		if got, err := exchange(c, "x"); err != nil || got != "e: x" {
			t.Fatalf("echo: %q, %v", got, err)
		}
		c.Close()
		select {
		case got := <-logs:
			return got == path
		case <-time.After(2 * time.Second):
			return false
		}
	}
	if cn := served(); cn != "first" {
		t.Fatalf("served %q at start", cn)
	}
	eventually(t, "http-log posts to the first endpoint", func() bool { return loggedTo("/first") })
	inFlight, err := tlsDial(t, addr, "vault.test", nil)
	if err != nil {
		t.Fatal(err)
	}

	writeFile(t, filepath.Join(secrets, "tls.key"), second.keyPEM)
	writeFile(t, filepath.Join(secrets, "tls.crt"), second.certPEM)
	writeFile(t, filepath.Join(secrets, "log-url"), srv.URL+"/second\n")
	eventually(t, "handshakes serve the rotated certificate", func() bool { return served() == "second" })
	eventually(t, "http-log posts to the rotated endpoint", func() bool { return loggedTo("/second") })
	if got, err := exchange(inFlight, "y"); err != nil || got != "e: y" {
		t.Errorf("a connection opened before the rotation: %q, %v", got, err)
	}
	if servedCN(inFlight) != "first" {
		t.Errorf("the connection in flight changed certificate")
	}

	os.Remove(filepath.Join(secrets, "tls.key"))
	g.waitErrLog(t, "the failed refresh is logged", "could not refresh {vault://k8s/tls.key/}")
	if cn := served(); cn != "second" {
		t.Errorf("within resurrect_ttl after the key was deleted: served %q; want the last certificate", cn)
	}
	eventually(t, "handshakes fail once resurrect_ttl has run out", func() bool { return served() == "handshake failed" })
	g.waitErrLog(t, "the lost secret is logged", "{vault://k8s/tls.key/} has no value any more")
	writeFile(t, filepath.Join(secrets, "tls.key"), second.keyPEM)
	eventually(t, "the certificate serves again once its key is back", func() bool { return served() == "second" })

	g.stop()
	logged := g.errLog.String()
	if strings.Count(logged, "could not refresh {vault://k8s/tls.key/}") != 1 {
		t.Errorf("the failed refresh was not logged exactly once:\n%s", logged)
	}
	for _, secret := range []string{"PRIVATE KEY", srv.URL} {
		if strings.Contains(logged, secret) {
			t.Errorf("the error log shows a secret (%q):\n%s", secret, logged)
		}
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:goruntime.Stack(buf, true)]); strings.Contains(stacks, "rotateSecrets") {
		t.Errorf("the vault rotator outlived the server:\n%s", stacks)
	}
}

// TestAdminVaults: GET /vaults lists the vaults entities of the loaded
// kong.yml with Kong's pagination, GET /vaults/{id or prefix} shows one,
// an unknown one is Kong's 404, and DB-less writes are refused as Kong
// refuses them.
func TestAdminVaults(t *testing.T) {
	yml := `_format_version: "3.0"
vaults:
  - id: 5a1d8a1e-7a0b-4c1e-9a57-0f6d4f0c1a01
    prefix: k8s
    name: file
    description: mounted secrets
    config: {ttl: 300, resurrect_ttl: 60}
    tags: [tls]
  - prefix: app-env
    name: env
    config: {prefix: APP_}
`
	_, base := startAdmin(t, "", yml)
	code, body := get(t, base+"/vaults")
	data, _ := body["data"].([]any)
	if code != 200 || len(data) != 2 || body["next"] != nil {
		t.Fatalf("GET /vaults: %d %v", code, body)
	}
	code, body = get(t, base+"/vaults/k8s")
	cfg, _ := body["config"].(map[string]any)
	if code != 200 || body["id"] != "5a1d8a1e-7a0b-4c1e-9a57-0f6d4f0c1a01" || body["name"] != "file" ||
		body["description"] != "mounted secrets" || cfg["ttl"] != 300.0 || cfg["resurrect_ttl"] != 60.0 {
		t.Errorf("GET /vaults/k8s: %d %v", code, body)
	}
	if code, body = get(t, base+"/vaults/5a1d8a1e-7a0b-4c1e-9a57-0f6d4f0c1a01"); code != 200 || body["prefix"] != "k8s" {
		t.Errorf("GET /vaults/{id}: %d %v", code, body)
	}
	if code, body = get(t, base+"/vaults/app-env"); code != 200 || body["config"].(map[string]any)["prefix"] != "APP_" {
		t.Errorf("GET /vaults/app-env: %d %v", code, body)
	}
	if code, body = get(t, base+"/vaults/nope"); code != 404 || body["message"] != "Not found" {
		t.Errorf("GET /vaults/nope: %d %v", code, body)
	}
	code, body = get(t, base+"/vaults?size=1")
	if data, _ := body["data"].([]any); code != 200 || len(data) != 1 || body["next"] == nil {
		t.Errorf("GET /vaults?size=1: %d %v", code, body)
	}
	if code, body = get(t, base+"/vaults?tags=tls"); code != 200 || len(body["data"].([]any)) != 1 {
		t.Errorf("GET /vaults?tags=tls: %d %v", code, body)
	}
	code, body = call(t, "POST", base+"/vaults", strings.NewReader(`{"prefix":"x","name":"env"}`), "application/json")
	if code != 405 || body["message"] != "cannot create 'vaults' entities when not using a database" {
		t.Errorf("POST /vaults DB-less: %d %v", code, body)
	}
}

// TestVaultRotationClientCertificate: a service's client_certificate whose
// cert and key come from the file vault presents the rotated pair to its
// upstream from the next connection on, without a reload.
func TestVaultRotationClientCertificate(t *testing.T) {
	secrets := t.TempDir()
	first := newLeaf(t, "client-one", nil, nil, true)
	second := newLeaf(t, "client-two", nil, nil, true)
	server := newLeaf(t, "mtls-upstream", []string{"127.0.0.1"}, nil, true)
	pair, err := tls.X509KeyPair([]byte(server.certPEM), []byte(server.keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAnyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	// The upstream answers each connection with the CN of the client
	// certificate it was shown.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if tc.Handshake() != nil {
					return
				}
				fmt.Fprintf(c, "%s\n", tc.ConnectionState().PeerCertificates[0].Subject.CommonName)
			}()
		}
	}()
	writeFile(t, filepath.Join(secrets, "client.crt"), first.certPEM)
	writeFile(t, filepath.Join(secrets, "client.key"), first.keyPEM)
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
vaults:
  - prefix: k8s
    name: file
    config: {ttl: 0.5}
certificates:
  - id: 9d0c1c2e-2b4f-4c1a-8f7e-3b1d2a4c5e01
    cert: "{vault://k8s/client.crt/}"
    key: "{vault://k8s/client.key/}"
services:
  - name: mtls
    url: tls://%s
    client_certificate: 9d0c1c2e-2b4f-4c1a-8f7e-3b1d2a4c5e01
%s`, ln.Addr(), tcpRoute(p))
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nvault_file_base_dir = %s\nvault_rotation_interval = 0.1\n", p, secrets), yml)
	presented := func() string {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), 5*time.Second)
		if err != nil {
			return err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(line)
	}
	if got := presented(); got != "client-one" {
		t.Fatalf("the upstream was shown %q at start", got)
	}
	writeFile(t, filepath.Join(secrets, "client.key"), second.keyPEM)
	writeFile(t, filepath.Join(secrets, "client.crt"), second.certPEM)
	eventually(t, "the upstream is shown the rotated client certificate", func() bool { return presented() == "client-two" })
}
