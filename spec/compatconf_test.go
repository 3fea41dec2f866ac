package spec

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

// TestSproxyProxyTimeoutCapsSSLListeners: nginx_sproxy_proxy_timeout ends
// an idle session on an ssl listener even though its service allows a
// minute, as Kong's TLS preread hop does.
func TestSproxyProxyTimeoutCapsSSLListeners(t *testing.T) {
	echo := startEcho(t, "plain")
	p := freePort(t)
	yml := "_format_version: \"3.0\"\nservices:\n" + svc("e", echo, "", fmt.Sprintf("      - protocols: [tls]\n        destinations: [{port: %d}]\n", p))
	startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\nnginx_sproxy_proxy_timeout = 300ms\n", p), yml)
	c, err := tlsDial(t, fmt.Sprintf("127.0.0.1:%d", p), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := exchange(c, "x"); err != nil || got != "plain: x" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	// The connection's deadline is 10s; the service's idle timeout 60s.
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read on an idle session = %v; want EOF once nginx_sproxy_proxy_timeout passed", err)
	}
}

// TestRefusedTLSSessionClosesCleanly: a TLS session ip-restriction
// refuses in preread ends with close_notify and FIN, never a reset, even
// when the client has sent data gong did not read: 100 clients in a row
// write a line and read to EOF without an error.
func TestRefusedTLSSessionClosesCleanly(t *testing.T) {
	echo := startEcho(t, "plain")
	p := freePort(t)
	yml := "_format_version: \"3.0\"\nservices:\n" + svc("e", echo, "", fmt.Sprintf(`      - protocols: [tls]
        destinations: [{port: %d}]
        plugins:
          - name: ip-restriction
            protocols: [tls]
            config: {deny: [127.0.0.1]}
`, p))
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\n", p), yml)
	for i := range 100 {
		c, err := tlsDial(t, fmt.Sprintf("127.0.0.1:%d", p), "", nil)
		if err != nil {
			t.Fatalf("attempt %d: handshake: %v", i+1, err)
		}
		c.Write([]byte("hello, are you there?\n"))
		if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
			t.Fatalf("attempt %d: read %d bytes, then %v; want EOF and nothing else", i+1, n, err)
		}
		c.Close()
	}
	g.waitErrLog(t, "denial logged", "IP address not allowed")
}
