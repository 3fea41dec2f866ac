package spec

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startTLSEcho runs a TLS line-echo server with cert; when clientCAs is
// set it requires a client certificate. Each handshake's SNI is sent on
// the returned channel.
func startTLSEcho(t *testing.T, name string, cert testCert, clientCAs *x509.CertPool) (string, <-chan string) {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{cert.tls(t)}}
	if clientCAs != nil {
		cfg.ClientCAs, cfg.ClientAuth = clientCAs, tls.RequireAndVerifyClientCert
	}
	snis := make(chan string, 100)
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		select {
		case snis <- h.ServerName:
		default:
		}
		return nil, nil
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serveEcho(t, ln, name), snis
}

// tlsDial connects with TLS, SNI sni (none if empty), trusting nothing:
// tests look at the certificate themselves.
func tlsDial(t *testing.T, addr, sni string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.ServerName, cfg.InsecureSkipVerify = sni, true
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// tlsEcho connects to tlsConfig's listener on port with SNI exact.test
// and fails the test unless the echo behind it answers "x".
func tlsEcho(t *testing.T, port int) *tls.Conn {
	t.Helper()
	c, err := tlsDial(t, fmt.Sprintf("127.0.0.1:%d", port), "exact.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := exchange(c, "x"); err != nil || got != "plain: x" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	return c
}

func servedCN(c *tls.Conn) string {
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// tlsConfig is the kong.yml of the termination tests: two certificates
// by SNI, tls routes by SNI to the echo, and a tls route by port for
// clients without SNI.
func tlsConfig(t *testing.T, echo string, port int) (string, testCert, testCert) {
	exact := newLeaf(t, "exact.test", []string{"exact.test"}, nil, false)
	wild := newLeaf(t, "wildcard", []string{"*.wild.test"}, nil, true)
	h, p := hostPort(echo)
	return fmt.Sprintf(`_format_version: "3.0"
certificates:
  - cert: %s    key: %s    snis: [{name: exact.test}]
  - cert: %s    key: %s    snis: [{name: "*.wild.test"}]
services:
  - name: echo
    url: tcp://%s:%s
    routes:
      - name: by-sni
        protocols: [tls]
        snis: [exact.test, "*.wild.test"]
      - name: no-sni
        protocols: [tls]
        destinations: [{port: %d}]
`, yamlBlock(exact.certPEM, 6), yamlBlock(exact.keyPEM, 6), yamlBlock(wild.certPEM, 6), yamlBlock(wild.keyPEM, 6), h, p, port), exact, wild
}

func TestTLSTerminationBySNI(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "plain")
	p := listenPort(t)
	yml, _, _ := tlsConfig(t, echo, p)
	def := newLeaf(t, "default.test", []string{"default.test"}, nil, false)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "d.crt"), def.certPEM)
	writeFile(t, filepath.Join(dir, "d.key"), def.keyPEM)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\nssl_cert = %s/d.crt\nssl_cert_key = %s/d.key\n", p, dir, dir), yml)
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	tests := []struct {
		sni, cn string
		version uint16
	}{
		{"exact.test", "exact.test", tls.VersionTLS13},
		{"a.wild.test", "wildcard", tls.VersionTLS13},
		{"exact.test", "exact.test", tls.VersionTLS12},
		{"", "default.test", tls.VersionTLS13},
		// No SNI entity matches: the default certificate; the route by
		// port matches whatever the SNI.
		{"unknown.test", "default.test", tls.VersionTLS13},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.sni, tls.VersionName(tt.version)), func(t *testing.T) {
			c, err := tlsDial(t, addr, tt.sni, &tls.Config{MaxVersion: tt.version})
			if err != nil {
				t.Fatal(err)
			}
			if got := servedCN(c); got != tt.cn {
				t.Errorf("served certificate CN=%q; want %q", got, tt.cn)
			}
			if v := c.ConnectionState().Version; v != tt.version {
				t.Errorf("TLS version %s; want %s", tls.VersionName(v), tls.VersionName(tt.version))
			}
			if got, err := exchange(c, "hi"); err != nil || got != "plain: hi" {
				t.Errorf("echo through termination: %q, %v", got, err)
			}
		})
	}
}

