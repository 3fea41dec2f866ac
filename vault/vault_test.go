package vault

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "db-password"), []byte("p@ss\n"), 0o600)
	os.Mkdir(filepath.Join(dir, "app"), 0o700)
	os.WriteFile(filepath.Join(dir, "app", "creds"), []byte(`{"user":"u1","n":1}`), 0o600)
	os.WriteFile(filepath.Join(dir, "big"), make([]byte, MaxFileBytes+1), 0o600)
	outside := filepath.Join(t.TempDir(), "outside")
	os.WriteFile(outside, []byte("nope"), 0o600)
	os.Symlink(outside, filepath.Join(dir, "link"))
	env := envOf(map[string]string{"GONG_TOKEN": "t0k", "TOKEN": "plain", "TOKEN_PREVIOUS": "old",
		"CREDS": `{"user":"u2"}`, "OTHER_TOKEN": "o"})
	r, err := New(Settings{Properties: map[string]string{"vault_env_prefix": "gong_", "vault_file_base_dir": dir}, LookupEnv: env},
		[]Entity{{Prefix: "my-env", Name: "env", Config: map[string]any{"prefix": "other_"}}, {Prefix: "secrets", Name: "file"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ ref, want, wantErr string }{
		{"{vault://env/token}", "t0k", ""},
		{"{vault://env/token?prefix=}", "", "invalid config prefix"},
		{"{vault://my-env/token}", "o", ""},
		{"{vault://env/token#2}", "", "no value found (token)"},
		{"{vault://my-env/creds/user?prefix=x}", "", "no value found (creds)"},
		{"{vault://file/db-password}", "p@ss", ""},
		{"{vault://secrets/db-password}", "p@ss", ""},
		{"{vault://file/app/creds/user}", "u1", ""},
		{"{vault://file/app/creds/n}", "", "unexpected float64 value in JSON secret for subfield n"},
		{"{vault://file/app/creds/}", `{"user":"u1","n":1}`, ""},
		{"{vault://file/../outside/}", "", "outside vault_file_base_dir"},
		{"{vault://file/link}", "", "outside vault_file_base_dir"},
		{"{vault://file/big}", "", "larger than 1048576 bytes"},
		{"{vault://file/missing}", "", "could not get value from external vault (no value found (missing)) [{vault://file/missing}]"},
		{"{vault://aws/x}", "", "vault not found (aws) [{vault://aws/x}]"},
		{"{vault://env}", "", "reference url has empty path"},
	}
	for _, tt := range tests {
		got, err := r.Get(tt.ref)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("%s = %q, %v; want %q", tt.ref, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s error = %v; want %q", tt.ref, err, tt.wantErr)
		case err != nil && (strings.Contains(err.Error(), "nope") || strings.Contains(err.Error(), "u1")):
			t.Errorf("%s error %q shows a secret", tt.ref, err)
		}
	}
}

func TestDisabledVaults(t *testing.T) {
	env := envOf(map[string]string{"X": "1"})
	for _, enabled := range [][]string{{"off"}, {"file"}} {
		r, err := New(Settings{Enabled: enabled, LookupEnv: env}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Get("{vault://env/x}"); err == nil || !strings.Contains(err.Error(), "vault not found (env)") {
			t.Errorf("vaults = %v: error %v; want vault not found", enabled, err)
		}
	}
}

func TestBadSettings(t *testing.T) {
	if _, err := New(Settings{Properties: map[string]string{"vault_env_ttl": "soon"}}, nil); err == nil ||
		err.Error() != "vault_env_ttl: expected a number of seconds, 0 or greater" {
		t.Errorf("error = %v", err)
	}
	for _, tt := range []struct {
		name            string
		cfg             map[string]any
		field, wantMsgs string
	}{
		{"aws", nil, "name", "vault 'aws' is not installed"},
		{"env", map[string]any{"prefix": "1x"}, "config.prefix", "invalid value: 1x"},
		{"file", map[string]any{"base_dir": "/"}, "config.base_dir", "unknown field"},
		{"env", map[string]any{"ttl": -1.0}, "config.ttl", "expected a number of seconds, 0 or greater"},
		{"env", map[string]any{"prefix": "A_", "ttl": 60.0}, "", ""},
		{"env", map[string]any{"prefix": nil, "ttl": nil, "neg_ttl": nil, "resurrect_ttl": nil}, "", ""}, // as Kong stores it
	} {
		if f, msg := CheckConfig(tt.name, tt.cfg); f != tt.field || msg != tt.wantMsgs {
			t.Errorf("CheckConfig(%s, %v) = %q, %q; want %q, %q", tt.name, tt.cfg, f, msg, tt.field, tt.wantMsgs)
		}
	}
}

// TestRotation: a secret is read again after ttl; a failed refresh keeps
// the old value for resurrect_ttl; neg_ttl caches a failure.
func TestRotation(t *testing.T) {
	vars := map[string]string{"S": "v1"}
	r, err := New(Settings{Properties: map[string]string{"vault_env_ttl": "60", "vault_env_resurrect_ttl": "30", "vault_env_neg_ttl": "10"},
		LookupEnv: envOf(vars)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	get := func(want string) {
		t.Helper()
		got, err := r.Get("{vault://env/s}")
		if want == "" {
			if err == nil {
				t.Errorf("at %v: %q; want an error", now.Unix(), got)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("at %v: %q, %v; want %q", now.Unix(), got, err, want)
		}
	}
	get("v1")
	vars["S"] = "v2"
	now = now.Add(59 * time.Second)
	get("v1") // within ttl
	now = now.Add(2 * time.Second)
	get("v2") // rotated
	delete(vars, "S")
	now = now.Add(61 * time.Second)
	get("v2") // refresh failed: resurrected
	now = now.Add(30 * time.Second)
	get("") // past resurrect_ttl
	vars["S"] = "v3"
	now = now.Add(9 * time.Second)
	get("") // neg_ttl
	now = now.Add(2 * time.Second)
	get("v3")
	r.Flush()
	vars["S"] = "v4"
	get("v4")
}

// TestLookupReportsStale: while resurrect_ttl hides a failed read, Lookup
// returns the old value and the read's error, which names the reference.
func TestLookupReportsStale(t *testing.T) {
	vars := map[string]string{"S": "v1"}
	r, err := New(Settings{Properties: map[string]string{"vault_env_ttl": "1", "vault_env_resurrect_ttl": "5"}, LookupEnv: envOf(vars)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	if v, stale, err := r.Lookup("{vault://env/s}"); v != "v1" || stale != nil || err != nil {
		t.Fatalf("first read: %q, %v, %v", v, stale, err)
	}
	delete(vars, "S")
	now = now.Add(2 * time.Second)
	v, stale, err := r.Lookup("{vault://env/s}")
	if v != "v1" || err != nil || stale == nil || !strings.Contains(stale.Error(), "[{vault://env/s}]") {
		t.Errorf("within resurrect_ttl: %q, stale %v, err %v; want v1 and the read's error", v, stale, err)
	}
	now = now.Add(5 * time.Second)
	if v, stale, err := r.Lookup("{vault://env/s}"); v != "" || stale != nil || err == nil {
		t.Errorf("past resurrect_ttl: %q, %v, %v; want an error", v, stale, err)
	}
}

func TestRotationInterval(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  time.Duration
		err   bool
	}{
		{"", DefaultRotationInterval, false},
		{"1", time.Second, false},
		{"0.25", 250 * time.Millisecond, false},
		{"0", 0, true},
		{"0.01", 0, true},
		{"soon", 0, true},
		{"100000", 0, true},
	} {
		props := map[string]string{}
		if tt.value != "" {
			props["vault_rotation_interval"] = tt.value
		}
		got, err := Settings{Properties: props}.RotationInterval()
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("vault_rotation_interval = %q: %v, %v", tt.value, got, err)
		}
		if _, err := New(Settings{Properties: props}, nil); (err != nil) != tt.err ||
			err != nil && !strings.HasPrefix(err.Error(), "vault_rotation_interval: ") {
			t.Errorf("New with vault_rotation_interval = %q: %v", tt.value, err)
		}
	}
}
