package admin

import (
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
	"golang.org/x/net/netutil"

	"github.com/gong-proxy/gong/runtime/conf"
)

// ReadHeaderTimeout bounds reading a request's headers on the Admin and
// Status APIs, as nginx's client_header_timeout does.
const ReadHeaderTimeout = time.Minute

// Bound applies the kong.conf limits l to an API server srv and returns
// ln holding at most l.MaxConnections connections at once; further
// clients wait in the listen backlog until one closes.
func Bound(srv *http.Server, ln net.Listener, l conf.APILimits) net.Listener {
	srv.ReadHeaderTimeout = min(ReadHeaderTimeout, l.ReadTimeout)
	srv.ReadTimeout = l.ReadTimeout
	srv.WriteTimeout = l.WriteTimeout
	srv.IdleTimeout = l.IdleTimeout
	return netutil.LimitListener(ln, l.MaxConnections)
}

// ProxyProtocol returns ln expecting a PROXY protocol header (v1 or v2)
// within timeout on each connection, as an admin_listen entry with the
// proxy_protocol flag does. The header's source becomes the client
// address only when trusted (trusted_ips) says the peer may set it; from
// other peers a header is read and its addresses ignored.
func ProxyProtocol(ln net.Listener, timeout time.Duration, trusted func(netip.Addr) bool) net.Listener {
	return &proxyproto.Listener{Listener: ln, ReadHeaderTimeout: timeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if peer, err := netip.ParseAddrPort(o.Upstream.String()); err == nil && trusted(peer.Addr().Unmap()) {
				return proxyproto.REQUIRE, nil
			}
			return proxyproto.IGNORE, nil
		}}
}
