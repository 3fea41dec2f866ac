package tlsmgr

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"
)

// Cert is one certificate entity: a primary pair and an optional alternate
// pair of another key type (RSA vs ECDSA), as Kong's cert/key and
// cert_alt/key_alt fields. PEM certificates may hold a chain, leaf first.
type Cert struct {
	ID                    string
	CertPEM, KeyPEM       []byte
	AltCertPEM, AltKeyPEM []byte
}

// SNI maps a server name to a certificate entity. Name is exact
// ("a.example.com"), a left wildcard ("*.example.com"), a right wildcard
// ("example.*") or the catch-all "*".
type SNI struct {
	Name   string
	CertID string
}

// CertificateHook is the plugins' certificate phase. It is called for every
// handshake before the SNI lookup, on the handshake goroutine;
// hello.Conn and hello.Context() identify the connection. A non-nil
// certificate is served as is and the lookup is skipped; nil, nil falls
// through to the lookup; an error fails the handshake, as an error in
// Kong's certificate phase does. The hook must not keep hello after it
// returns.
type CertificateHook func(hello *tls.ClientHelloInfo) (*tls.Certificate, error)

// Options is the input of New.
type Options struct {
	Certs []Cert
	SNIs  []SNI

	// Default holds kong.conf's ssl_cert/ssl_cert_key pairs (possibly one
	// RSA and one ECDSA), served when the client sends no SNI or no SNI
	// entity matches. If empty, such handshakes fail.
	Default []Cert

	// Protocols lists kong.conf protocol names ("TLSv1", "TLSv1.1",
	// "TLSv1.2", "TLSv1.3"). The lowest and highest become MinVersion and
	// MaxVersion; a gap in the list cannot be expressed in crypto/tls and
	// is filled. If empty, crypto/tls's defaults (TLS 1.2 to 1.3) apply.
	Protocols []string

	// Ciphers lists OpenSSL cipher names for TLS 1.0-1.2. Names without a
	// crypto/tls equivalent (DHE suites, cipher-string keywords such as
	// "HIGH" or "!aNULL") are skipped and reported by Unsupported. If no
	// name maps, crypto/tls's default suites apply. TLS 1.3 suites are not
	// configurable in crypto/tls.
	Ciphers []string

	// PreferServerCiphers mirrors ssl_prefer_server_ciphers. crypto/tls
	// has ignored cipher preference settings since Go 1.18 and picks
	// the suite itself, so this has no effect; it is kept so the
	// translation from kong.conf stays one to one.
	PreferServerCiphers bool

	// SessionTickets enables TLS session tickets (ssl_session_tickets).
	SessionTickets bool
	// SessionTimeout limits how long a ticket can resume a session
	// (ssl_session_timeout). If zero or negative, crypto/tls's own limit
	// of 7 days applies, which also caps longer values.
	SessionTimeout time.Duration

	// CurvePreferences are the key exchanges offered, most preferred
	// first (nginx's ssl_ecdh_curve). If empty, crypto/tls's defaults
	// apply, which put the post-quantum hybrid X25519MLKEM768 first.
	CurvePreferences []tls.CurveID

	// NextProtos is offered for ALPN. If nil, no ALPN is negotiated, as
	// nginx stream does without ssl_alpn.
	NextProtos []string

	// Hook runs the plugins' certificate phase. If nil, only the lookup
	// runs.
	Hook CertificateHook
}

// Manager holds the parsed certificates and the server tls.Config of one
// config generation. It is safe for concurrent use; only a certificate
// entity's pairs change after New (Replace, Withdraw), when its vault
// references rotate.
type Manager struct {
	bySNI       map[string]*served
	byID        map[string]*served
	defaults    []tls.Certificate
	hook        CertificateHook
	unsupported []string
	timeout     time.Duration
	now         func() time.Time // replaced by tests
	config      *tls.Config
}

