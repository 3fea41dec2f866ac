package tlsmgr

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// upstreamPKI is a root, an intermediate, a leaf for up.test under the
// intermediate, a leaf for direct.test under the root and a client
// certificate under the root.
type upstreamPKI struct {
	rootPEM               []byte
	chain, direct, client tls.Certificate
}

func newUpstreamPKI(t *testing.T) upstreamPKI {
	t.Helper()
	root, rootPEM, _ := issue(t, "Test Root", "ecdsa", true, nil, nil)
	inter, interPEM, _ := issue(t, "Test Intermediate", "ecdsa", true, root, testKey(t, "ecdsa"))
	_, leafPEM, keyPEM := issue(t, "up.test", "ecdsa", false, inter, testKey(t, "ecdsa"))
	_, directPEM, _ := issue(t, "direct.test", "ecdsa", false, root, testKey(t, "ecdsa"))
	_, clientPEM, _ := issue(t, "gong client", "ecdsa", false, root, testKey(t, "ecdsa"))
	pair := func(certPEM []byte) tls.Certificate {
		t.Helper()
		c, err := keyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return upstreamPKI{
		rootPEM: rootPEM,
		chain:   pair(append(append([]byte(nil), leafPEM...), interPEM...)),
		direct:  pair(directPEM),
		client:  pair(clientPEM),
	}
}

func TestUpstreamConfig(t *testing.T) {
	pki := newUpstreamPKI(t)
	roots, err := PoolFromPEM(pki.rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	chainAddr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{pki.chain}})
	directAddr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{pki.direct}})
	tests := []struct {
		name    string
		addr    string
		opts    UpstreamOptions
		wantErr string // "" for success
	}{
		{"verify off accepts anything", chainAddr, UpstreamOptions{ServerName: "other.test"}, ""},
		{"verify with CA, depth 1", chainAddr, UpstreamOptions{ServerName: "up.test", Verify: true, VerifyDepth: 1, RootCAs: roots}, ""},
		{"verify, depth 0 refuses an intermediate", chainAddr, UpstreamOptions{ServerName: "up.test", Verify: true, VerifyDepth: 0, RootCAs: roots}, "chain too long"},
		{"verify, no depth limit", chainAddr, UpstreamOptions{ServerName: "up.test", Verify: true, VerifyDepth: -1, RootCAs: roots}, ""},
		{"verify, depth 0 direct leaf", directAddr, UpstreamOptions{ServerName: "direct.test", Verify: true, VerifyDepth: 0, RootCAs: roots}, ""},
		{"verify, wrong name", chainAddr, UpstreamOptions{ServerName: "other.test", Verify: true, VerifyDepth: 1, RootCAs: roots}, "not other.test"},
		{"verify, no SNI checks the chain only", chainAddr, UpstreamOptions{Verify: true, VerifyDepth: 1, RootCAs: roots}, ""},
		{"verify, no SNI, IP host not in the IP SANs", chainAddr, UpstreamOptions{Host: "127.0.0.1", Verify: true, VerifyDepth: 1, RootCAs: roots}, "certificate for 127.0.0.1 because it doesn't contain any IP SANs"},
		{"verify, an SNI is checked instead of the IP host", chainAddr, UpstreamOptions{ServerName: "up.test", Host: "127.0.0.1", Verify: true, VerifyDepth: 1, RootCAs: roots}, ""},
		{"verify without a trust store", chainAddr, UpstreamOptions{ServerName: "up.test", Verify: true, VerifyDepth: 1}, "unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := handshake(t, tt.addr, UpstreamConfig(tt.opts))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("handshake: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("handshake error = %v; want %q", err, tt.wantErr)
			}
		})
	}
}

func TestUpstreamSNISent(t *testing.T) {
	pki := newUpstreamPKI(t)
	got := make(chan string, 2)
	addr := serveTLS(t, &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		got <- h.ServerName
		return &pki.chain, nil
	}})
	for _, name := range []string{"up.test", ""} {
		if _, err := handshake(t, addr, UpstreamConfig(UpstreamOptions{ServerName: name})); err != nil {
			t.Fatal(err)
		}
		if sni := <-got; sni != name {
			t.Errorf("upstream saw SNI %q; want %q", sni, name)
		}
	}
}

func TestUpstreamClientCert(t *testing.T) {
	pki := newUpstreamPKI(t)
	roots, err := PoolFromPEM(pki.rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, &tls.Config{
		Certificates: []tls.Certificate{pki.chain},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    roots,
	})
	if _, err := handshake(t, addr, UpstreamConfig(UpstreamOptions{ServerName: "up.test", ClientCert: &pki.client})); err != nil {
		t.Errorf("handshake with a client certificate: %v", err)
	}
	if _, err := handshake(t, addr, UpstreamConfig(UpstreamOptions{ServerName: "up.test"})); err == nil {
		t.Error("handshake without a client certificate succeeded")
	}
}

