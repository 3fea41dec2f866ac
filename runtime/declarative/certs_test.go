package declarative

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

type pair struct{ cert, key string }

func newPair(t *testing.T, key crypto.Signer, isCA bool, notAfter time.Time) pair {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test"},
		NotBefore:             testNow.Add(-time.Hour),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pair{
		cert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		key:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})),
	}
}

func ecKey(t *testing.T) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rsaKey(t *testing.T) crypto.Signer {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jsonConfig builds a JSON config; PEM text goes through %q-like quoting.
func quote(s string) string {
	return `"` + strings.ReplaceAll(s, "\n", `\n`) + `"`
}

func TestCertificates(t *testing.T) {
	future := testNow.Add(24 * time.Hour)
	ec1, ec2 := newPair(t, ecKey(t), false, future), newPair(t, ecKey(t), false, future)
	rsa1 := newPair(t, rsaKey(t), false, future)
	ca := newPair(t, ecKey(t), true, future)
	expiredCA := newPair(t, ecKey(t), true, testNow.Add(-time.Minute))

	tests := []struct {
		name string
		body string // JSON members after _format_version
		want string // substring of the error; "" = valid
	}{
		{"valid with snis", `"certificates":[{"cert":` + quote(ec1.cert) + `,"key":` + quote(ec1.key) +
			`,"cert_alt":` + quote(rsa1.cert) + `,"key_alt":` + quote(rsa1.key) +
			`,"snis":[{"name":"api.example.com"},{"name":"*"}]}]`, ""},
		{"bad pem", `"certificates":[{"cert":"junk","key":` + quote(ec1.key) + `}]`,
			"in 'cert': invalid certificate: no PEM data found"},
		{"mismatch", `"certificates":[{"cert":` + quote(ec1.cert) + `,"key":` + quote(ec2.key) + `}]`,
			"certificate does not match key"},
		{"alt without key", `"certificates":[{"cert":` + quote(ec1.cert) + `,"key":` + quote(ec1.key) +
			`,"cert_alt":` + quote(rsa1.cert) + `}]`, "all or none of these fields must be set: 'cert_alt', 'key_alt'"},
		{"alt same type", `"certificates":[{"cert":` + quote(ec1.cert) + `,"key":` + quote(ec1.key) +
			`,"cert_alt":` + quote(ec2.cert) + `,"key_alt":` + quote(ec2.key) + `}]`,
			"certificate and alternative certificate need to have different type (e.g. RSA and ECDSA), the provided certificates were both of the same type"},
		{"duplicate sni", `"certificates":[{"cert":` + quote(ec1.cert) + `,"key":` + quote(ec1.key) +
			`,"snis":[{"name":"a.example.com"}]}],"snis":[{"name":"a.example.com","certificate":"00000000-0000-4000-8000-000000000000"}]`,
			"uniqueness violation: 'snis' entity with name set to 'a.example.com' already declared"},
		{"sni as string", `"certificates":[{"cert":` + quote(ec1.cert) + `,"key":` + quote(ec1.key) + `,"snis":["a.example.com"]}]`,
			"- in entry 1 of 'snis': expected a record"},
		{"ca valid", `"ca_certificates":[{"cert":` + quote(ca.cert) + `}]`, ""},
		{"ca not a ca", `"ca_certificates":[{"cert":` + quote(ec1.cert) + `}]`,
			`certificate does not appear to be a CA because it is missing the "CA" basic constraint`},
		{"ca expired", `"ca_certificates":[{"cert":` + quote(expiredCA.cert) + `}]`,
			`certificate expired, "Not After" time is in the past`},
		{"ca two certs", `"ca_certificates":[{"cert":` + quote(ca.cert+ca.cert) + `}]`,
			"please submit only one certificate at a time"},
		{"ca duplicate digest", `"ca_certificates":[{"cert":` + quote(ca.cert) + `},{"cert":` + quote(ca.cert) + `}]`,
			"uniqueness violation: 'ca_certificates' entity with cert_digest set to"},
		// As in Kong, the nested service's client_certificate is filled after
		// validation, so the tls-only conditional does not see it.
		{"nested service", `"certificates":[{"cert":` + quote(ec1.cert) + `,"key":` + quote(ec1.key) +
			`,"services":[{"name":"s","url":"tcp://10.0.0.1:1"}]}]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(`{"_format_version":"3.0",` + tt.body + `}`)
			cfg, err := parseAt(t, data, "", Options{})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse() error: %v", err)
				}
				if len(cfg.SNIs) > 0 && cfg.SNIs[0].Certificate != cfg.Certificates[0].ID {
					t.Errorf("SNI certificate = %q; want %q", cfg.SNIs[0].Certificate, cfg.Certificates[0].ID)
				}
				if len(cfg.Services) > 0 && *cfg.Services[0].ClientCertificate != cfg.Certificates[0].ID {
					t.Errorf("client_certificate = %v; want %q", cfg.Services[0].ClientCertificate, cfg.Certificates[0].ID)
				}
				if len(cfg.CACertificates) > 0 && len(cfg.CACertificates[0].CertDigest) != 64 {
					t.Errorf("cert_digest = %q; want 64 hex digits", cfg.CACertificates[0].CertDigest)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse() error = %v; want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDeterministicIDs(t *testing.T) {
	// Kong: uuid v5 of "svc" in the namespace derived from "services".
	if got, want := entityUUID("services", "svc"), entityUUID("services", "svc"); got != want {
		t.Fatalf("entityUUID not stable: %s vs %s", got, want)
	}
	data := []byte(`{"_format_version":"3.0","routes":[{"protocols":["tcp"],"destinations":[{"port":1}]}]}`)
	a, err := parseAt(t, data, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := parseAt(t, data, "", Options{})
	if a.Routes[0].ID != b.Routes[0].ID {
		t.Errorf("unnamed route id changed across loads: %s vs %s", a.Routes[0].ID, b.Routes[0].ID)
	}
}

func TestFileTypes(t *testing.T) {
	tests := []struct{ name, want string }{
		{"kong.conf", "unknown file type: kong.conf. (Accepted types: json, yaml, toml)"},
		{"kong.yml", "failed parsing declarative configuration: yaml:"},
		{"kong.toml", "failed parsing declarative configuration: toml:"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte("a: [\n"), tt.name, Options{})
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Parse(%q) error = %v; want prefix %q", tt.name, err, tt.want)
		}
	}
	if _, err := LoadFile("testdata/good/minimal_stream.yml", Options{}); err != nil {
		t.Errorf("LoadFile() error: %v", err)
	}
}

// fuzzFormats are the file names FuzzParse decodes its input as: each
// format by its extension, and "" for POST /config's JSON-then-YAML guess.
var fuzzFormats = []string{"kong.yml", "kong.json", "kong.toml", ""}

// FuzzParse feeds arbitrary bytes to Parse as kong.yml, kong.json,
// kong.toml and an unnamed POST /config body: it must return a config or
// a *Error, never panic.
func FuzzParse(f *testing.F) {
	seeds := []struct {
		data   string
		format uint8 // index in fuzzFormats
	}{
		{`{"_format_version":"3.0","services":[{"url":"tcp://1.2.3.4:5","routes":[{"protocols":["tcp"],"destinations":[{"port":1}]}]}]}`, 3},
		{`{"_format_version":"3.0","services":[{"url":"tcp://1.2.3.4:5","routes":[{"protocols":["tcp"],"destinations":[{"port":1}]}]}]}`, 1},
		{"_format_version: \"3.0\"\nupstreams:\n- name: u\n  hash_on: ip\n  targets:\n  - target: \"[::1]\"\n", 0},
		{"_format_version = \"3.0\"\n[[routes]]\nprotocols=[\"tls\"]\nsnis=[\"*.a\"]\n", 2},
		{"_format_version = \"3.0\"\n[[services]]\nurl = \"tls://a:1\"\n[[services.routes]]\nprotocols = [\"tls\"]\nsnis = [\"b\"]\n[[plugins]]\nname = \"tcp-log\"\nconfig = { host = \"h\", port = 1 }\n", 2},
		{`{"_format_version":"3.0","routes":[{"protocols":[1,{},null]}],"upstreams":[{"name":"x","slots":1e309,"healthchecks":{"active":[]}}]}`, 1},
		{"_format_version: \"3.0\"\nservices: &a [*a]\n", 0},
		{"a: &a [*a, *a]\nb: &b [*a, *a]\nc: [*b, *b, *b]\n_format_version: .nan\n", 0},
	}
	for _, s := range seeds {
		f.Add([]byte(s.data), s.format)
	}
	f.Fuzz(func(t *testing.T, data []byte, format uint8) {
		name := fuzzFormats[int(format)%len(fuzzFormats)]
		cfg, err := Parse(data, name, Options{Plugins: []string{"tcp-log"}})
		if err == nil && cfg == nil {
			t.Fatal("Parse returned neither config nor error")
		}
		var de *Error
		if err != nil && !errors.As(err, &de) {
			t.Fatalf("Parse(%s) error %T is not a *Error: %v", name, err, err)
		}
	})
}