func TestTLSDefaultCertificateGenerated(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "plain")
	p := listenPort(t)
	yml := "_format_version: \"3.0\"\nservices:\n" + svc("e", echo, "", fmt.Sprintf("      - protocols: [tls]\n        destinations: [{port: %d}]\n", p))
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\n", p), yml)
	c, err := tlsDial(t, fmt.Sprintf("127.0.0.1:%d", p), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cn := servedCN(c); cn != "localhost" {
		t.Errorf("generated default certificate CN=%q; want localhost", cn)
	}
	for _, f := range []string{"kong-default.crt", "kong-default.key", "kong-default-ecdsa.crt", "kong-default-ecdsa.key"} {
		if _, err := os.Stat(filepath.Join(g.dir, "ssl", f)); err != nil {
			t.Errorf("default certificate file: %v", err)
		}
	}
	if got, err := exchange(c, "x"); err != nil || got != "plain: x" {
		t.Errorf("echo: %q, %v", got, err)
	}
}

func TestTLSProtocolFloor(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "plain")
	p := listenPort(t)
	yml, _, _ := tlsConfig(t, echo, p)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\nssl_cipher_suite = modern\n", p), yml)
	if _, err := tlsDial(t, fmt.Sprintf("127.0.0.1:%d", p), "exact.test", &tls.Config{MaxVersion: tls.VersionTLS12}); err == nil {
		t.Error("a TLS 1.2 client was accepted with ssl_cipher_suite = modern (TLS 1.3 only)")
	}
	c, err := tlsDial(t, fmt.Sprintf("127.0.0.1:%d", p), "exact.test", nil)
	if err != nil {
		t.Fatalf("TLS 1.3 client: %v", err)
	}
	if got, err := exchange(c, "x"); err != nil || got != "plain: x" {
		t.Errorf("echo: %q, %v", got, err)
	}
}

