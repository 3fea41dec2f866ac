package runtime

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/gong-proxy/gong/runtime/declarative"
)

// errNoPeers ends a connection whose upstream has no target to try.
var errNoPeers = errors.New("No peers are available")

// balancer picks the peer of each connection attempt. Implementations are
// safe for concurrent use and live as long as their generation.
type balancer interface {
	// next returns the address for the next attempt of one connection,
	// avoiding the addresses in tried when it has others, and the host
	// name the address stands for (the target or service host, for
	// upstream TLS SNI).
	next(ctx context.Context, tried []string) (peer, host string, err error)
}

// hostBalancer serves a service whose host is an IP address or a DNS name:
// every address of the name is a peer on the service's port.
type hostBalancer struct {
	host     string
	port     int
	resolver *resolver
	rr       atomic.Uint64
}

func (b *hostBalancer) next(ctx context.Context, tried []string) (string, string, error) {
	addrs, err := b.resolver.lookup(ctx, b.host)
	if err != nil {
		return "", "", err
	}
	peers := make([]string, len(addrs))
	for i, a := range addrs {
		peers[i] = netip.AddrPortFrom(a, uint16(b.port)).String()
	}
	return pickUntried(peers, tried, &b.rr), b.host, nil
}

// roundRobin serves a service whose host names an upstream: its targets of
// non-zero weight, in turn. Target hosts that are names are resolved at
// each pick. The upstreams issue replaces this with Kong's algorithms.
type roundRobin struct {
	targets  []string // "host:port"
	resolver *resolver
	rr       atomic.Uint64 // turn among targets
	addrTurn atomic.Uint64 // turn among a name's addresses
}

func newRoundRobin(targets []*declarative.Target, r *resolver) *roundRobin {
	b := &roundRobin{resolver: r}
	for _, t := range targets {
		if t.Weight > 0 {
			b.targets = append(b.targets, t.Target)
		}
	}
	return b
}

func (b *roundRobin) next(ctx context.Context, tried []string) (string, string, error) {
	if len(b.targets) == 0 {
		return "", "", errNoPeers
	}
	target := pickUntried(b.targets, tried, &b.rr)
	host, port, _ := net.SplitHostPort(target)
	addrs, err := b.resolver.lookup(ctx, host)
	if err != nil {
		return "", "", err
	}
	p, _ := strconv.Atoi(port)
	peers := make([]string, len(addrs))
	for i, a := range addrs {
		peers[i] = netip.AddrPortFrom(a, uint16(p)).String()
	}
	return pickUntried(peers, tried, &b.addrTurn), host, nil
}

// pickUntried takes the next peer in turn that was not tried yet, or the
// next in turn when all were.
func pickUntried(peers, tried []string, turn *atomic.Uint64) string {
	start := int(turn.Add(1) % uint64(len(peers)))
	for i := range peers {
		p := peers[(start+i)%len(peers)]
		if !slices.Contains(tried, p) {
			return p
		}
	}
	return peers[start]
}
