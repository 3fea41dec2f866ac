package tlsmgr

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// defaultValidity is Kong's 86400 * 20 * 365 seconds.
const defaultValidity = 20 * 365 * 24 * time.Hour

// GenerateDefault returns Kong's automatic default certificates for TLS
// listeners without ssl_cert: <dir>/kong-default.crt/.key (RSA 2048) and
// <dir>/kong-default-ecdsa.crt/.key (ECDSA P-256). A pair whose two files
// both exist is reused; a pair with neither file is created (self-signed,
// CN=localhost, valid 20 years; keys written 0600); a pair with only one
// file is an error. Each Cert's ID is the path of its certificate file.
// Same files and fields as gen_default_ssl_cert in
// kong/cmd/utils/prefix_handler.lua.
func GenerateDefault(dir string) ([]Cert, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("default certificate: %w", err)
	}
	var certs []Cert
	for _, kind := range []struct {
		base string
		key  func() (crypto.Signer, error)
	}{
		{"kong-default", func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }},
		{"kong-default-ecdsa", func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }},
	} {
		crtPath := filepath.Join(dir, kind.base+".crt")
		keyPath := filepath.Join(dir, kind.base+".key")
		crtOK, err := exists(crtPath)
		if err != nil {
			return nil, err
		}
		keyOK, err := exists(keyPath)
		if err != nil {
			return nil, err
		}
		switch {
		case crtOK != keyOK:
			return nil, fmt.Errorf("certificate %s: found only one of %s and %s", crtPath, crtPath, keyPath)
		case !crtOK:
			key, err := kind.key()
			if err != nil {
				return nil, fmt.Errorf("certificate %s: generate key: %w", crtPath, err)
			}
			if err := writeSelfSigned(crtPath, keyPath, key); err != nil {
				return nil, fmt.Errorf("certificate %s: %w", crtPath, err)
			}
		}
		crtPEM, err := os.ReadFile(crtPath)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", crtPath, err)
		}
		keyPEM, err := os.ReadFile(keyPath)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", crtPath, err)
		}
		certs = append(certs, Cert{ID: crtPath, CertPEM: crtPEM, KeyPEM: keyPEM})
	}
	return certs, nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// writeSelfSigned creates the certificate Kong creates: version 3, random
// 16-byte serial, subject = issuer = C=US, ST=California, L=San Francisco,
// O=Kong, OU=IT Department, CN=localhost, basicConstraints CA:FALSE
// (critical), extendedKeyUsage serverAuth+clientAuth, subjectKeyIdentifier.
func writeSelfSigned(crtPath, keyPath string, key crypto.Signer) error {
	serial, err := randomSerial()
	if err != nil {
		return err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return err
	}
	name := pkix.Name{
		Country:            []string{"US"},
		Province:           []string{"California"},
		Locality:           []string{"San Francisco"},
		Organization:       []string{"Kong"},
		OrganizationalUnit: []string{"IT Department"},
		CommonName:         "localhost",
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               name,
		Issuer:                name,
		NotBefore:             now,
		NotAfter:              now.Add(defaultValidity),
		BasicConstraintsValid: true, // crypto/x509 marks it critical
		IsCA:                  false,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	// The key is written first and private, as Kong's pre_create_private_file.
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(crtPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// randomSerial returns 16 random bytes as a positive serial number, like
// openssl_bignum.from_binary(openssl_rand.bytes(16)).
func randomSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return new(big.Int).SetBytes(b), nil
}

// subjectKeyID is the RFC 5280 method 1 identifier (OpenSSL's "hash"):
// SHA-1 of the subjectPublicKey bit string.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, err
	}
	sum := sha1.Sum(info.PublicKey.Bytes)
	return sum[:], nil
}
