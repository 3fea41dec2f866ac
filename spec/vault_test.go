package spec

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
