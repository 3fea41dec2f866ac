package pdk

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// chainServer serves TLS with a leaf for example.test issued by an
// intermediate under a root, and returns its address and the root.
func chainServer(t *testing.T, maxVersion uint16) (string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(serial int64, cn string, isCA bool, parent *x509.Certificate) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: isCA, BasicConstraintsValid: true}
		if isCA {
			tmpl.KeyUsage = x509.KeyUsageCertSign
		} else {
			tmpl.DNSNames = []string{cn}
		}
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	root := mk(1, "root", true, nil)
	inter := mk(2, "intermediate", true, root)
	leaf := mk(3, "example.test", false, inter)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{MaxVersion: maxVersion,
		Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw, inter.Raw}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
				c.Write([]byte("hello\n"))
			}()
		}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(root)
	return ln.Addr().String(), roots
}

// TestCosocketLuaSSLSettings: lua_ssl_verify_depth and lua_ssl_protocols
// apply to tcpsock:sslhandshake.
func TestCosocketLuaSSLSettings(t *testing.T) {
	addr, roots := chainServer(t, tls.VersionTLS12)
	host, port, _ := net.SplitHostPort(addr)
	code := fmt.Sprintf(`
		local sock = ngx.socket.tcp()
		sock:settimeout(5000)
		assert(sock:connect(%q, %s))
		local sess, err = sock:sslhandshake(nil, "example.test", true)
		if not sess then return err end
		return assert(sock:receive())`, host, port)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"depth 1 allows the intermediate", Options{TrustedCAs: roots, SSLVerifyDepth: 1}, "hello"},
		{"depth 0 refuses it", Options{TrustedCAs: roots}, "certificate verify failed: certificate chain too long (verify depth 0)"},
		{"TLSv1.3 only meets a TLSv1.2 server", Options{TrustedCAs: roots, SSLVerifyDepth: 1, SSLProtocols: []string{"TLSv1.3"}}, "handshake failed: "},
		{"TLSv1.2 and TLSv1.3", Options{TrustedCAs: roots, SSLVerifyDepth: 1, SSLProtocols: []string{"TLSv1.2", "TLSv1.3"}}, "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, PhasePreread, tt.opts)
			if got := runString(t, e.vm, code); !strings.HasPrefix(got, tt.want) {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}

// TestCosocketPoolSize: setkeepalive without a size keeps
// lua_socket_pool_size idle connections per pool, Kong's 256 by default.
func TestCosocketPoolSize(t *testing.T) {
	addr, _ := serveTCP(t, echoLines)
	host, port, _ := net.SplitHostPort(addr)
	code := fmt.Sprintf(`
		local socks = {}
		for i = 1, 3 do
			socks[i] = ngx.socket.tcp()
			assert(socks[i]:connect(%q, %s))
		end
		for i = 1, 3 do assert(socks[i]:setkeepalive()) end`, host, port)
	for _, tt := range []struct{ size, want int }{{2, 2}, {0, 3}} {
		sockets := NewSocketPool()
		t.Cleanup(sockets.Close)
		e := newEnv(t, PhasePreread, Options{Sockets: sockets, SocketPoolSize: tt.size})
		runString(t, e.vm, code)
		if n := sockets.Idle(addr); n != tt.want {
			t.Errorf("lua_socket_pool_size %d: %d idle connections; want %d", tt.size, n, tt.want)
		}
	}
}
