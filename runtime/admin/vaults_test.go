package admin

import "testing"

// TestMaskVaultSecrets: a vault config's secret settings (Kong's cloud
// vaults have tokens and keys) are hidden as GET / hides kong.conf's;
// the others are shown.
func TestMaskVaultSecrets(t *testing.T) {
	v := map[string]any{"config": map[string]any{"token": "s3cret", "secret_access_key": "k", "approle_secret_id": "i", "ttl": 60.0, "prefix": "APP_"}}
	maskSecrets(v)
	cfg := v["config"].(map[string]any)
	if cfg["token"] != "******" || cfg["secret_access_key"] != "******" || cfg["approle_secret_id"] != "******" {
		t.Errorf("secrets shown: %v", cfg)
	}
	if cfg["ttl"] != 60.0 || cfg["prefix"] != "APP_" {
		t.Errorf("settings hidden: %v", cfg)
	}
	maskSecrets(map[string]any{"config": nil}) // no config: nothing to do
}