// New parses every certificate and SNI up front. Errors name the entity:
// "certificate <id>: ..." or "sni <name>: ...".
func New(opts Options) (*Manager, error) {
	m := &Manager{
		bySNI:   make(map[string]*served, len(opts.SNIs)),
		byID:    make(map[string]*served, len(opts.Certs)),
		hook:    opts.Hook,
		timeout: opts.SessionTimeout,
		now:     time.Now,
	}
	for _, c := range opts.Certs {
		pairs, err := parseCert(c)
		if err != nil {
			return nil, err
		}
		sv := &served{}
		sv.state.Store(&servedState{pairs: pairs})
		m.byID[c.ID] = sv
	}
	for _, s := range opts.SNIs {
		name := strings.ToLower(s.Name)
		sv, ok := m.byID[s.CertID]
		if !ok {
			return nil, fmt.Errorf("sni %s: certificate %s not found", s.Name, s.CertID)
		}
		if _, dup := m.bySNI[name]; dup {
			return nil, fmt.Errorf("sni %s: duplicate name", s.Name)
		}
		m.bySNI[name] = sv
	}
	for _, c := range opts.Default {
		pairs, err := parseCert(c)
		if err != nil {
			return nil, err
		}
		m.defaults = append(m.defaults, pairs...)
	}
	m.defaults = ecdsaFirst(m.defaults)

	minV, maxV, err := VersionRange(opts.Protocols)
	if err != nil {
		return nil, err
	}
	suites, unsupported := cipherSuites(opts.Ciphers)
	m.unsupported = unsupported

	cfg := &tls.Config{
		MinVersion:             minV,
		MaxVersion:             maxV,
		CipherSuites:           suites,
		CurvePreferences:       opts.CurvePreferences,
		SessionTicketsDisabled: !opts.SessionTickets,
		NextProtos:             opts.NextProtos,
		GetCertificate:         m.Certificate,
	}
	// Tickets are sealed with this config's own keys even when the
	// handshake started with another config (crypto/tls takes the keys of
	// that first one, ReadClientHello's or a GetConfigForClient caller's),
	// and route configs cloned from it share them: one set of rotating
	// keys for the generation, so a ticket resumes on any route.
	if opts.SessionTickets {
		cfg.WrapSession = cfg.EncryptTicket
		cfg.UnwrapSession = cfg.DecryptTicket
	}
	// crypto/tls has no ticket lifetime setting, so ssl_session_timeout is
	// enforced with an issue time carried in the ticket itself.
	if opts.SessionTickets && opts.SessionTimeout > 0 {
		cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
			return cfg.EncryptTicket(cs, m.stampSession(ss))
		}
		cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
			ss, err := cfg.DecryptTicket(identity, cs)
			if err != nil || ss == nil {
				return ss, err
			}
			if !m.sessionFresh(ss) {
				return nil, nil
			}
			return ss, nil
		}
	}
	m.config = cfg
	return m, nil
}

// parseCert parses the primary and the alternate pair of one entity.
func parseCert(c Cert) ([]tls.Certificate, error) {
	primary, err := keyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", c.ID, err)
	}
	pairs := []tls.Certificate{primary}
	if len(c.AltCertPEM) > 0 || len(c.AltKeyPEM) > 0 {
		alt, err := keyPair(c.AltCertPEM, c.AltKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: alternative certificate: %w", c.ID, err)
		}
		pairs = append(pairs, alt)
	}
	return ecdsaFirst(pairs), nil
}

// keyPair parses a PEM pair and makes sure Leaf is set, which
// ClientHelloInfo.SupportsCertificate and the tests rely on.
func keyPair(certPEM, keyPEM []byte) (tls.Certificate, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	if pair.Leaf == nil {
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return tls.Certificate{}, err
		}
		pair.Leaf = leaf
	}
	return pair, nil
}

// ecdsaFirst orders ECDSA pairs before the others, so that a client that
// supports ECDSA gets it and the others get RSA.
func ecdsaFirst(pairs []tls.Certificate) []tls.Certificate {
	out := make([]tls.Certificate, 0, len(pairs))
	for _, p := range pairs {
		if _, ok := p.PrivateKey.(*ecdsa.PrivateKey); ok {
			out = append(out, p)
		}
	}
	for _, p := range pairs {
		if _, ok := p.PrivateKey.(*ecdsa.PrivateKey); !ok {
			out = append(out, p)
		}
	}
	return out
}

