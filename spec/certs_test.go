package spec

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// testCert is a certificate with its key, PEM encoded, and its parsed form.
type testCert struct {
	certPEM, keyPEM string
	cert            *x509.Certificate
	key             crypto.Signer
}

func (c testCert) tls(t *testing.T) tls.Certificate {
	t.Helper()
	tc, err := tls.X509KeyPair([]byte(c.certPEM), []byte(c.keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// newCA makes a self-signed CA certificate.
func newCA(t *testing.T, cn string) testCert {
	t.Helper()
	return makeCert(t, cn, nil, nil, true, false)
}

// newLeaf makes a certificate for names signed by ca (self-signed if ca
// is nil), with an ECDSA key when ecdsaKey is set, else RSA.
func newLeaf(t *testing.T, cn string, names []string, ca *testCert, ecdsaKey bool) testCert {
	t.Helper()
	return makeCert(t, cn, names, ca, false, ecdsaKey)
}

func makeCert(t *testing.T, cn string, names []string, ca *testCert, isCA, ecdsaKey bool) testCert {
	t.Helper()
	var key crypto.Signer
	var err error
	if ecdsaKey {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{
		certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		keyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		cert:    cert, key: key,
	}
}

// yamlBlock indents a PEM for a YAML block scalar at the given depth.
func yamlBlock(pemText string, indent int) string {
	pad := strings.Repeat(" ", indent)
	return "|\n" + pad + strings.ReplaceAll(strings.TrimSpace(pemText), "\n", "\n"+pad) + "\n"
}
