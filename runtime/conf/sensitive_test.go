package conf

import "testing"

func TestSensitive(t *testing.T) {
	for key, want := range map[string]bool{
		"pg_password": true, "pg_ro_password": true, "admin_token": true,
		"tracing_otlp_headers": true, "ssl_cert_key": true, "cluster_cert_key": true,
		"admin_gui_ssl_cert_key": true, "vault_hcv_token": true, "proxy_server": true,
		"declarative_config_string": true, "$refs": true, "my_api_secret": true,
		"pg_user": false, "ssl_cert": false, "admin_listen": false,
		"untrusted_lua_sandbox_vaults": false, "real_ip_header": false,
	} {
		if got := Sensitive(key); got != want {
			t.Errorf("Sensitive(%q) = %v; want %v", key, got, want)
		}
	}
}
