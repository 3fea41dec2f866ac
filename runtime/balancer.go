package runtime

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gong-proxy/gong/runtime/balancer"
	"github.com/gong-proxy/gong/runtime/declarative"
)

// peers picks the peer of each connection attempt to a service. It is
// safe for concurrent use and lives as long as its generation.
type peers interface {
	// start begins the attempts of a connection from client.
	start(client netip.Addr) *attempts
	// next returns the address for the next attempt of the connection a
	// follows, and the host name it stands for (the target or service
	// host, for upstream TLS SNI).
	next(ctx context.Context, a *attempts) (peer, host string, err error)
	// failed reports that connecting to the attempt's peer failed and the
	// connection retries.
	failed(a *attempts, peer string)
	// release ends the connection's use of its last peer with the
	// session's status; connectTime is its connect time, 0 when it failed.
	release(a *attempts, connectTime time.Duration, status int)
}

// attempts is one connection's record of its tries.
type attempts struct {
	tried  []string
	handle balancer.Handle
}

// hostPeers serves a service whose host is an IP address or a DNS name:
// every address of the name is a peer on the service's port, in turn,
// the ones not tried yet first.
type hostPeers struct {
	host     string
	port     int
	resolver *resolver
	turn     atomic.Uint64
}

func (b *hostPeers) next(ctx context.Context, a *attempts) (string, string, error) {
	addrs, err := b.resolver.lookup(ctx, b.host)
	if err != nil {
		return "", "", err
	}
	peers := make([]string, len(addrs))
	for i, ip := range addrs {
		peers[i] = netip.AddrPortFrom(ip, uint16(b.port)).String()
	}
	start := int(b.turn.Add(1) % uint64(len(peers)))
	peer := peers[start]
	for i := range peers {
		if p := peers[(start+i)%len(peers)]; !slices.Contains(a.tried, p) {
			peer = p
			break
		}
	}
	a.tried = append(a.tried, peer)
	return peer, b.host, nil
}

func (b *hostPeers) start(netip.Addr) *attempts { return &attempts{} }

func (b *hostPeers) failed(*attempts, string) {}

func (b *hostPeers) release(*attempts, time.Duration, int) {}

// upstreamPeers serves a service whose host names an upstream, with the
// upstream's algorithm over its targets' addresses.
type upstreamPeers struct {
	b       balancer.Balancer
	addrs   []balancer.Address // the targets' addresses, for the Admin API's health report
	hashOn  [2]string          // hash_on, hash_fallback
	checker *balancer.Checker  // nil when the upstream has no health checks
}

// newUpstreamPeers resolves the upstream's targets (one address per IP,
// each with the target's weight, as Kong does) and builds its balancer,
// with the health checker checkers gives it. A target whose name does not
// resolve gets no address, with a warning.
func newUpstreamPeers(ctx context.Context, u *declarative.Upstream, targets []*declarative.Target, r *resolver, checkers *checkerSet, warn func(string, ...any)) (*upstreamPeers, error) {
	var addrs []balancer.Address
	for _, t := range targets {
		host, portStr, err := net.SplitHostPort(t.Target)
		if err != nil {
			return nil, err
		}
		port, _ := strconv.Atoi(portStr)
		ips, err := r.lookup(ctx, host)
		if err != nil {
			warn("upstream %s: target %s: %v", u.Name, t.Target, err)
			continue
		}
		name := host
		if _, err := netip.ParseAddr(host); err == nil {
			name = ""
		}
		for _, ip := range ips {
			addrs = append(addrs, balancer.Address{Addr: netip.AddrPortFrom(ip, uint16(port)), Weight: t.Weight, Host: name, Target: t.Target})
		}
	}
	b, err := balancer.New(addrs, balancer.Options{Algorithm: u.Algorithm, Slots: u.Slots, Threshold: u.Healthchecks.Threshold})
	if err != nil {
		return nil, err
	}
	return &upstreamPeers{b: b, addrs: addrs, hashOn: [2]string{u.HashOn, u.HashFallback}, checker: checkers.get(u, addrs, b)}, nil
}

// start sets the value consistent-hashing hashes for the client: in
// stream only hash_on ip yields one (consumer needs an authenticating
// plugin); anything else falls back, then hashes "", as in Kong.
func (u *upstreamPeers) start(client netip.Addr) *attempts {
	a := &attempts{}
	for _, on := range u.hashOn {
		if on == "ip" {
			a.handle.HashValue = client.String()
			break
		}
	}
	return a
}

func (u *upstreamPeers) next(_ context.Context, a *attempts) (string, string, error) {
	p, err := u.b.Pick(&a.handle)
	if err != nil {
		return "", "", err
	}
	peer := p.Addr.String()
	a.tried = append(a.tried, peer)
	return peer, p.Host, nil
}

func (u *upstreamPeers) failed(_ *attempts, peer string) {
	if u.checker != nil {
		u.checker.ReportConnectFailure(netip.MustParseAddrPort(peer))
	}
}

// release also reports the session's status to passive health checks, as
// Kong's log phase does, when the session got as far as a peer.
func (u *upstreamPeers) release(a *attempts, connectTime time.Duration, status int) {
	u.b.Release(&a.handle, connectTime)
	if u.checker != nil && len(a.tried) > 0 {
		u.checker.ReportStatus(netip.MustParseAddrPort(a.tried[len(a.tried)-1]), status)
	}
}