// Unsupported returns the cipher names from Options.Ciphers that have no
// crypto/tls equivalent and were skipped, in input order.
func (m *Manager) Unsupported() []string {
	return append([]string(nil), m.unsupported...)
}

// ServerConfig returns the tls.Config for terminating TLS. It is shared by
// every caller so that session tickets issued on one connection resume on
// another; callers must not modify it (Clone it to change fields). Its
// GetCertificate is Certificate.
func (m *Manager) ServerConfig() *tls.Config {
	return m.config
}

// Certificate picks the certificate for a handshake: the hook first, then
// the SNI lookup, then the defaults. Among the pairs of the chosen entity
// it returns ECDSA when the client supports it, else the other pair. It
// returns nil, nil when there is nothing to serve, so crypto/tls fails the
// handshake with its own alert.
func (m *Manager) Certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if m.hook != nil {
		cert, err := m.hook(hello)
		if err != nil || cert != nil {
			return cert, err
		}
	}
	pairs, err := m.lookup(hello.ServerName)
	if err != nil {
		return nil, err
	}
	return choose(hello, pairs), nil
}

// served is what a certificate entity serves; its SNIs share it.
type served struct{ state atomic.Pointer[servedState] }

// servedState is either pairs, or the error a handshake fails with
// after Withdraw.
type servedState struct {
	pairs []tls.Certificate
	err   error
}

// Replace makes the entity c.ID serve c's pairs from the next handshake
// on; handshakes done keep theirs. It fails, changing nothing, when the
// pairs do not parse or no entity has that ID.
func (m *Manager) Replace(c Cert) error {
	sv, ok := m.byID[c.ID]
	if !ok {
		return fmt.Errorf("certificate %s not found", c.ID)
	}
	pairs, err := parseCert(c)
	if err != nil {
		return err
	}
	sv.state.Store(&servedState{pairs: pairs})
	return nil
}

// Withdraw makes handshakes that select the entity id fail with err, as
// Kong fails them when a certificate's secret is gone, until Replace.
func (m *Manager) Withdraw(id string, err error) {
	if sv, ok := m.byID[id]; ok {
		sv.state.Store(&servedState{err: err})
	}
}

// lookup returns the pairs for a server name: exact, left wildcard, right
// wildcard, "*", then the defaults. No SNI means the defaults, not the "*"
// entity (Kong quirk). An invalid SNI is not an error: it never equals a
// (validated) entity name, so it falls through to its wildcard forms, "*"
// and the defaults, as in Kong, where the failed lookup of the invalid
// name is logged and the loop goes on.
// Same order as kong/runloop/certificate.lua find_certificate.
func (m *Manager) lookup(serverName string) ([]tls.Certificate, error) {
	if serverName == "" {
		return m.defaults, nil
	}
	sni := strings.ToLower(serverName)
	prefix, suffix := wildSNIs(sni)
	for _, name := range []string{sni, prefix, suffix, "*"} {
		if name == "" {
			continue
		}
		if sv, ok := m.bySNI[name]; ok {
			st := sv.state.Load()
			return st.pairs, st.err
		}
	}
	return m.defaults, nil
}

// wildSNIs returns the left and right wildcard forms of sni, or "" where
// there is none: "a.b.c" gives "*.b.c" and "a.b.*"; "a.b" gives only
// "a.*". A name that already starts or ends with "*" is its own candidate.
// Same as kong/runloop/certificate.lua produce_wild_snis.
func wildSNIs(sni string) (prefix, suffix string) {
	wild := strings.IndexByte(sni, '*')
	switch {
	case wild == 0:
		prefix = sni
	case wild < 0:
		// Needs a first label, a second label and something after it.
		if first := strings.IndexByte(sni, '.'); first > 0 {
			rest := sni[first+1:]
			if second := strings.IndexByte(rest, '.'); second > 0 && second < len(rest)-1 {
				prefix = "*" + sni[first:]
			}
		}
	}
	switch {
	case wild >= 0 && wild == len(sni)-1:
		suffix = sni
	case wild < 0:
		// Needs a non-empty last label and a non-empty label before it.
		if last := strings.LastIndexByte(sni, '.'); last > 0 && last < len(sni)-1 && sni[last-1] != '.' {
			suffix = sni[:last+1] + "*"
		}
	}
	return prefix, suffix
}

