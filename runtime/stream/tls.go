package stream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/gong-proxy/gong/router"
	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/errlog"
	"github.com/gong-proxy/gong/runtime/telemetry"
	"github.com/gong-proxy/gong/tlsmgr"
)

// handshakeTimeout bounds a downstream TLS handshake, as nginx's
// ssl_handshake_timeout default does.
const handshakeTimeout = 60 * time.Second

// newTLSManager builds the certificates ssl listeners serve: the
// certificate and SNI entities, and kong.conf's ssl_cert pairs as the
// default, or, with none configured, the self-signed pair Kong generates
// under <prefix>/ssl.
func newTLSManager(c *conf.Config, d *declarative.Config, hook tlsmgr.CertificateHook) (*tlsmgr.Manager, error) {
	var defaults []tlsmgr.Cert
	for i, p := range c.TLS.Certs {
		defaults = append(defaults, tlsmgr.Cert{ID: fmt.Sprintf("ssl_cert[%d]", i+1), CertPEM: p.CertPEM, KeyPEM: p.KeyPEM})
	}
	if len(defaults) == 0 {
		var err error
		if defaults, err = tlsmgr.GenerateDefault(filepath.Join(c.Prefix, "ssl")); err != nil {
			return nil, fmt.Errorf("default certificate: %w", err)
		}
	}
	opts := tlsmgr.Options{
		Default:             defaults,
		Protocols:           c.TLS.Protocols,
		Ciphers:             c.TLS.Ciphers,
		PreferServerCiphers: c.TLS.PreferServerCiphers,
		SessionTickets:      c.TLS.SessionTickets,
		SessionTimeout:      c.TLS.SessionTimeout,
		CurvePreferences:    curveIDs(c.TLS.Curves),
		Hook:                hook,
	}
	for _, ce := range d.Certificates {
		if err := checkNotExpired(ce.ID, ce.PEM.Cert); err != nil {
			return nil, err
		}
		tc := tlsmgr.Cert{ID: ce.ID, CertPEM: []byte(ce.PEM.Cert), KeyPEM: []byte(ce.PEM.Key)}
		if ce.CertAlt != nil && ce.KeyAlt != nil {
			if err := checkNotExpired(ce.ID, ce.PEM.CertAlt); err != nil {
				return nil, err
			}
			tc.AltCertPEM, tc.AltKeyPEM = []byte(ce.PEM.CertAlt), []byte(ce.PEM.KeyAlt)
		}
		opts.Certs = append(opts.Certs, tc)
	}
	for _, s := range d.SNIs {
		opts.SNIs = append(opts.SNIs, tlsmgr.SNI{Name: s.Name, CertID: s.Certificate})
	}
	return tlsmgr.New(opts)
}

// curveIDs maps ssl_ecdh_curve names (validated by conf) to crypto/tls.
func curveIDs(names []string) []tls.CurveID {
	var out []tls.CurveID
	for _, n := range names {
		switch n {
		case "X25519MLKEM768":
			out = append(out, tls.X25519MLKEM768)
		case "X25519":
			out = append(out, tls.X25519)
		case "prime256v1", "P-256", "secp256r1":
			out = append(out, tls.CurveP256)
		case "secp384r1", "P-384":
			out = append(out, tls.CurveP384)
		case "secp521r1", "P-521":
			out = append(out, tls.CurveP521)
		}
	}
	return out
}

