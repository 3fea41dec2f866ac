package stream

import (
	"context"
	"net/netip"
	"slices"
	"testing"
)

// TestHostPeersDialTheirLiteral: a service whose host is an IP address
// dials that address, an IPv4-mapped one as IPv4 (as a resolved name
// would be), and every try is listed, past the two kept inline.
func TestHostPeersDialTheirLiteral(t *testing.T) {
	for _, c := range []struct {
		host, want string
	}{
		{"127.0.0.1", "127.0.0.1:9000"},
		{"::1", "[::1]:9000"},
		{"::ffff:127.0.0.1", "127.0.0.1:9000"},
	} {
		b := newHostPeers(c.host, 9000, nil) // a literal needs no resolver
		a := b.start(netip.MustParseAddrPort("192.0.2.1:4000"), false)
		for range 3 {
			peer, host, err := b.next(context.Background(), a)
			if err != nil || peer != c.want || host != c.host {
				t.Fatalf("host %s: next = %q, %q, %v; want %q, %q", c.host, peer, host, err, c.want, c.host)
			}
		}
		if want := []string{c.want, c.want, c.want}; !slices.Equal(a.tried, want) {
			t.Errorf("host %s: tried %q; want %q", c.host, a.tried, want)
		}
	}
	if b := newHostPeers("echo.test", 9000, nil); b.literal != "" {
		t.Errorf("a name got the literal %q; it must be resolved", b.literal)
	}
}
