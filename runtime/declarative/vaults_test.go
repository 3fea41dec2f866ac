package declarative

import (
	"strings"
	"testing"
	"time"

	"github.com/gong-proxy/gong/vault"
)

func TestVaultReferencesInCertificates(t *testing.T) {
	future := testNow.Add(24 * time.Hour)
	ec1, ec2 := newPair(t, ecKey(t), false, future), newPair(t, ecKey(t), false, future)
	vars := map[string]string{"APP_KEY": ec1.key, "OTHER_KEY": ec2.key}
	opts := Options{Vault: vault.Settings{LookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}}
	vaults := `"vaults":[{"prefix":"app-env","name":"env","config":{"prefix":"app_"}}]`
	tests := []struct {
		name, body, want string
	}{
		{"key by prefix", vaults + `,"certificates":[{"cert":` + quote(ec1.cert) + `,"key":"{vault://app-env/key}"}]`, ""},
		{"key by vault name", `"certificates":[{"cert":` + quote(ec1.cert) + `,"key":"{vault://env/app-key}"}]`, ""},
		{"unresolvable", vaults + `,"certificates":[{"cert":` + quote(ec1.cert) + `,"key":"{vault://app-env/nope}"}]`,
			"failed to dereference '{vault://app-env/nope}': could not get value from external vault (no value found (nope)) [{vault://app-env/nope}] for field 'key'"},
		{"resolves to another key", `"certificates":[{"cert":` + quote(ec1.cert) + `,"key":"{vault://env/other-key}"}]`,
			"certificate does not match key"},
		{"malformed reference", `"certificates":[{"cert":` + quote(ec1.cert) + `,"key":"{vault://}"}]`,
			"in 'key': reference url is missing host"},
		{"prefix shape", `"vaults":[{"prefix":"App","name":"env"}]`, "in 'prefix': invalid value: App"},
		{"prefix is a vault name", `"vaults":[{"prefix":"env","name":"env"}]`, "in 'prefix': must not be one of: env, file"},
		{"vault not installed", `"vaults":[{"prefix":"my-aws","name":"aws"}]`, "in 'name': vault 'aws' is not installed"},
		{"unknown config field", `"vaults":[{"prefix":"my-file","name":"file","config":{"base_dir":"/"}}]`, "in 'base_dir': unknown field"},
		{"duplicate prefix", `"vaults":[{"prefix":"a-b","name":"env"},{"prefix":"a-b","name":"file"}]`,
			"uniqueness violation: 'vaults' entity with prefix set to 'a-b' already declared"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseAt(t, []byte(`{"_format_version":"3.0",`+tt.body+`}`), "", opts)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Parse() error = %v; want it to contain %q", err, tt.want)
				}
				if strings.Contains(err.Error(), "PRIVATE KEY") {
					t.Errorf("error shows a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error: %v", err)
			}
			c := cfg.Certificates[0]
			if c.PEM.Key != ec1.key || c.PEM.Cert != ec1.cert || !vault.IsReference(c.Key) {
				t.Errorf("key = %.20q, PEM.Key = %.40q; want the reference kept and the PEM resolved", c.Key, c.PEM.Key)
			}
		})
	}
}

func TestVaultReferencesInPluginConfig(t *testing.T) {
	vars := map[string]string{"TOKEN": "s3cret"}
	var seen map[string]any
	opts := Options{Vault: vault.Settings{LookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }},
		PluginReferences: func(name string, config map[string]any, get func(string) (string, error)) (map[string]any, error) {
			seen = config
			v, err := get(config["token"].(string))
			return map[string]any{"token": v}, err
		}}
	body := `"plugins":[{"name":"p","protocols":["tcp"],"config":{"token":"{vault://env/token}"}}]`
	cfg, err := parseAt(t, []byte(`{"_format_version":"3.0",`+body+`}`), "", opts)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Plugins[0]
	if p.HandlerConfig()["token"] != "s3cret" || p.Config["token"] != "{vault://env/token}" || seen["token"] != "{vault://env/token}" {
		t.Errorf("handler config %v, config %v; want the reference resolved for the handler only", p.HandlerConfig(), p.Config)
	}
	delete(vars, "TOKEN")
	_, err = parseAt(t, []byte(`{"_format_version":"3.0",`+body+`}`), "", opts)
	if err == nil || !strings.Contains(err.Error(), "plugin 'p' (") || !strings.Contains(err.Error(), "[{vault://env/token}]") {
		t.Errorf("error = %v; want the plugin and the reference named", err)
	}
}
