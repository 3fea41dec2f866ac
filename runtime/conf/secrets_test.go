package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVaultReferences(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := "admin_token = {vault://file/token}\npg_password = {vault://env/pg-pass}\n" +
		"trusted_ips = 10.0.0.1, {vault://env/trusted}\nvault_file_base_dir = " + dir + "\n"
	c, _, err := load(t, text, "KONG_VAULT_ENV_PREFIX=app_", "APP_PG_PASS=pg-s3cret", "APP_TRUSTED=10.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminToken != "file-token" {
		t.Errorf("admin_token = %q; want the file's secret", c.AdminToken)
	}
	if len(c.TrustedIPs) != 2 || c.TrustedIPs[1].String() != "10.0.0.2/32" {
		t.Errorf("trusted_ips = %v; want the list with the referenced item resolved", c.TrustedIPs)
	}
	env := string(c.KongEnv())
	if strings.Contains(env, "s3cret") || strings.Contains(env, "file-token") ||
		!strings.Contains(env, "pg_password = {vault://env/pg-pass}") {
		t.Errorf(".kong_env shows secrets or lost the references:\n%s", env)
	}
	if v, _ := c.Get("admin_token"); v != "{vault://file/token}" {
		t.Errorf("Get(admin_token) = %q; want the reference", v)
	}
}

func TestVaultReferenceErrors(t *testing.T) {
	tests := []struct {
		name, text string
		env        []string
		want       string
	}{
		{"missing variable", "pg_password = {vault://env/nope}\n", nil,
			"failed to dereference '{vault://env/nope}': could not get value from external vault (no value found (nope)) [{vault://env/nope}] for config option 'pg_password'"},
		{"vault turned off", "pg_password = {vault://env/x}\nvaults = off\n", []string{"X=1"},
			"failed to dereference '{vault://env/x}': vault not found (env) [{vault://env/x}] for config option 'pg_password'"},
		{"file vault without a directory", "admin_token = {vault://file/t}\n", nil,
			"the file vault needs vault_file_base_dir"},
		{"invalid resolved value names the reference", "log_level = {vault://env/lvl}\n", []string{"LVL=hunter2"},
			"log_level has an invalid value: '{vault://env/lvl}'"},
		{"bad vault setting", "vault_env_ttl = soon\n", nil, "vault_env_ttl: expected a number of seconds, 0 or greater"},
		{"unknown vault", "vaults = env,aws\n", nil, "vault 'aws' is not installed (bundled vaults: env, file)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := load(t, tt.text, tt.env...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v; want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}