// choose returns the first pair the client supports, ECDSA pairs being
// ordered first, or the first pair when the client supports none (the
// handshake then fails in crypto/tls with the right alert).
func choose(hello *tls.ClientHelloInfo, pairs []tls.Certificate) *tls.Certificate {
	switch len(pairs) {
	case 0:
		return nil
	case 1:
		return &pairs[0]
	}
	// Only the key type matters here: Kong serves the entity's
	// certificates whether or not their names cover the SNI, so the
	// hostname check of SupportsCertificate is taken out.
	nameless := *hello
	nameless.ServerName = ""
	for i := range pairs {
		if nameless.SupportsCertificate(&pairs[i]) == nil {
			return &pairs[i]
		}
	}
	return &pairs[0]
}

// CheckSNI reports why a client's server name is not a valid Kong wildcard
// host, with Kong's reasons ("must not be an IP", "must not have a port",
// "invalid value: ...", "only one wildcard must be specified", "wildcard
// must be leftmost or rightmost character"), or nil when it is valid. The
// lookup does not need it (see lookup); the runtime may use it for Kong's
// debug line "invalid SNI '<sni>', <reason>, serving default SSL
// certificate".
// Mirrors validate_wildcard_host in kong/db/schema/typedefs.lua and
// check_hostname in kong/tools/ip.lua.
func CheckSNI(name string) error {
	host := name
	if i := strings.IndexByte(host, '*'); i >= 0 {
		if i != 0 && i != len(host)-1 {
			return errors.New("wildcard must be leftmost or rightmost character")
		}
		if strings.Count(host, "*") > 1 {
			return errors.New("only one wildcard must be specified")
		}
		host = strings.Replace(host, "*", "wildcard", 1)
	}
	invalid := errors.New("invalid value: " + host)
	switch {
	case strings.Count(host, ":") > 1:
		// Kong's hostname_type calls anything with two colons IPv6.
		h := host
		if sh, _, err := net.SplitHostPort(host); err == nil {
			h = sh
		}
		if net.ParseIP(strings.Trim(h, "[]")) != nil {
			return errors.New("must not be an IP")
		}
		return invalid
	case strings.Trim(strings.ReplaceAll(host, ":", ""), "0123456789.") == "":
		h := host
		if sh, _, err := net.SplitHostPort(host); err == nil {
			h = sh
		}
		if ip := net.ParseIP(h); ip != nil && ip.To4() != nil {
			return errors.New("must not be an IP")
		}
		return invalid
	}
	hasPort := false
	if i := strings.LastIndexByte(host, ':'); i >= 0 && i < len(host)-1 &&
		strings.Trim(host[i+1:], "0123456789") == "" {
		host, hasPort = host[:i], true
	}
	labels := strings.Split(host, ".")
	for i, label := range labels {
		if label == "" && i != len(labels)-1 || strings.HasSuffix(label, "-") {
			return invalid
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return invalid
			}
		}
	}
	if hasPort {
		return errors.New("must not have a port")
	}
	return nil
}

// sessionTag marks the issue time that stampSession stores in a ticket.
const sessionTag = "gong-issued:"

// stampSession records the issue time in the ticket, replacing an older
// stamp carried over from a resumed session.
func (m *Manager) stampSession(ss *tls.SessionState) *tls.SessionState {
	extra := ss.Extra[:0:0]
	for _, e := range ss.Extra {
		if !strings.HasPrefix(string(e), sessionTag) {
			extra = append(extra, e)
		}
	}
	stamp := binary.BigEndian.AppendUint64([]byte(sessionTag), uint64(m.now().Unix()))
	ss.Extra = append(extra, stamp)
	return ss
}

// sessionFresh reports whether a ticket was issued less than SessionTimeout
// ago. Tickets without a stamp are not resumed.
func (m *Manager) sessionFresh(ss *tls.SessionState) bool {
	for _, e := range ss.Extra {
		if s, ok := strings.CutPrefix(string(e), sessionTag); ok && len(s) == 8 {
			issued := time.Unix(int64(binary.BigEndian.Uint64([]byte(s))), 0)
			return m.now().Sub(issued) < m.timeout
		}
	}
	return false
}
