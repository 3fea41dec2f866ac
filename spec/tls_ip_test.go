package spec

import (
	"fmt"
	"strings"
	"testing"
)

// TestUpstreamTLSVerifiesIP: with tls_verify and a service host that is an
// IP address, the upstream's certificate must name that IP in its IP
// SANs; a certificate the same CA issued for another address or name is
// refused with the reason in the error log, unless an SNI is named (here
// the upstream's host_header), which is then checked instead.
func TestUpstreamTLSVerifiesIP(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "IP test CA")
	forIP := newLeaf(t, "for-127.0.0.1", []string{"127.0.0.1"}, &ca, false)
	forOther := newLeaf(t, "for-other", []string{"127.0.0.2", "other.test"}, &ca, false)
	right, _ := startTLSEcho(t, "right", forIP, nil)
	wrong, _ := startTLSEcho(t, "wrong", forOther, nil)
	_, rightPort := hostPort(right)
	_, wrongPort := hostPort(wrong)
	caID := "8ae2b1b1-31b6-4d3c-9b3b-77d9b5d9a101"
	ports := [3]int{listenPort(t), listenPort(t), listenPort(t)}
	yml := fmt.Sprintf(`_format_version: "3.0"
ca_certificates:
  - id: %s
    cert: %supstreams:
  - name: named
    host_header: other.test
    targets: [{target: "127.0.0.1:%s"}]
services:
  - name: ip-in-sans
    url: tls://127.0.0.1:%s
    tls_verify: true
    ca_certificates: [%s]
    retries: 0
%s  - name: other-ip
    url: tls://127.0.0.1:%s
    tls_verify: true
    ca_certificates: [%s]
    retries: 0
%s  - name: sni-named
    url: tls://named
    tls_verify: true
    ca_certificates: [%s]
    retries: 0
%s`, caID, yamlBlock(ca.certPEM, 6), wrongPort,
		rightPort, caID, tcpRoute(ports[0]), wrongPort, caID, tcpRoute(ports[1]), caID, tcpRoute(ports[2]))
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:%d\n", ports[0], ports[1], ports[2]), yml)

	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", ports[0]), "x"); err != nil || got != "right: x" {
		t.Errorf("certificate for 127.0.0.1: %q, %v; want it accepted", got, err)
	}
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", ports[1]), "x"); err == nil {
		t.Errorf("certificate for 127.0.0.2 and other.test: proxied (%q); want it refused", got)
	}
	g.waitErrLog(t, "the refused certificate", "certificate is valid for 127.0.0.2, not 127.0.0.1")
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", ports[2]), "x"); err != nil || got != "wrong: x" {
		t.Errorf("SNI other.test named by host_header: %q, %v; want the certificate checked against it and accepted", got, err)
	}
	if strings.Count(g.errLog.String(), "upstream SSL handshake failed") != 1 {
		t.Errorf("want exactly one refused handshake:\n%s", g.errLog)
	}
}

// tcpRoute is the routes line of a kong.yml service: one tcp route for
// destination port p.
func tcpRoute(p int) string {
	return fmt.Sprintf("    routes: [{protocols: [tcp], destinations: [{port: %d}]}]\n", p)
}
