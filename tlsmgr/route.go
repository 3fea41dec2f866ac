package tlsmgr

import (
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
)

// RouteTLS is what a route adds to the handshake (gong extensions: route
// client_ca_certificates, client_verify_depth and alpn_protocols).
type RouteTLS struct {
	// ClientCAs, when non-nil, makes a client certificate required and
	// verified against these CAs, as nginx's ssl_verify_client on with
	// ssl_client_certificate.
	ClientCAs *x509.CertPool
	// VerifyDepth limits the client's chain with OpenSSL's meaning, as
	// UpstreamOptions.VerifyDepth: the intermediates allowed between the
	// leaf and the CA. Callers pass 1 for null (nginx's ssl_verify_depth
	// default). Negative means no limit. Unused without ClientCAs.
	VerifyDepth int
	// NextProtos is offered for ALPN instead of Options.NextProtos; a
	// client offering none of them fails the handshake, as with nginx's
	// ssl_alpn. Nil keeps Options.NextProtos (no ALPN by default).
	NextProtos []string
}

// ServerConfigFor returns the tls.Config for terminating TLS on a route.
// It selects certificates like ServerConfig and shares its session ticket
// keys, so a ticket issued on one route resumes on another where
// crypto/tls allows it (it refuses a session without a client certificate,
// or one whose chain is not rooted in ClientCAs). A zero RouteTLS returns
// ServerConfig itself. Build one per route and generation and share it
// across connections; callers must not modify it.
func (m *Manager) ServerConfigFor(rt RouteTLS) *tls.Config {
	base := m.config
	if rt.ClientCAs == nil && rt.NextProtos == nil {
		return base
	}
	c := base.Clone() // its WrapSession and UnwrapSession seal tickets with base's keys
	if rt.NextProtos != nil {
		c.NextProtos = rt.NextProtos
	}
	if rt.ClientCAs != nil {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = rt.ClientCAs
		c.VerifyConnection = checkClientChain(rt.ClientCAs, rt.VerifyDepth)
	}
	return c
}

// checkClientChain applies the verify depth, which crypto/tls does not
// have. It runs on resumed handshakes too; their chains were verified for
// the route that issued the ticket, so they are verified again against
// this route's CAs before the depth is counted.
func checkClientChain(cas *x509.CertPool, depth int) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		chains := cs.VerifiedChains
		if cs.DidResume {
			var err error
			chains, err = verifyCerts(cs.PeerCertificates, x509.VerifyOptions{
				Roots:     cas,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			})
			if err != nil {
				return fmt.Errorf("client tls verify: %w", err)
			}
		}
		if !withinDepth(chains, depth) {
			return fmt.Errorf("client tls verify: certificate chain too long (verify depth %d)", depth)
		}
		return nil
	}
}

// ClientIdentity is the client certificate of a connection, for logs and
// plugins, in the formats of nginx's variables.
type ClientIdentity struct {
	// Verify is $ssl_client_verify: "SUCCESS" for a verified certificate,
	// "NONE" without one, and "FAILED:certificate not verified" for one
	// that was presented but not verified (not possible with the configs
	// of this package).
	Verify      string
	SubjectDN   string // $ssl_client_s_dn, RFC 2253 ("CN=x,O=y")
	IssuerDN    string // $ssl_client_i_dn, RFC 2253
	Serial      string // $ssl_client_serial, upper-case hex
	Fingerprint string // $ssl_client_fingerprint, lower-case hex SHA-1 of the DER
}

// ClientIdentityOf describes the client certificate of a completed
// handshake; without one, only Verify is set.
func ClientIdentityOf(cs tls.ConnectionState) ClientIdentity {
	if len(cs.PeerCertificates) == 0 {
		return ClientIdentity{Verify: "NONE"}
	}
	leaf := cs.PeerCertificates[0]
	sum := sha1.Sum(leaf.Raw)
	id := ClientIdentity{
		Verify:      "SUCCESS",
		SubjectDN:   leaf.Subject.String(),
		IssuerDN:    leaf.Issuer.String(),
		Serial:      serialHex(leaf.SerialNumber),
		Fingerprint: hex.EncodeToString(sum[:]),
	}
	if len(cs.VerifiedChains) == 0 {
		id.Verify = "FAILED:certificate not verified"
	}
	return id
}

// serialHex formats a serial as OpenSSL's i2a_ASN1_INTEGER, which nginx
// uses: two upper-case digits per byte, "00" for zero, "-" when negative.
func serialHex(n *big.Int) string {
	b := n.Bytes()
	if len(b) == 0 {
		return "00"
	}
	s := strings.ToUpper(hex.EncodeToString(b))
	if n.Sign() < 0 {
		s = "-" + s
	}
	return s
}
