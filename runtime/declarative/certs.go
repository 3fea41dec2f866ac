package declarative

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"
	"time"

	"github.com/gong-proxy/gong/runtime/schema"
)

// parseCert parses the first PEM certificate of s (a chain may follow).
func parseCert(s string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("no PEM data found")
	}
	if block.Type != "CERTIFICATE" && block.Type != "TRUSTED CERTIFICATE" {
		return nil, errors.New("PEM block is a " + strings.ToLower(block.Type) + ", not a certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// parseKey parses a PEM private key (PKCS#8, PKCS#1 or SEC 1).
func parseKey(s string) (crypto.Signer, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("no PEM data found")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if sg, ok := k.(crypto.Signer); ok {
			return sg, nil
		}
		return nil, errors.New("unsupported private key type")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, errors.New("failed to parse private key")
}

func certValidator(s string) string {
	if _, err := parseCert(s); err != nil {
		return "invalid certificate: " + err.Error()
	}
	return ""
}

func keyValidator(s string) string {
	if _, err := parseKey(s); err != nil {
		return "invalid key: " + err.Error()
	}
	return ""
}

func keyType(pub crypto.PublicKey) string {
	switch pub.(type) {
	case *rsa.PublicKey:
		return "rsa"
	case *ecdsa.PublicKey:
		return "ec"
	case ed25519.PublicKey:
		return "ed25519"
	}
	return "other"
}

func matches(cert, key string) bool {
	c, err1 := parseCert(cert)
	k, err2 := parseKey(key)
	if err1 != nil || err2 != nil {
		return false
	}
	pub, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(c.PublicKey)
}

func (b *builder) certificates() *schema.Field {
	return schema.Record("", entityFields(schema.Integer,
		str("cert").Custom(referenceValidator(certValidator)).Required(),
		str("key").Custom(referenceValidator(keyValidator)).Required(),
		str("cert_alt").Custom(referenceValidator(certValidator)),
		str("key_alt").Custom(referenceValidator(keyValidator)),
		tags(),
	)...).Checks(
		func(m map[string]any, errs schema.Errors) {
			a, b := schema.IsNonEmpty(m["cert_alt"]), schema.IsNonEmpty(m["key_alt"])
			if a != b && !schema.HasError(errs, "cert_alt", "key_alt") {
				schema.AddEntityError(errs, "all or none of these fields must be set: 'cert_alt', 'key_alt'")
			}
		},
		func(m map[string]any, errs schema.Errors) {
			cert, _ := m["cert"].(string)
			key, _ := m["key"].(string)
			if cert != "" && key != "" && !schema.HasError(errs, "cert", "key") && !anyReference(cert, key) && !matches(cert, key) {
				schema.AddEntityError(errs, "certificate does not match key")
			}
		},
		func(m map[string]any, errs schema.Errors) {
			cert, _ := m["cert_alt"].(string)
			key, _ := m["key_alt"].(string)
			if cert != "" && key != "" && !schema.HasError(errs, "cert_alt", "key_alt") && !anyReference(cert, key) && !matches(cert, key) {
				schema.AddEntityError(errs, "alternative certificate does not match key")
			}
		},
		func(m map[string]any, errs schema.Errors) {
			cert, _ := m["cert"].(string)
			alt, _ := m["cert_alt"].(string)
			if cert == "" || alt == "" || schema.HasError(errs, "cert", "cert_alt") || anyReference(cert, alt) {
				return
			}
			c1, err1 := parseCert(cert)
			c2, err2 := parseCert(alt)
			if err1 == nil && err2 == nil && keyType(c1.PublicKey) == keyType(c2.PublicKey) {
				schema.AddEntityError(errs, "certificate and alternative certificate need to have different type (e.g. RSA and ECDSA), the provided certificates were both of the same type")
			}
		},
	)
}

func (b *builder) caCertificates() *schema.Field {
	return schema.Record("", entityFields(schema.Integer,
		str("cert").Custom(certValidator).Required(),
		str("cert_digest"),
		tags(),
	)...).Checks(func(m map[string]any, errs schema.Errors) {
		cert, _ := m["cert"].(string)
		if cert == "" || schema.HasError(errs, "cert") {
			return
		}
		const tag = "-----BEGIN CERTIFICATE-----"
		if first := strings.Index(cert, tag); first >= 0 && strings.Contains(cert[first+len(tag):], tag) {
			schema.AddEntityError(errs, "please submit only one certificate at a time")
			return
		}
		c, err := parseCert(cert)
		if err != nil {
			return
		}
		if c.NotAfter.Before(time.Unix(b.now, 0)) {
			schema.AddEntityError(errs, `certificate expired, "Not After" time is in the past`)
			return
		}
		if !c.BasicConstraintsValid || !c.IsCA {
			schema.AddEntityError(errs, `certificate does not appear to be a CA because it is missing the "CA" basic constraint`)
		}
	})
}

// certDigest is the lower-case hex SHA-256 of the certificate's DER.
func certDigest(cert string) string {
	c, err := parseCert(cert)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
