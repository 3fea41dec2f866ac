package tlsmgr

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}

func TestGenerateDefault(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ssl")
	certs, err := GenerateDefault(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 {
		t.Fatalf("GenerateDefault returned %d certificates; want 2", len(certs))
	}
	wantFiles := []string{"kong-default.crt", "kong-default-ecdsa.crt"}
	for i, c := range certs {
		if c.ID != filepath.Join(dir, wantFiles[i]) {
			t.Errorf("certs[%d].ID = %q; want %s", i, c.ID, wantFiles[i])
		}
		block, _ := pem.Decode(c.CertPEM)
		if block == nil {
			t.Fatalf("%s: no PEM", c.ID)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		checkDefaultCert(t, cert, i == 0)
		keyPath := strings.TrimSuffix(c.ID, ".crt") + ".key"
		info, err := os.Stat(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		if mode := info.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s mode = %o; want 600", keyPath, mode)
		}
	}
	if _, err := New(Options{Default: certs}); err != nil {
		t.Errorf("New with the generated defaults: %v", err)
	}

	// A second run reuses the files.
	again, err := GenerateDefault(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range certs {
		if !bytes.Equal(again[i].CertPEM, certs[i].CertPEM) || !bytes.Equal(again[i].KeyPEM, certs[i].KeyPEM) {
			t.Errorf("second run regenerated %s", certs[i].ID)
		}
	}

	// Half a pair is an error, as Kong would fail to load it.
	if err := os.Remove(filepath.Join(dir, "kong-default-ecdsa.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateDefault(dir); err == nil || !strings.Contains(err.Error(), "found only one of") {
		t.Errorf("GenerateDefault with a missing key: error = %v", err)
	}
}

func checkDefaultCert(t *testing.T, cert *x509.Certificate, wantRSA bool) {
	t.Helper()
	s := cert.Subject
	if s.CommonName != "localhost" || !slices.Equal(s.Country, []string{"US"}) ||
		!slices.Equal(s.Province, []string{"California"}) || !slices.Equal(s.Locality, []string{"San Francisco"}) ||
		!slices.Equal(s.Organization, []string{"Kong"}) || !slices.Equal(s.OrganizationalUnit, []string{"IT Department"}) {
		t.Errorf("subject = %s", s)
	}
	if cert.Issuer.String() != s.String() {
		t.Errorf("issuer = %s; want the subject", cert.Issuer)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if cert.Version != 3 {
		t.Errorf("version = %d; want 3", cert.Version)
	}
	if got := cert.NotAfter.Sub(cert.NotBefore); got != defaultValidity {
		t.Errorf("validity = %v; want %v", got, defaultValidity)
	}
	if n := cert.SerialNumber.BitLen(); n > 128 || n < 64 {
		t.Errorf("serial has %d bits; want a random 16-byte serial", n)
	}
	if !cert.BasicConstraintsValid || cert.IsCA {
		t.Error("basicConstraints is not CA:FALSE")
	}
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(oidBasicConstraints) && !ext.Critical {
			t.Error("basicConstraints is not critical")
		}
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("extKeyUsage = %v", cert.ExtKeyUsage)
	}
	ski, err := subjectKeyID(cert.PublicKey)
	if err != nil || !bytes.Equal(cert.SubjectKeyId, ski) {
		t.Errorf("subjectKeyIdentifier = %x; want %x", cert.SubjectKeyId, ski)
	}
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if !wantRSA || pub.N.BitLen() != 2048 {
			t.Errorf("RSA key of %d bits; want RSA=%v 2048", pub.N.BitLen(), wantRSA)
		}
	case *ecdsa.PublicKey:
		if wantRSA || pub.Curve != elliptic.P256() {
			t.Errorf("ECDSA key on %s; want RSA=%v or P-256", pub.Curve.Params().Name, wantRSA)
		}
	default:
		t.Errorf("key type %T", pub)
	}
}
