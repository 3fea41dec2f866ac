package tlsmgr

import (
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"strings"
	"testing"
	"time"
)

// clientPKI is a client CA (root and intermediate) and client pairs: one
// under the root, one under the intermediate (sent with it), and one
// under an unrelated root.
type clientPKI struct {
	cas                    *x509.CertPool
	direct, deep, stranger tls.Certificate
}

func newClientPKI(t *testing.T) clientPKI {
	t.Helper()
	key := testKey(t, "ecdsa")
	root, rootPEM, _ := issue(t, "Client Root", "ecdsa", true, nil, nil)
	inter, interPEM, _ := issue(t, "Client Intermediate", "ecdsa", true, root, key)
	other, _, _ := issue(t, "Other Root", "ecdsa", true, nil, nil)
	_, directPEM, keyPEM := issue(t, "gong client", "ecdsa", false, root, key)
	_, deepPEM, _ := issue(t, "deep client", "ecdsa", false, inter, key)
	_, strangerPEM, _ := issue(t, "stranger", "ecdsa", false, other, key)
	pair := func(certPEM []byte) tls.Certificate {
		t.Helper()
		c, err := keyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cas, err := PoolFromPEM(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	return clientPKI{
		cas:      cas,
		direct:   pair(directPEM),
		deep:     pair(append(append([]byte(nil), deepPEM...), interPEM...)),
		stranger: pair(strangerPEM),
	}
}

type handshakeResult struct {
	server    tls.ConnectionState // server side, after a successful handshake
	resumed   bool                // as the client saw it
	serverErr error
	clientErr error
}

// handshakePair runs one handshake over loopback TCP. The server writes a
// byte that the client reads, so TLS 1.3 tickets are processed and a
// client certificate refused after the client's side of the handshake
// shows up on both sides.
func handshakePair(t *testing.T, srv, cli *tls.Config) handshakeResult {
	t.Helper()
	c, s := tcpPair(t)
	deadline := time.Now().Add(10 * time.Second)
	c.SetDeadline(deadline)
	s.SetDeadline(deadline)
	done := make(chan handshakeResult, 1)
	go func() {
		var r handshakeResult
		tc := tls.Server(s, srv)
		if r.serverErr = tc.Handshake(); r.serverErr == nil {
			r.server = tc.ConnectionState()
			_, r.serverErr = tc.Write([]byte{'!'})
		}
		s.Close()
		done <- r
	}()
	cli.InsecureSkipVerify = true
	tc := tls.Client(c, cli)
	var b [1]byte
	_, clientErr := io.ReadFull(tc, b[:])
	resumed := tc.ConnectionState().DidResume
	c.Close()
	r := <-done
	r.clientErr, r.resumed = clientErr, resumed
	return r
}

// sendCert makes cli present cert (when non-nil) whatever CAs the server
// names; crypto/tls would otherwise send nothing for a foreign CA.
func sendCert(cli *tls.Config, cert *tls.Certificate) *tls.Config {
	if cert != nil {
		cli.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
	}
	return cli
}

func routeManager(t *testing.T, opts Options) *Manager {
	t.Helper()
	opts.Default = []Cert{selfSigned(t, "d", "default", "ecdsa")}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var versions = []uint16{tls.VersionTLS12, tls.VersionTLS13}

func TestServerConfigForClientCerts(t *testing.T) {
	pki := newClientPKI(t)
	m := routeManager(t, Options{})
	tests := []struct {
		name    string
		depth   int
		cert    *tls.Certificate // nil sends none
		wantErr string           // on the server; "" for success
	}{
		{"certificate from the CA", 1, &pki.direct, ""},
		{"no certificate", 1, nil, "didn't provide a certificate"},
		{"certificate from another CA", 1, &pki.stranger, "unknown authority"},
		{"one intermediate at depth 1", 1, &pki.deep, ""},
		{"one intermediate at depth 0", 0, &pki.deep, "chain too long (verify depth 0)"},
		{"direct certificate at depth 0", 0, &pki.direct, ""},
		{"no depth limit", -1, &pki.deep, ""},
	}
	for _, v := range versions {
		for _, tt := range tests {
			t.Run(tls.VersionName(v)+"/"+tt.name, func(t *testing.T) {
				cfg := m.ServerConfigFor(RouteTLS{ClientCAs: pki.cas, VerifyDepth: tt.depth})
				cli := &tls.Config{MinVersion: v, MaxVersion: v}
				r := handshakePair(t, cfg, sendCert(cli, tt.cert))
				if tt.wantErr == "" {
					if r.serverErr != nil || r.clientErr != nil {
						t.Fatalf("handshake: server %v, client %v", r.serverErr, r.clientErr)
					}
					return
				}
				if r.serverErr == nil || !strings.Contains(r.serverErr.Error(), tt.wantErr) {
					t.Errorf("server error = %v; want %q", r.serverErr, tt.wantErr)
				}
				if r.clientErr == nil {
					t.Error("client error = nil; want the server's alert")
				}
			})
		}
	}
}

func TestClientIdentityHandshake(t *testing.T) {
	pki := newClientPKI(t)
	m := routeManager(t, Options{})
	r := handshakePair(t, m.ServerConfigFor(RouteTLS{ClientCAs: pki.cas, VerifyDepth: 1}),
		sendCert(&tls.Config{}, &pki.direct))
	if r.serverErr != nil {
		t.Fatal(r.serverErr)
	}
	leaf := pki.direct.Leaf
	sum := sha1.Sum(leaf.Raw)
	want := ClientIdentity{
		Verify:    "SUCCESS",
		SubjectDN: "CN=gong client",
		IssuerDN:  "CN=Client Root",
		// Test serials are between 256 and 65535: two bytes.
		Serial:      fmt.Sprintf("%04X", leaf.SerialNumber),
		Fingerprint: hex.EncodeToString(sum[:]),
	}
	if got := ClientIdentityOf(r.server); got != want {
		t.Errorf("ClientIdentityOf() = %+v; want %+v", got, want)
	}

	r = handshakePair(t, m.ServerConfig(), sendCert(&tls.Config{}, &pki.direct))
	if r.serverErr != nil {
		t.Fatal(r.serverErr)
	}
	if got := ClientIdentityOf(r.server); got != (ClientIdentity{Verify: "NONE"}) {
		t.Errorf("ClientIdentityOf() without client auth = %+v; want only Verify NONE", got)
	}
}

func TestClientIdentityFormats(t *testing.T) {
	cert := &x509.Certificate{
		Raw:          []byte("not really DER"),
		Subject:      pkix.Name{CommonName: "x", Organization: []string{"y"}},
		Issuer:       pkix.Name{CommonName: "ca", Country: []string{"DE"}},
		SerialNumber: big.NewInt(0x80),
	}
	sum := sha1.Sum(cert.Raw)
	want := ClientIdentity{
		Verify:      "SUCCESS",
		SubjectDN:   "CN=x,O=y",
		IssuerDN:    "CN=ca,C=DE",
		Serial:      "80",
		Fingerprint: hex.EncodeToString(sum[:]),
	}
	cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}}
	if got := ClientIdentityOf(cs); got != want {
		t.Errorf("ClientIdentityOf(verified) = %+v; want %+v", got, want)
	}
	cs.VerifiedChains = nil
	if got := ClientIdentityOf(cs).Verify; got != "FAILED:certificate not verified" {
		t.Errorf("ClientIdentityOf(unverified).Verify = %q; want FAILED:certificate not verified", got)
	}

	serials := []struct {
		n    int64
		want string
	}{
		{0, "00"}, {1, "01"}, {0x80, "80"}, {0x123, "0123"}, {0xABCDEF, "ABCDEF"}, {-1, "-01"},
	}
	for _, tt := range serials {
		if got := serialHex(big.NewInt(tt.n)); got != tt.want {
			t.Errorf("serialHex(%#x) = %q; want %q", tt.n, got, tt.want)
		}
	}
}

func TestServerConfigForALPN(t *testing.T) {
	pki := newClientPKI(t)
	m := routeManager(t, Options{})
	h2 := m.ServerConfigFor(RouteTLS{NextProtos: []string{"h2", "http/1.1"}})
	tests := []struct {
		name    string
		srv     *tls.Config
		offer   []string
		cert    *tls.Certificate
		want    string
		wantErr bool
	}{
		{"h2 chosen", h2, []string{"http/1.1", "h2"}, nil, "h2", false},
		{"http/1.1 chosen", h2, []string{"http/1.1"}, nil, "http/1.1", false},
		{"client without ALPN", h2, nil, nil, "", false},
		{"no shared protocol", h2, []string{"spdy/3"}, nil, "", true},
		{"no ALPN on ServerConfig", m.ServerConfig(), []string{"h2"}, nil, "", false},
		{"client CAs alone add no ALPN", m.ServerConfigFor(RouteTLS{ClientCAs: pki.cas, VerifyDepth: 1}), []string{"h2"}, &pki.direct, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := &tls.Config{NextProtos: tt.offer}
			r := handshakePair(t, tt.srv, sendCert(cli, tt.cert))
			if tt.wantErr {
				if r.serverErr == nil {
					t.Error("handshake succeeded; want no_application_protocol")
				}
				return
			}
			if r.serverErr != nil {
				t.Fatalf("handshake: %v", r.serverErr)
			}
			if got := r.server.NegotiatedProtocol; got != tt.want {
				t.Errorf("NegotiatedProtocol = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestServerConfigForSelection(t *testing.T) {
	opts := kongSNIs(t, true)
	hooked := selfSigned(t, "h", "hooked", "ecdsa")
	hookPair, err := keyPair(hooked.CertPEM, hooked.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	opts.Hook = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if hello.ServerName == "hook.test" {
			return &hookPair, nil
		}
		return nil, nil
	}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if m.ServerConfigFor(RouteTLS{}) != m.ServerConfig() {
		t.Error("ServerConfigFor(RouteTLS{}) is not ServerConfig()")
	}
	addr := serveTLS(t, m.ServerConfigFor(RouteTLS{NextProtos: []string{"h2"}}))
	for sni, want := range map[string]string{
		"exact.test":        "sni exact.test",
		"test.wildcard.com": "sni *.wildcard.com",
		"wildcard.eu":       "sni wildcard.*",
		"unknown.test":      "sni *",
		"":                  "default",
		"hook.test":         "hooked",
	} {
		if got := servedCN(t, addr, sni, nil); got != want {
			t.Errorf("served for SNI %q = %q; want %q", sni, got, want)
		}
	}
}

func TestServerConfigForSessions(t *testing.T) {
	pki := newClientPKI(t)
	for _, timeout := range []time.Duration{0, time.Hour} {
		for _, v := range versions {
			t.Run(fmt.Sprintf("%s/timeout %v", tls.VersionName(v), timeout), func(t *testing.T) {
				m := routeManager(t, Options{SessionTickets: true, SessionTimeout: timeout})
				alpn := m.ServerConfigFor(RouteTLS{NextProtos: []string{"h2"}})
				depth1 := m.ServerConfigFor(RouteTLS{ClientCAs: pki.cas, VerifyDepth: 1})
				depth0 := m.ServerConfigFor(RouteTLS{ClientCAs: pki.cas, VerifyDepth: 0})
				cache := tls.NewLRUClientSessionCache(4)
				run := func(srv *tls.Config, cert *tls.Certificate) handshakeResult {
					t.Helper()
					cli := &tls.Config{ServerName: "resume.test", MinVersion: v, MaxVersion: v, ClientSessionCache: cache}
					return handshakePair(t, srv, sendCert(cli, cert))
				}
				steps := []struct {
					name        string
					srv         *tls.Config
					cert        *tls.Certificate
					wantResumed bool
					wantErr     string
				}{
					{"first on ServerConfig", m.ServerConfig(), nil, false, ""},
					{"another route resumes it", alpn, nil, true, ""},
					{"a route needing a client certificate does not", depth1, &pki.deep, false, ""},
					{"the same route resumes", depth1, &pki.deep, true, ""},
					{"a shorter depth still refuses it", depth0, &pki.deep, false, "chain too long"},
				}
				for _, s := range steps {
					r := run(s.srv, s.cert)
					if s.wantErr != "" {
						if r.serverErr == nil || !strings.Contains(r.serverErr.Error(), s.wantErr) {
							t.Errorf("%s: server error = %v; want %q", s.name, r.serverErr, s.wantErr)
						}
						continue
					}
					if r.serverErr != nil || r.clientErr != nil {
						t.Fatalf("%s: server %v, client %v", s.name, r.serverErr, r.clientErr)
					}
					if r.resumed != s.wantResumed {
						t.Errorf("%s: resumed = %v; want %v", s.name, r.resumed, s.wantResumed)
					}
				}
			})
		}
	}
}

// A resumed session carries the chains verified when it was issued, maybe
// by another route; the depth must be counted on this route's own chains.
func TestCheckClientChainResumed(t *testing.T) {
	pki := newClientPKI(t)
	peer := make([]*x509.Certificate, len(pki.deep.Certificate))
	for i, der := range pki.deep.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		peer[i] = c
	}
	short := [][]*x509.Certificate{{peer[0], peer[1]}} // as if peer[1] were a trust anchor
	check := checkClientChain(pki.cas, 0)
	if err := check(tls.ConnectionState{PeerCertificates: peer, VerifiedChains: short}); err != nil {
		t.Errorf("full handshake with a short verified chain: %v", err)
	}
	err := check(tls.ConnectionState{DidResume: true, PeerCertificates: peer, VerifiedChains: short})
	if err == nil || !strings.Contains(err.Error(), "chain too long") {
		t.Errorf("resumed with a foreign short chain: error = %v; want chain too long", err)
	}
	if err := checkClientChain(pki.cas, 1)(tls.ConnectionState{DidResume: true, PeerCertificates: peer, VerifiedChains: short}); err != nil {
		t.Errorf("resumed within depth: %v", err)
	}
}
