package tlsmgr

import (
	"crypto/tls"
	"fmt"
)

// protocolVersions maps kong.conf ssl_protocols names to crypto/tls
// versions.
var protocolVersions = map[string]uint16{
	"TLSv1":   tls.VersionTLS10,
	"TLSv1.1": tls.VersionTLS11,
	"TLSv1.2": tls.VersionTLS12,
	"TLSv1.3": tls.VersionTLS13,
}

// VersionRange returns the lowest and highest of the named protocols
// (TLSv1 ... TLSv1.3, as ssl_protocols and lua_ssl_protocols write them),
// or zeros (crypto/tls defaults) for an empty list.
func VersionRange(protocols []string) (lo, hi uint16, err error) {
	for _, p := range protocols {
		v, ok := protocolVersions[p]
		if !ok {
			return 0, 0, fmt.Errorf("ssl protocols: unknown protocol %q", p)
		}
		if lo == 0 || v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi, nil
}

// opensslToIANA maps OpenSSL cipher names (as used by Kong's cipher suites
// in kong/conf_loader/constants.lua and by ssl_ciphers) to the IANA names
// crypto/tls uses. Only suites that exist in both are listed; DHE, CAMELLIA,
// ARIA, PSK and SRP suites have no crypto/tls implementation.
var opensslToIANA = map[string]string{
	"ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	"ECDHE-RSA-AES128-GCM-SHA256":   "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	"ECDHE-RSA-AES256-GCM-SHA384":   "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
	"ECDHE-RSA-CHACHA20-POLY1305":   "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
	"ECDHE-ECDSA-AES128-SHA256":     "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
	"ECDHE-RSA-AES128-SHA256":       "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
	"ECDHE-ECDSA-AES128-SHA":        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
	"ECDHE-RSA-AES128-SHA":          "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
	"ECDHE-ECDSA-AES256-SHA":        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
	"ECDHE-RSA-AES256-SHA":          "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
	"ECDHE-RSA-DES-CBC3-SHA":        "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
	"ECDHE-ECDSA-RC4-SHA":           "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
	"ECDHE-RSA-RC4-SHA":             "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
	"AES128-GCM-SHA256":             "TLS_RSA_WITH_AES_128_GCM_SHA256",
	"AES256-GCM-SHA384":             "TLS_RSA_WITH_AES_256_GCM_SHA384",
	"AES128-SHA256":                 "TLS_RSA_WITH_AES_128_CBC_SHA256",
	"AES128-SHA":                    "TLS_RSA_WITH_AES_128_CBC_SHA",
	"AES256-SHA":                    "TLS_RSA_WITH_AES_256_CBC_SHA",
	"DES-CBC3-SHA":                  "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
	"RC4-SHA":                       "TLS_RSA_WITH_RC4_128_SHA",
}

// goSuites maps crypto/tls suite names, secure and insecure, to their IDs.
// An explicitly listed insecure suite is enabled, as OpenSSL would.
func goSuites() map[string]uint16 {
	ids := make(map[string]uint16)
	for _, s := range tls.CipherSuites() {
		ids[s.Name] = s.ID
	}
	for _, s := range tls.InsecureCipherSuites() {
		ids[s.Name] = s.ID
	}
	return ids
}

// cipherSuites maps OpenSSL names to crypto/tls suite IDs in input order,
// dropping duplicates, and returns the names it could not map.
func cipherSuites(names []string) (suites []uint16, unsupported []string) {
	ids := goSuites()
	seen := make(map[uint16]bool)
	for _, name := range names {
		id, ok := ids[opensslToIANA[name]]
		if !ok {
			unsupported = append(unsupported, name)
			continue
		}
		if !seen[id] {
			seen[id] = true
			suites = append(suites, id)
		}
	}
	return suites, unsupported
}
