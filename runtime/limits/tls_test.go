package limits

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gong-proxy/gong/internal/testsvc"
	"github.com/gong-proxy/gong/pdk"
)

// selfSigned writes a certificate for 127.0.0.1 and "redis.test" and its
// key into dir, and returns a pool trusting it.
func selfSigned(t *testing.T, dir string) (certPath, keyPath string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redis.test"},
		DNSNames: []string{"redis.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPath, keyPath = filepath.Join(dir, "redis.crt"), filepath.Join(dir, "redis.key")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certPath, keyPath, roots
}

// TestRedisTLS: ssl connects over TLS; ssl_verify checks the certificate
// against the trusted roots (lua_ssl_trusted_certificate) and the server
// name.
func TestRedisTLS(t *testing.T) {
	certPath, keyPath, roots := selfSigned(t, t.TempDir())
	srv := testsvc.StartRedisTLS(t, certPath, keyPath)
	r := newTestRegistry(t, nil)
	for _, c := range []struct {
		name  string
		redis map[string]any
		roots *x509.CertPool
		err   string
	}{
		{"ssl without verification", map[string]any{"ssl": true}, nil, ""},
		{"verified against the roots", map[string]any{"ssl": true, "ssl_verify": true, "server_name": "redis.test"}, roots, ""},
		{"verified, unknown issuer", map[string]any{"ssl": true, "ssl_verify": true, "timeout": float64(10000)}, nil, "certificate signed by unknown authority"},
		{"verified, wrong name", map[string]any{"ssl": true, "ssl_verify": true, "server_name": "other.test"}, roots, "not other.test"},
	} {
		s, err := r.Counters(c.roots).Store(redisConf(srv.Port, c.redis))
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Hit(context.Background(), "k", []pdk.Limit{{Period: "second", Max: 100}})
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		}
	}
}