func TestTLSTerminationWithOpenSSL(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed (CI installs it)")
	}
	echo := startEcho(t, "plain")
	p := listenPort(t)
	yml, _, _ := tlsConfig(t, echo, p)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\n", p), yml)
	cmd := exec.Command("openssl", "s_client", "-connect", fmt.Sprintf("127.0.0.1:%d", p), "-servername", "b.wild.test", "-quiet")
	cmd.Stdin = strings.NewReader("from openssl\n")
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	// s_client keeps the connection open after its input ends; the test
	// reads the echo, then ends it.
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
	}()
	select {
	case got := <-line:
		if got != "plain: from openssl\n" {
			t.Errorf("openssl s_client read %q; want the echo", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no echo through openssl s_client")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !strings.Contains(stderr.String(), "CN = wildcard") {
		t.Errorf("openssl did not see the *.wild.test certificate:\n%s", stderr.String())
	}
}

func TestTLSPassthrough(t *testing.T) {
	t.Parallel()
	upCert := newLeaf(t, "upstream.test", []string{"pt.test"}, nil, false)
	up, snis := startTLSEcho(t, "tls-upstream", upCert, nil)
	p := listenPort(t)
	h, port := hostPort(up)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: pt
    url: tcp://%s:%s
    routes:
      - protocols: [tls_passthrough]
        snis: [pt.test]
`, h, port)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\n", p), yml)
	c, err := tlsDial(t, fmt.Sprintf("127.0.0.1:%d", p), "pt.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cn := servedCN(c); cn != "upstream.test" {
		t.Errorf("passthrough served CN=%q; want the upstream's own certificate (upstream.test)", cn)
	}
	if sni := <-snis; sni != "pt.test" {
		t.Errorf("upstream saw SNI %q; want pt.test", sni)
	}
	if got, err := exchange(c, "x"); err != nil || got != "tls-upstream: x" {
		t.Errorf("echo through passthrough: %q, %v", got, err)
	}
}

func TestTLSUnexpectedProtocol(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "plain")
	p := listenPort(t)
	yml := echoYML("e", echo, p)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\n", p), yml)
	if c, err := tlsDial(t, fmt.Sprintf("127.0.0.1:%d", p), "x.test", nil); err == nil {
		if _, err := exchange(c, "x"); err == nil {
			t.Fatal("a tcp route served a TLS connection")
		}
	}
	if !strings.Contains(g.errLog.String(), "unexpected protocols in matched Route") {
		t.Errorf("error log lacks 'unexpected protocols in matched Route':\n%s", g.errLog)
	}
}

func TestTLSBadInput(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "plain")
	p := listenPort(t)
	yml, _, _ := tlsConfig(t, echo, p)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\nnginx_sproxy_preread_timeout = 300ms\n", p), yml)
	addr := fmt.Sprintf("127.0.0.1:%d", p)

	plain := dial(t, addr) // plain bytes: no SNI, routed by port to a tls route, handshake fails
	io.WriteString(plain, "GET / HTTP/1.0\r\n\r\n")
	expectClosed(t, plain)

	silent := dial(t, addr) // no ClientHello within the preread timeout
	expectClosed(t, silent)

	truncated := dial(t, addr) // a handshake record header, then nothing
	truncated.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01})
	expectClosed(t, truncated)

	oversized := dial(t, addr) // a record claiming more than the preread buffer
	oversized.Write(append([]byte{0x16, 0x03, 0x01, 0x40, 0x00}, make([]byte, 17<<10)...))
	expectClosed(t, oversized)

	c, err := tlsDial(t, addr, "exact.test", nil)
	if err != nil {
		t.Fatalf("a good client after bad ones: %v", err)
	}
	if got, err := exchange(c, "ok"); err != nil || got != "plain: ok" {
		t.Errorf("echo after bad input: %q, %v", got, err)
	}
	if !strings.Contains(g.errLog.String(), "failed to read the TLS ClientHello") {
		t.Errorf("no ClientHello failure logged:\n%s", g.errLog)
	}
}

func TestUpstreamTLS(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "test CA")
	upCert := newLeaf(t, "tls-upstream", []string{"backend.test"}, &ca, false)
	clientCA := newCA(t, "client CA")
	clientCert := newLeaf(t, "gong-client", nil, &clientCA, false)
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.cert)
	up, snis := startTLSEcho(t, "tls-upstream", upCert, nil)
	upMTLS, _ := startTLSEcho(t, "mtls-upstream", upCert, pool)
	_, port := hostPort(up)
	_, mport := hostPort(upMTLS)
	hosts := t.TempDir() + "/hosts"
	writeFile(t, hosts, "127.0.0.1 backend.test\n")
	caID := "8ae2b1b1-31b6-4d3c-9b3b-77d9b5d9a001"
	certID := "8ae2b1b1-31b6-4d3c-9b3b-77d9b5d9a002"
	ports := [5]int{listenPort(t), listenPort(t), listenPort(t), listenPort(t), listenPort(t)}
	yml := fmt.Sprintf(`_format_version: "3.0"
ca_certificates:
  - id: %s
    cert: %scertificates:
  - id: %s
    cert: %s    key: %s
upstreams:
  - name: pool
    host_header: backend.test:443
    targets: [{target: "127.0.0.1:%s"}]
services:
  - name: no-verify
    url: tls://127.0.0.1:%s
%s  - name: verify-by-name
    url: tls://backend.test:%s
    tls_verify: true
    ca_certificates: [%s]
%s  - name: verify-without-ca
    url: tls://backend.test:%s
    tls_verify: true
    retries: 0
%s  - name: via-upstream-host-header
    url: tls://pool
    tls_verify: true
    ca_certificates: [%s]
%s  - name: client-cert
    url: tls://backend.test:%s
    client_certificate: %s
%s`, caID, yamlBlock(ca.certPEM, 6), certID, yamlBlock(clientCert.certPEM, 6), yamlBlock(clientCert.keyPEM, 6),
		port, port, tcpRoute(ports[0]), port, caID, tcpRoute(ports[1]), port, tcpRoute(ports[2]), caID, tcpRoute(ports[3]), mport, certID, tcpRoute(ports[4]))
	listen := fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:%d\ndns_hostsfile = %s\n", ports[0], ports[1], ports[2], ports[3], ports[4], hosts)
	g := startGong(t, listen, yml)

	check := func(name string, p int, want, wantSNI string) {
		t.Helper()
		for len(snis) > 0 {
			<-snis
		}
		got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", p), "x")
		if want == "" {
			if err == nil {
				t.Errorf("%s: proxied (%q); want the connection refused", name, got)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
		if wantSNI != "-" {
			select {
			case sni := <-snis:
				if sni != wantSNI {
					t.Errorf("%s: upstream saw SNI %q; want %q", name, sni, wantSNI)
				}
			default:
				t.Errorf("%s: the upstream saw no handshake", name)
			}
		}
	}
	check("tls_verify unset, IP host: no SNI", ports[0], "tls-upstream: x", "")
	check("tls_verify with ca_certificates", ports[1], "tls-upstream: x", "backend.test")
	check("tls_verify with no store trusting the upstream", ports[2], "", "-")
	check("upstream host_header as SNI", ports[3], "tls-upstream: x", "backend.test")
	check("client certificate", ports[4], "mtls-upstream: x", "-")
	if !strings.Contains(g.errLog.String(), "upstream SSL handshake failed") {
		t.Errorf("no upstream handshake failure logged:\n%s", g.errLog)
	}
}

func TestTLSCertificatesChangeOnReload(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "plain")
	p := listenPort(t)
	yml, _, _ := tlsConfig(t, echo, p)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\n", p), yml)
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	old, err := tlsDial(t, addr, "exact.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	oldSerial := old.ConnectionState().PeerCertificates[0].SerialNumber
	newYML, _, _ := tlsConfig(t, echo, p) // fresh certificates
	writeFile(t, g.ymlPath, newYML)
	if err := g.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	c, err := tlsDial(t, addr, "exact.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(oldSerial) == 0 {
		t.Error("a new connection after reload got the old certificate")
	}
	if got, err := exchange(old, "still here"); err != nil || got != "plain: still here" {
		t.Errorf("connection from before the reload: %q, %v", got, err)
	}
}

// TestDownstreamMTLSAndALPN covers gong's route extensions: a tls route
// with client_ca_certificates requires a client certificate from those
// CAs, its identity reaches the access log, and alpn_protocols is offered.
func TestDownstreamMTLSAndALPN(t *testing.T) {
	t.Parallel()
	echo := startEcho(t, "plain")
	p := listenPort(t)
	ca := newCA(t, "clients")
	other := newCA(t, "strangers")
	good := newLeaf(t, "alice", nil, &ca, true)
	bad := newLeaf(t, "mallory", nil, &other, true)
	server := newLeaf(t, "mtls.test", []string{"mtls.test", "alpn.test"}, nil, false)
	h, port := hostPort(echo)
	caID := "5b0a7c8e-3c1d-4a51-9d1e-0c3b9f1a2b01"
	yml := fmt.Sprintf(`_format_version: "3.0"
ca_certificates:
  - id: %s
    cert: %scertificates:
  - cert: %s    key: %s    snis: [{name: mtls.test}, {name: alpn.test}]
services:
  - name: echo
    url: tcp://%s:%s
    routes:
      - name: mtls
        protocols: [tls]
        snis: [mtls.test]
        client_ca_certificates: [%s]
      - name: alpn
        protocols: [tls]
        snis: [alpn.test]
        alpn_protocols: [h2, http/1.1]
`, caID, yamlBlock(ca.certPEM, 6), yamlBlock(server.certPEM, 6), yamlBlock(server.keyPEM, 6), h, port, caID)
	dir := t.TempDir()
	logPath := dir + "/tls.log"
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\nnginx_stream_log_format = tls '$ssl_server_name|$ssl_client_verify|$ssl_client_s_dn|$ssl_alpn_protocol|$ssl_protocol'\nproxy_stream_access_log = %s tls\n", p, logPath), yml)
	addr := fmt.Sprintf("127.0.0.1:%d", p)

	c, err := tlsDial(t, addr, "mtls.test", &tls.Config{Certificates: []tls.Certificate{good.tls(t)}})
	if err != nil {
		t.Fatalf("client with a certificate from the route's CA: %v", err)
	}
	if got, err := exchange(c, "x"); err != nil || got != "plain: x" {
		t.Errorf("echo over mTLS: %q, %v", got, err)
	}
	c.Close()
	for name, cfg := range map[string]*tls.Config{
		"no client certificate":         {},
		"a certificate from another CA": {Certificates: []tls.Certificate{bad.tls(t)}},
	} {
		if c, err := tlsDial(t, addr, "mtls.test", cfg); err == nil {
			// TLS 1.3 reports the client's rejection on the first read.
			if _, err := exchange(c, "x"); err == nil {
				t.Errorf("%s: accepted on an mTLS route", name)
			}
		}
	}

	c, err = tlsDial(t, addr, "alpn.test", &tls.Config{NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	if proto := c.ConnectionState().NegotiatedProtocol; proto != "h2" {
		t.Errorf("ALPN negotiated %q; want h2", proto)
	}
	if got, err := exchange(c, "y"); err != nil || got != "plain: y" {
		t.Errorf("echo over ALPN route: %q, %v", got, err)
	}
	c.Close()

	g.stop()
	data, _ := os.ReadFile(logPath)
	log := string(data)
	for _, want := range []string{"mtls.test|SUCCESS|CN=alice|-|TLSv1.3\n", "alpn.test|NONE|-|h2|TLSv1.3\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %q:\n%s", want, log)
		}
	}
}

// TestUpstreamTLSGlobalStoreAndCurves covers two kong.conf settings:
// lua_ssl_trusted_certificate as the trust store of services with
// tls_verify and no ca_certificates, and nginx_stream_ssl_ecdh_curve.
func TestUpstreamTLSGlobalStoreAndCurves(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "global CA")
	upCert := newLeaf(t, "tls-upstream", []string{"backend.test"}, &ca, false)
	up, _ := startTLSEcho(t, "verified", upCert, nil)
	_, port := hostPort(up)
	dir := t.TempDir()
	writeFile(t, dir+"/ca.pem", ca.certPEM)
	writeFile(t, dir+"/hosts", "127.0.0.1 backend.test\n")
	pPlain, pTLS := listenPort(t), listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: verified
    url: tls://backend.test:%s
    tls_verify: true
    routes: [{protocols: [tcp], destinations: [{port: %d}]}]
  - name: terminated
    url: tls://backend.test:%s
    routes: [{protocols: [tls], destinations: [{port: %d}]}]
`, port, pPlain, port, pTLS)
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d ssl\ndns_hostsfile = %s/hosts\nlua_ssl_trusted_certificate = system, %s/ca.pem\nnginx_stream_ssl_ecdh_curve = X25519:prime256v1\n", pPlain, pTLS, dir, dir), yml)
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pPlain), "x"); err != nil || got != "verified: x" {
		t.Errorf("tls_verify against lua_ssl_trusted_certificate: %q, %v", got, err)
	}
	c, err := tlsDial(t, fmt.Sprintf("127.0.0.1:%d", pTLS), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if id := c.ConnectionState().CurveID; id != tls.X25519 {
		t.Errorf("key exchange %v; want X25519 as nginx_stream_ssl_ecdh_curve says (Go clients prefer X25519MLKEM768)", id)
	}
}

