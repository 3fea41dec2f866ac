package spec

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gong-proxy/gong/runtime"
	"github.com/gong-proxy/gong/runtime/conf"
)

// TestSandboxContainsUntrustedLua runs post-function code, sandboxed, in
// the log phase of real connections. It cannot replace kong.client.get_ip
// (ip-restriction on another route still sees the real address), it
// reads kong.configuration with its secrets masked, kong.vault refuses a
// reference the operator did not allow, and a timer it creates cannot
// open a cosocket.
func TestSandboxContainsUntrustedLua(t *testing.T) {
	t.Setenv("GONG_SPEC_SECRET", "env-s3cret")
	echo := startEcho(t, "e")
	pSandboxed, pRestricted := listenPort(t), listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: e
    url: tcp://%s
    routes:
%s
      - protocols: [tcp]
        destinations: [{port: %d}]
        plugins:
          - name: ip-restriction
            protocols: [tcp]
            config: {allow: [127.0.0.1]}
`, echo, postFunctionRoute(pSandboxed, `ngx.timer.at(0, function()
  local ok, err = pcall(ngx.socket.tcp)
  kong.log.err("timer cosocket: ", err)
end)
kong.log.err("token: ", kong.configuration.admin_token,
             " otlp: ", kong.configuration.tracing_otlp_headers)
kong.log.err("vault: ", select(2, kong.vault.get("{vault://env/gong-spec-secret}")))`,
		`kong.client.get_ip = function() return "10.9.9.9" end`), pRestricted)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\nadmin_token = adm1n-s3cret\n"+
		"tracing_otlp_headers = authorization:Bearer otlp-s3cret\n", pSandboxed, pRestricted), yml)
	sandboxed, restricted := fmt.Sprintf("127.0.0.1:%d", pSandboxed), fmt.Sprintf("127.0.0.1:%d", pRestricted)
	// One connection at a time, each after the last one's log phase, so
	// the restricted route runs on the VM the sandboxed code ran on.
	for i := 1; i <= 2; i++ {
		if got, err := roundTrip(sandboxed, "x"); err != nil || got != "e: x" {
			t.Fatalf("through post-function: %q, %v", got, err)
		}
		g.waitErrLog(t, "the refused write", "Cannot modify kong.client.get_ip. Protected by the sandbox.")
		g.waitErrLog(t, "the refused cosocket", "timer cosocket: ngx.socket.tcp is not allowed within sandbox: cosockets need untrusted_lua = on")
		if got, err := roundTrip(restricted, "y"); err != nil || got != "e: y" {
			t.Fatalf("ip-restriction after the sandboxed write (connection %d): %q, %v", i, got, err)
		}
	}
	g.stop()
	log := g.errLog.String()
	for _, secret := range []string{"adm1n-s3cret", "otlp-s3cret", "env-s3cret"} {
		if strings.Contains(log, secret) {
			t.Errorf("sandboxed code read the secret %q:\n%s", secret, log)
		}
	}
	for _, want := range []string{
		"token: ****** otlp: ******",
		"vault: vault reference {vault://env/gong-spec-secret} not allowed within sandbox (untrusted_lua_sandbox_vaults)",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("error log lacks %q:\n%s", want, log)
		}
	}
}

// TestSandboxVaultAllowList resolves, from sandboxed code, the references
// untrusted_lua_sandbox_vaults lists and no other.
func TestSandboxVaultAllowList(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "e")
	p := listenPort(t)
	yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n  - name: e\n    url: tcp://%s\n    routes:\n%s\n", echo,
		postFunctionRoute(p, `kong.log.err("public: ", kong.vault.get("{vault://env/GONG_SPEC_PUBLIC_FLAG}"),
             " private: ", tostring(kong.vault.get("{vault://env/GONG_SPEC_PRIVATE}")))`))
	// The env vault reads the environment gong started with.
	env := []string{"GONG_SPEC_PUBLIC_FLAG=flag-on", "GONG_SPEC_PRIVATE=private-s3cret"}
	g := startGongWith(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nuntrusted_lua_sandbox_vaults = env/GONG_SPEC_PUBLIC_*\n", p), yml,
		runtime.Options{Conf: conf.Options{Env: env}})
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x"); err != nil || got != "e: x" {
		t.Fatalf("through post-function: %q, %v", got, err)
	}
	g.waitErrLog(t, "the vault lookups", "public: flag-on private: nil")
}

// postFunctionRoute is a kong.yml route, under a service's routes, on
// destination port, whose post-function runs each snippet in the log
// phase.
func postFunctionRoute(port int, snippets ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "      - protocols: [tcp]\n        destinations: [{port: %d}]\n        plugins:\n"+
		"          - name: post-function\n            protocols: [tcp]\n            config:\n              log:", port)
	for _, s := range snippets {
		b.WriteString("\n                - |")
		for _, line := range strings.Split(s, "\n") {
			b.WriteString("\n                  " + line)
		}
	}
	return b.String()
}

// TestAdminRootMasksSecrets reads GET / on the Admin API: every secret
// property shows as "******", whatever its source.
func TestAdminRootMasksSecrets(t *testing.T) {
	t.Parallel()
	_, base := startAdmin(t, "pg_password = pg-s3cret\nvault_hcv_token = vault-s3cret\n"+
		"tracing_otlp_headers = authorization:Bearer otlp-s3cret\n", `_format_version: "3.0"`)
	code, root := get(t, base+"/")
	conf, _ := root["configuration"].(map[string]any)
	if code != 200 || conf == nil {
		t.Fatalf("GET / = %d %v", code, root)
	}
	for _, k := range []string{"pg_password", "tracing_otlp_headers", "vault_hcv_token"} {
		if conf[k] != "******" {
			t.Errorf("GET / shows %s = %v; want ******", k, conf[k])
		}
	}
	if conf["pg_user"] == "******" {
		t.Errorf("GET / masks pg_user, which is no secret")
	}
}