// checkNotExpired refuses a certificate entity whose leaf has expired: a
// handshake with it would fail for every client.
func checkNotExpired(id, certPEM string) error {
	b, _ := pem.Decode([]byte(certPEM))
	if b == nil {
		return fmt.Errorf("certificate %s: no PEM certificate", id)
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return fmt.Errorf("certificate %s: %w", id, err)
	}
	if time.Now().After(leaf.NotAfter) {
		return fmt.Errorf("certificate %s: expired on %s", id, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// upstreamTLS is a tls service's settings towards its upstream (Kong's
// kong/runloop/upstream_ssl.lua), resolved once per generation.
type upstreamTLS struct {
	verify bool
	depth  int
	roots  *x509.CertPool
	// clientCert is client_ssl's pair or a session's override
	// (kong.service.set_tls_client_cert); else entityCert, the service's
	// or upstream's client_certificate, which vault rotation may replace.
	clientCert *tls.Certificate
	entityCert *atomic.Pointer[tls.Certificate]
	hostHeader string // the upstream's host_header, a candidate SNI
}

// newUpstreamTLS resolves a service's verification, trust store and
// client certificate, falling back as Kong does: tls_verify to
// nginx_sproxy_proxy_ssl_verify (off), tls_verify_depth to its depth (1),
// ca_certificates to nginx_sproxy_proxy_ssl_trusted_certificate, and the
// client certificate from the service to its upstream to client_ssl.
func newUpstreamTLS(c *conf.Config, d *declarative.Config, s *declarative.Service, u *declarative.Upstream, certs clientCerts) (*upstreamTLS, error) {
	ut := &upstreamTLS{depth: c.Stream.ProxySSLVerifyDepth}
	if c.Stream.ProxySSLVerify != nil {
		ut.verify = *c.Stream.ProxySSLVerify
	}
	if s.TLSVerify != nil {
		ut.verify = *s.TLSVerify
	}
	if s.TLSVerifyDepth != nil {
		ut.depth = *s.TLSVerifyDepth
	}
	switch {
	case len(s.CACertificates) > 0:
		pool, err := caPool(d, s.CACertificates)
		if err != nil {
			return nil, fmt.Errorf("service %s: ca_certificates: %w", nameOr(s.Name, s.ID), err)
		}
		ut.roots = pool
	case c.Stream.ProxySSLTrustedCertificate != "":
		data, err := os.ReadFile(c.Stream.ProxySSLTrustedCertificate)
		if err != nil {
			return nil, fmt.Errorf("nginx_sproxy_proxy_ssl_trusted_certificate: %w", err)
		}
		if ut.roots, err = tlsmgr.PoolFromPEM(data); err != nil {
			return nil, fmt.Errorf("nginx_sproxy_proxy_ssl_trusted_certificate: %w", err)
		}
	case ut.verify:
		// Kong verifies against an empty store here, so verification can
		// only fail; gong uses lua_ssl_trusted_certificate instead.
		var err error
		if ut.roots, err = TrustedPool(c.LuaSSL.TrustedCertificates); err != nil {
			return nil, fmt.Errorf("lua_ssl_trusted_certificate: %w", err)
		}
	}
	certID := s.ClientCertificate
	if certID == nil && u != nil {
		certID = u.ClientCertificate
		ut.hostHeader = derefOr(u.HostHeader, "")
	}
	switch {
	case certID != nil:
		i := slices.IndexFunc(d.Certificates, func(ce *declarative.Certificate) bool { return ce.ID == *certID })
		if i < 0 {
			return nil, fmt.Errorf("service %s: client certificate '%s' does not exist", nameOr(s.Name, s.ID), *certID)
		}
		if ut.entityCert = certs[*certID]; ut.entityCert == nil {
			cert, err := tls.X509KeyPair([]byte(d.Certificates[i].PEM.Cert), []byte(d.Certificates[i].PEM.Key))
			if err != nil {
				return nil, fmt.Errorf("certificate %s: %w", *certID, err)
			}
			ut.entityCert = &atomic.Pointer[tls.Certificate]{}
			ut.entityCert.Store(&cert)
			certs[*certID] = ut.entityCert
		}
	case c.ClientSSL.Cert != nil:
		cert, err := tls.X509KeyPair(c.ClientSSL.Cert.CertPEM, c.ClientSSL.Cert.KeyPEM)
		if err != nil {
			return nil, fmt.Errorf("client_ssl_cert: %w", err)
		}
		ut.clientCert = &cert
	}
	return ut, nil
}

// presented is the client certificate the upstream gets when it asks.
func (ut *upstreamTLS) presented() *tls.Certificate {
	if ut.clientCert == nil && ut.entityCert != nil {
		return ut.entityCert.Load()
	}
	return ut.clientCert
}

// clientCerts are the certificate entities services present to their
// upstreams, by id, each shared by the services that name it.
type clientCerts map[string]*atomic.Pointer[tls.Certificate]

// ReplaceClientCertificate makes the services and upstreams whose
// client_certificate is entity id present the pair certPEM, keyPEM from
// their next upstream handshake; the vault rotator calls it. It reports
// whether any does; a pair that does not parse changes nothing.
func (c *Config) ReplaceClientCertificate(id string, certPEM, keyPEM []byte) (bool, error) {
	p, ok := c.clientCerts[id]
	if !ok {
		return false, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return true, fmt.Errorf("certificate %s: %w", id, err)
	}
	p.Store(&cert)
	return true, nil
}

// caPool is the trust store made of the ca_certificates entities ids name.
func caPool(d *declarative.Config, ids []string) (*x509.CertPool, error) {
	var pems [][]byte
	for _, id := range ids {
		i := slices.IndexFunc(d.CACertificates, func(ca *declarative.CACertificate) bool { return ca.ID == id })
		if i < 0 {
			return nil, fmt.Errorf("CA Certificate '%s' does not exist", id)
		}
		pems = append(pems, []byte(d.CACertificates[i].Cert))
	}
	return tlsmgr.PoolFromPEM(pems...)
}

// TrustedPool reads lua_ssl_trusted_certificate: "system" for the
// system's store, else PEM files or PEM text.
func TrustedPool(entries []string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if slices.Contains(entries, "system") {
		sys, err := x509.SystemCertPool()
		if err != nil {
			return nil, err
		}
		pool = sys.Clone()
	}
	for _, e := range entries {
		if e == "system" {
			continue
		}
		data := []byte(e)
		if !strings.HasPrefix(strings.TrimSpace(e), "-----BEGIN") {
			var err error
			if data, err = os.ReadFile(e); err != nil {
				return nil, err
			}
		}
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("no certificate in %s", e)
		}
	}
	return pool, nil
}

// handshakeUpstream runs TLS over a fresh upstream connection, with the
// SNI Kong would send.
func (s *Session) handshakeUpstream(ctx context.Context, c net.Conn, ut *upstreamTLS, host string) (net.Conn, error) {
	sni := tlsmgr.UpstreamSNI(s.route.Decl.PreserveHost, s.rec.SNI, ut.hostHeader, host)
	tc := tls.Client(c, tlsmgr.UpstreamConfig(tlsmgr.UpstreamOptions{
		ServerName: sni, Host: host, Verify: ut.verify, VerifyDepth: ut.depth, RootCAs: ut.roots, ClientCert: ut.presented(),
	}))
	var sp trace.Span
	if s.trace != nil {
		sp = s.trace.Span(telemetry.UpstreamTLS, "stream upstream tls handshake", attribute.String("tls.client.server_name", sni))
	}
	err := tc.HandshakeContext(ctx)
	if sp != nil {
		handshakeDone(sp, tc, err)
	}
	if err != nil {
		return nil, err
	}
	return tc, nil
}

// serveTLS handles a connection on an ssl listener, as Kong's TLS preread
// layer does: read the ClientHello, route on its SNI, then terminate TLS
// (a tls route), in the handshake that read the hello, or pass the bytes
// through (a tls_passthrough route).
func (s *Session) serveTLS() {
	var src net.Conn = s.down
	if len(s.first) > 0 {
		src = tlsmgr.NewReplayConn(s.down, s.first)
	}
	limit := s.cfg.Conf.Stream.PrereadBufferSize
	if limit <= 0 {
		limit = 16 << 10
	}
	// The socket's deadlines bound the hello (preread_timeout) and then the
	// handshake: a context with one would cost crypto/tls a goroutine per
	// handshake to watch it.
	ctx := context.Background()
	var helloSpan, handshakeSpan trace.Span
	if s.trace != nil {
		helloSpan = s.trace.Span(telemetry.TLS, "stream tls client hello")
		ctx = context.WithValue(ctx, traceKey{}, s.trace) // for the certificate hook
	}
	if t := s.cfg.Conf.Stream.PrereadTimeout; t > 0 {
		s.down.SetReadDeadline(time.Now().Add(t))
	}
	matched := false
	tc, hello, err := tlsmgr.ReadClientHello(ctx, src, limit, func(h tlsmgr.Hello) *tls.Config {
		if helloSpan != nil {
			helloSpan.SetAttributes(attribute.Bool("gong.tls.client_hello", h.IsTLS), attribute.String("tls.client.server_name", h.ServerName))
			helloSpan.End()
		}
		ci := router.ConnInfo{Protocol: "tcp", Src: s.client, Dst: s.cfg.Destination(s.local)}
		if h.IsTLS {
			ci.Protocol, ci.SNI = "tls", h.ServerName
			s.rec.SNI = h.ServerName
		}
		if matched = s.find(ci); !matched || !slices.Contains(s.route.Decl.Protocols, "tls") {
			return nil
		}
		if s.trace != nil {
			handshakeSpan = s.trace.Span(telemetry.TLS, "stream tls handshake")
		}
		s.down.SetDeadline(time.Now().Add(handshakeTimeout))
		return s.route.serverTLS
	})
	s.down.SetDeadline(time.Time{})
	switch {
	case tc != nil:
		s.terminated(tc, err, handshakeSpan)
	case err != nil:
		if helloSpan != nil {
			telemetry.Fail(helloSpan, err)
			helloSpan.End()
		}
		s.Log(errlog.LevelInfo, "failed to read the TLS ClientHello: "+err.Error())
		s.end(StatusBadRequest)
	case !matched:
		s.noRoute()
	case slices.Contains(s.route.Decl.Protocols, "tls_passthrough"):
		s.first = hello.Raw
		s.proxy()
	default:
		s.Log(errlog.LevelError, "unexpected protocols in matched Route", "route", s.route.Name)
		s.end(StatusInternalError)
	}
}

// traceKey carries a session's trace in its TLS handshake context, to
// the certificate hook.
type traceKey struct{}

// TraceOf is the trace of the session whose TLS handshake ctx belongs
// to; nil when it is not traced.
func TraceOf(ctx context.Context) *telemetry.Trace {
	tr, _ := ctx.Value(traceKey{}).(*telemetry.Trace)
	return tr
}

// terminated goes on from a downstream handshake made with the first-pass
// route's certificate, client certificate and ALPN settings: it routes
// again on the decrypted connection, with the handshake's SNI and the
// listener's own port (port_maps is not applied in this second pass, as
// in Kong), and proxies it.
func (s *Session) terminated(tc *tls.Conn, err error, sp trace.Span) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = context.DeadlineExceeded // worded as when a context bounded it
	}
	if sp != nil {
		handshakeDone(sp, tc, err)
	}
	if err != nil {
		s.e.metrics.HandshakeFailed(false)
		s.Log(errlog.LevelInfo, "SSL handshake failed: "+err.Error())
		s.end(StatusBadRequest)
		return
	}
	st := tc.ConnectionState()
	s.rec.SNI = st.ServerName
	s.rec.TLS = &st
	ci := router.ConnInfo{Protocol: "tcp", Src: s.client, Dst: s.local, SNI: st.ServerName}
	if st.ServerName != "" {
		ci.Protocol = "tls"
	}
	if !s.match(ci) {
		return
	}
	s.stream, s.first = tc, nil
	s.proxy()
}

