package tlsmgr

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
)

// UpstreamOptions describes TLS towards an upstream (service protocol tls).
type UpstreamOptions struct {
	// ServerName is sent as SNI and, when Verify is set, checked against
	// the certificate. "" sends no SNI; the name check is then on Host.
	ServerName string
	// Host is the upstream address connected to (the service's or
	// target's host). With Verify and no ServerName, an IP address here
	// must be among the certificate's IP SANs, as Go's VerifyHostname
	// checks an IP; otherwise any certificate the store trusts would do.
	Host string
	// Verify checks the upstream's chain against RootCAs (service
	// tls_verify). If false, any certificate is accepted, as nginx's
	// default proxy_ssl_verify off.
	Verify bool
	// VerifyDepth is OpenSSL's verify depth (service tls_verify_depth): the
	// number of intermediate certificates allowed between the leaf and the
	// trust anchor. nginx's default, used by Kong when the field is null,
	// is 1; the zero value allows none. Negative means no limit.
	VerifyDepth int
	// RootCAs is the trust store (service ca_certificates). If nil, the
	// store is empty and verification fails, as in Kong without
	// ca_certificates.
	RootCAs *x509.CertPool
	// ClientCert is presented whenever the upstream asks for one (service
	// or upstream client_certificate, or kong.conf client_ssl_cert).
	ClientCert *tls.Certificate
}

// UpstreamConfig returns the client tls.Config for one upstream
// connection. Verification runs in VerifyPeerCertificate, because
// crypto/tls's own has no depth limit; InsecureSkipVerify is therefore
// always set, and without Verify nothing is checked.
func UpstreamConfig(o UpstreamOptions) *tls.Config {
	cfg := &tls.Config{
		ServerName:         o.ServerName,
		InsecureSkipVerify: true,
	}
	if o.ClientCert != nil {
		cert := o.ClientCert
		// Sent whatever CAs the upstream names, as nginx does.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
	}
	if o.Verify {
		roots := o.RootCAs
		if roots == nil {
			roots = x509.NewCertPool()
		}
		name := o.ServerName
		if ip := net.ParseIP(strings.Trim(o.Host, "[]")); name == "" && ip != nil {
			name = ip.String()
		}
		cfg.VerifyPeerCertificate = func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			return verifyChain(rawCerts, roots, name, o.VerifyDepth)
		}
	}
	return cfg
}

// verifyChain verifies the peer's chain and accepts it when one verified
// path has at most depth intermediates.
func verifyChain(rawCerts [][]byte, roots *x509.CertPool, name string, depth int) error {
	if len(rawCerts) == 0 {
		return errors.New("upstream tls verify: no certificate")
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return fmt.Errorf("upstream tls verify: %w", err)
		}
		certs[i] = c
	}
	if err := VerifyPeer(certs, roots, name, depth); err != nil {
		return fmt.Errorf("upstream tls verify: %w", err)
	}
	return nil
}

// VerifyPeer checks a server's chain (leaf first) as OpenSSL does for
// nginx and Kong's cosockets: against roots (nil: the system's), within
// depth intermediates (negative: no limit), and, unless name is "", for
// that host name, the Common Name standing in only when the certificate
// has no SANs.
func VerifyPeer(certs []*x509.Certificate, roots *x509.CertPool, name string, depth int) error {
	chains, err := verifyCerts(certs, x509.VerifyOptions{Roots: roots})
	if err != nil {
		return err
	}
	if name != "" {
		if err := verifyHostname(certs[0], name); err != nil {
			return err
		}
	}
	if !withinDepth(chains, depth) {
		return fmt.Errorf("certificate chain too long (verify depth %d)", depth)
	}
	return nil
}

// verifyHostname checks that leaf is valid for name. Go reads only the
// subject alternative names; OpenSSL's host check, which nginx (and so
// Kong) uses, falls back to the subject's Common Name when the certificate
// has no SANs. gong does the same, and only then: a certificate with any
// DNS or IP SAN is judged by its SANs alone.
func verifyHostname(leaf *x509.Certificate, name string) error {
	err := leaf.VerifyHostname(name)
	if err == nil || len(leaf.DNSNames) > 0 || len(leaf.IPAddresses) > 0 || leaf.Subject.CommonName == "" {
		return err
	}
	byCN := *leaf
	byCN.DNSNames = []string{leaf.Subject.CommonName}
	if byCN.VerifyHostname(name) == nil {
		return nil
	}
	return fmt.Errorf("x509: certificate's Common Name %q does not match %s", leaf.Subject.CommonName, name)
}

// verifyCerts verifies a peer's chain as sent, leaf first, the others
// serving as intermediates.
func verifyCerts(certs []*x509.Certificate, opts x509.VerifyOptions) ([][]*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	opts.Intermediates = x509.NewCertPool()
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	return certs[0].Verify(opts)
}

// withinDepth reports whether one of the verified chains has at most depth
// intermediates, OpenSSL's verify depth; a negative depth is no limit.
func withinDepth(chains [][]*x509.Certificate, depth int) bool {
	if depth < 0 {
		return true
	}
	for _, chain := range chains {
		if intermediates(chain) <= depth {
			return true
		}
	}
	return false
}

// intermediates counts the certificates between the leaf and the trust
// anchor of a verified chain; a self-signed leaf in the store has none.
func intermediates(chain []*x509.Certificate) int {
	if len(chain) < 2 {
		return 0
	}
	return len(chain) - 2
}

// UpstreamSNI returns the SNI for upstream TLS: the client's SNI when the
// route preserves the host and the client sent one, else the upstream's
// host_header, else the target host. A ":port" suffix is stripped and an
// IP address or an empty value gives "" (no SNI).
// Same order as Kong's upstream_host for stream (route preserve_host,
// then kong/runloop/balancer's host_header or target hostname).
func UpstreamSNI(preserveHost bool, clientSNI, hostHeader, targetHost string) string {
	var host string
	switch {
	case preserveHost && clientSNI != "":
		host = clientSNI
	case hostHeader != "":
		host = hostHeader
	default:
		host = targetHost
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" || net.ParseIP(host) != nil {
		return ""
	}
	return host
}

// PoolFromPEM builds a certificate pool from PEM documents, each holding
// one or more certificates. A document without any certificate, or with
// one that does not parse, is an error naming its position.
func PoolFromPEM(pems ...[]byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for i, doc := range pems {
		found := false
		for rest := doc; ; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("ca certificate %d: %w", i, err)
			}
			pool.AddCert(c)
			found = true
		}
		if !found {
			return nil, fmt.Errorf("ca certificate %d: no PEM certificate found", i)
		}
	}
	return pool, nil
}
