package tlsmgr

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// Keys are generated once and shared by the test certificates: RSA 2048
// generation is slow under -race.
var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
)

func testKey(t *testing.T, kind string) crypto.Signer {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	if kind == "ecdsa" {
		return ecKey
	}
	return rsaKey
}

var serial int64 = 1000

// issue creates a certificate for cn signed by parent (self-signed when
// parent is nil) and returns it with its PEM pair.
func issue(t *testing.T, cn, kind string, isCA bool, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, []byte, []byte) {
	t.Helper()
	key := testKey(t, kind)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.DNSNames = []string{cn}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	return sign(t, tmpl, key, parent, parentKey)
}

// sign creates the certificate of tmpl for key, signed by parent
// (self-signed when parent is nil), and returns it with its PEM pair.
func sign(t *testing.T, tmpl *x509.Certificate, key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, []byte, []byte) {
	t.Helper()
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return cert,
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// selfSigned returns a Cert entity with a self-signed leaf for cn.
func selfSigned(t *testing.T, id, cn, kind string) Cert {
	t.Helper()
	_, c, k := issue(t, cn, kind, false, nil, nil)
	return Cert{ID: id, CertPEM: c, KeyPEM: k}
}

// dual returns a Cert entity with an RSA primary and an ECDSA alternate.
func dual(t *testing.T, id, cn string) Cert {
	t.Helper()
	c := selfSigned(t, id, cn+" rsa", "rsa")
	alt := selfSigned(t, id, cn+" ecdsa", "ecdsa")
	c.AltCertPEM, c.AltKeyPEM = alt.CertPEM, alt.KeyPEM
	return c
}

// serveTLS accepts TLS connections with cfg on loopback; each connection
// completes the handshake, writes one byte (so TLS 1.3 clients process
// session tickets) and closes.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	return serveHandshakes(t, func(_ int, conn net.Conn) *tls.Conn {
		tc := tls.Server(conn, cfg)
		if tc.Handshake() != nil {
			return nil
		}
		return tc
	})
}

// serveHandshakes accepts connections on loopback; handshake completes
// the nth one's handshake (nil when it failed), which then gets one byte
// and is read until the client closes.
func serveHandshakes(t *testing.T, handshake func(n int, conn net.Conn) *tls.Conn) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for n := 0; ; n++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				if tc := handshake(n, conn); tc != nil {
					tc.Write([]byte{'!'})
					io.Copy(io.Discard, tc)
				}
			})
		}
	})
	return ln.Addr().String()
}

// handshake dials addr with cfg (server verification off unless cfg says
// otherwise), reads the server's byte and returns the connection state.
func handshake(t *testing.T, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.RootCAs == nil && cfg.VerifyPeerCertificate == nil {
		cfg.InsecureSkipVerify = true
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return tls.ConnectionState{}, err
	}
	return conn.ConnectionState(), nil
}

// servedCN returns the CommonName of the leaf served for serverName.
func servedCN(t *testing.T, addr, serverName string, cfg *tls.Config) string {
	t.Helper()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.ServerName = serverName
	st, err := handshake(t, addr, cfg)
	if err != nil {
		t.Fatalf("handshake with SNI %q: %v", serverName, err)
	}
	return st.PeerCertificates[0].Subject.CommonName
}

var errTestHook = errors.New("hook refused")