// handshakeDone ends a handshake's span with the TLS attributes of the
// OpenTelemetry conventions, or the error.
func handshakeDone(sp trace.Span, tc *tls.Conn, err error) {
	if err != nil {
		telemetry.Fail(sp, err)
		sp.SetAttributes(semconv.TLSEstablishedKey.Bool(false))
	} else {
		st := tc.ConnectionState()
		version, _ := strings.CutPrefix(tls.VersionName(st.Version), "TLS ")
		sp.SetAttributes(semconv.TLSEstablishedKey.Bool(true),
			semconv.TLSProtocolNameKey.String("tls"), semconv.TLSProtocolVersionKey.String(version),
			semconv.TLSCipherKey.String(tls.CipherSuiteName(st.CipherSuite)),
			semconv.TLSResumedKey.Bool(st.DidResume))
		if st.NegotiatedProtocol != "" {
			sp.SetAttributes(semconv.TLSNextProtocolKey.String(st.NegotiatedProtocol))
		}
		if st.ServerName != "" {
			sp.SetAttributes(attribute.String("tls.client.server_name", st.ServerName))
		}
	}
	sp.End()
}

// routeServerTLS is the termination config of a route: the manager's own,
// or one requiring client certificates (client_ca_certificates,
// client_verify_depth) and offering ALPN (alpn_protocols), gong's
// extensions to Kong's route.
func routeServerTLS(m *tlsmgr.Manager, d *declarative.Config, r *declarative.Route) (*tls.Config, error) {
	rt := tlsmgr.RouteTLS{VerifyDepth: 1, NextProtos: r.ALPNProtocols}
	if r.ClientVerifyDepth != nil {
		rt.VerifyDepth = *r.ClientVerifyDepth
	}
	if len(r.ClientCACertificates) > 0 {
		pool, err := caPool(d, r.ClientCACertificates)
		if err != nil {
			return nil, fmt.Errorf("route %s: client_ca_certificates: %w", nameOr(r.Name, r.ID), err)
		}
		rt.ClientCAs = pool
	}
	return m.ServerConfigFor(rt), nil
}