func TestExpiredCertificateIsAConfigError(t *testing.T) {
	t.Parallel()
	expired := makeExpired(t)
	dir := t.TempDir()
	p, _ := activationSocket(t) // not passed: the start fails before listening
	yml := fmt.Sprintf("_format_version: \"3.0\"\ncertificates:\n  - id: 0b8e7c52-7d55-4f0e-b1a4-5b2a3b9c1d00\n    cert: %s    key: %s    snis: [{name: old.test}]\n", yamlBlock(expired.certPEM, 6), yamlBlock(expired.keyPEM, 6))
	writeFile(t, dir+"/kong.yml", yml)
	writeFile(t, dir+"/kong.conf", fmt.Sprintf("prefix = %s\ndatabase = off\ndeclarative_config = %s/kong.yml\nstream_listen = 127.0.0.1:%d ssl\n", dir, dir, p))
	_, errOut, code := runGong(t, dir, nil, "start", "-c", "kong.conf")
	if code != 1 || !strings.Contains(errOut, "certificate 0b8e7c52-7d55-4f0e-b1a4-5b2a3b9c1d00: expired on") {
		t.Errorf("start with an expired certificate: exit %d, %q", code, errOut)
	}
}

// makeExpired is a self-signed certificate whose validity ended yesterday.
func makeExpired(t *testing.T) testCert {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "old.test"}, DNSNames: []string{"old.test"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return testCert{
		certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		keyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
	}
}