func TestUpstreamSNI(t *testing.T) {
	tests := []struct {
		name                          string
		preserve                      bool
		clientSNI, hostHeader, target string
		want                          string
	}{
		{"preserve_host uses the client SNI", true, "client.test", "hh.test", "t.test", "client.test"},
		{"preserve_host without SNI falls back", true, "", "hh.test", "t.test", "hh.test"},
		{"host_header", false, "client.test", "hh.test", "t.test", "hh.test"},
		{"target name", false, "client.test", "", "t.test", "t.test"},
		{"port stripped", false, "", "hh.test:8443", "t.test", "hh.test"},
		{"target IPv4", false, "", "", "10.0.0.1", ""},
		{"target IPv6", false, "", "", "::1", ""},
		{"host_header IPv6 with port", false, "", "[::1]:443", "t.test", ""},
		{"host_header IPv4 with port", false, "", "10.0.0.1:443", "t.test", ""},
		{"nothing", false, "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UpstreamSNI(tt.preserve, tt.clientSNI, tt.hostHeader, tt.target); got != tt.want {
				t.Errorf("UpstreamSNI(%v, %q, %q, %q) = %q; want %q", tt.preserve, tt.clientSNI, tt.hostHeader, tt.target, got, tt.want)
			}
		})
	}
}

func TestPoolFromPEM(t *testing.T) {
	pki := newUpstreamPKI(t)
	if _, err := PoolFromPEM(pki.rootPEM, bytes.Join([][]byte{pki.rootPEM, pki.rootPEM}, nil)); err != nil {
		t.Errorf("PoolFromPEM(valid) = %v", err)
	}
	bad := []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	tests := []struct {
		name string
		in   [][]byte
		want string
	}{
		{"no certificate", [][]byte{pki.rootPEM, []byte("nope")}, "ca certificate 1: no PEM certificate found"},
		{"bad DER", [][]byte{bad}, "ca certificate 0: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := PoolFromPEM(tt.in...)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("PoolFromPEM() error = %v; want prefix %q", err, tt.want)
			}
		})
	}
}

// leafWithNames issues a leaf under parent (whose key is the test's
// ECDSA key) with the given Common Name and SANs, none when both are
// empty.
func leafWithNames(t *testing.T, parent *x509.Certificate, cn string, dns []string, ips []net.IP) tls.Certificate {
	t.Helper()
	key := testKey(t, "ecdsa")
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: dns, IPAddresses: ips,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	c, _, _ := sign(t, tmpl, key, parent, key)
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: key}
}

// TestUpstreamCommonNameFallback: tls_verify accepts a name found only in
// the Common Name when the certificate has no DNS or IP SANs, and never
// otherwise.
func TestUpstreamCommonNameFallback(t *testing.T) {
	root, rootPEM, _ := issue(t, "CN Root", "ecdsa", true, nil, nil)
	roots, err := PoolFromPEM(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	cnOnly := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{leafWithNames(t, root, "example.com", nil, nil)}})
	wildcardCN := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{leafWithNames(t, root, "*.example.com", nil, nil)}})
	withDNS := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{leafWithNames(t, root, "example.com", []string{"other.example"}, nil)}})
	withIP := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{leafWithNames(t, root, "example.com", nil, []net.IP{net.IPv4(127, 0, 0, 1)})}})
	tests := []struct {
		name, addr, serverName, wantErr string
	}{
		{"CN only, matching", cnOnly, "example.com", ""},
		{"CN only, other name", cnOnly, "foo.example.com", `Common Name "example.com" does not match foo.example.com`},
		{"wildcard CN", wildcardCN, "foo.example.com", ""},
		{"wildcard CN, two labels", wildcardCN, "a.foo.example.com", "does not match"},
		{"DNS SAN present, CN ignored", withDNS, "example.com", "not example.com"},
		{"DNS SAN present, SAN matches", withDNS, "other.example", ""},
		{"IP SAN present, CN ignored", withIP, "example.com", "example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := UpstreamOptions{ServerName: tt.serverName, Verify: true, VerifyDepth: 1, RootCAs: roots}
			_, err := handshake(t, tt.addr, UpstreamConfig(opts))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("handshake: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("handshake error = %v; want %q", err, tt.wantErr)
			}
		})
	}
}
