package conf

import "strings"

// SensitivePlaceholder stands for a secret property's value wherever
// kong.conf is shown: the Admin API's GET /, remove_sensitive, and the
// sandbox's kong.configuration.
const SensitivePlaceholder = "******"

// sensitiveNames are the secret properties whose names no pattern of
// Sensitive catches: Kong's CONF_SENSITIVE list (the proxy URL and the
// declarative config may carry credentials; $refs holds vault
// references) and gong's OTLP headers, which carry exporter credentials.
var sensitiveNames = map[string]bool{
	"proxy_server":              true,
	"declarative_config_string": true,
	"$refs":                     true,
	"tracing_otlp_headers":      true,
}

// Sensitive reports whether a property holds a secret that must not be
// shown: Kong's list, admin_token, the OTLP headers, and every property
// named like a password, token, key or secret (pg_password,
// vault_*_token, ssl_cert_key and the *_cert_key properties holding key
// contents), whichever source set it.
func Sensitive(key string) bool {
	if sensitiveNames[key] || strings.Contains(key, "password") {
		return true
	}
	for _, suffix := range []string{"_token", "_key", "_secret"} {
		if strings.HasSuffix(key, suffix) {
			return true
		}
	}
	return false
}
