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
