package balancer

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"
)

// The errors Kong's balancers report.
var (
	ErrNoPeers   = errors.New("No peers are available")
	ErrUnhealthy = errors.New("Balancer is unhealthy")
)

// Address is one resolved peer of a target: an IP and port with the
// target's weight.
type Address struct {
	Addr   netip.AddrPort
	Weight int
	// Host is the target's host name, "" when the target is an IP; it is
	// the upstream TLS SNI candidate.
	Host string
	// Target is the target entity the address comes from ("host:port");
	// consistent-hashing counts and orders targets.
	Target string
}

// address is an Address with its live state.
type address struct {
	Address
	dial      string // Addr as text, what a connection dials
	available atomic.Bool
	active    int     // least-connections: sessions in flight (guarded by the balancer)
	ewma      float64 // latency: seconds (guarded by the balancer)
	ewmaAt    time.Time
}

// Peer is what Pick chose.
type Peer struct {
	Addr netip.AddrPort
	Host string
	// Dial is Addr as text, made once per address rather than per pick.
	Dial string
}

// Handle follows one connection across its attempts: the hash value it
// is routed by, and the addresses it tried.
type Handle struct {
	// HashValue is the value hashed by consistent-hashing (from hash_on,
	// else hash_fallback, else ""); set it before the first Pick.
	HashValue string
	tried     []*address
	current   *address
	hashed    bool
	point     int
}

// Balancer picks peers for the connections of one upstream.
type Balancer interface {
	// Pick chooses the peer for the next attempt of the connection h
	// follows; on a retry the previous peer counts as failed.
	Pick(h *Handle) (Peer, error)
	// Take is a Pick of a given address, for a connection that should go
	// back to it: it fails when the balancer lacks the address, or the
	// address or the balancer is unhealthy.
	Take(h *Handle, addr netip.AddrPort) (Peer, bool)
	// Release ends the connection's use of its last peer; connectTime is
	// how long its connect took (latency's sample), 0 if it failed.
	Release(h *Handle, connectTime time.Duration)
	// SetAvailable marks an address up or down, as health checks do.
	SetAvailable(addr netip.AddrPort, up bool)
}

// Options are the upstream's balancing settings.
type Options struct {
	Algorithm string // round-robin (default), consistent-hashing, least-connections, latency
	Slots     int    // consistent-hashing continuum size
	// Threshold is healthchecks.threshold: the balancer is unhealthy when
	// the available share of the total weight is at or below it (percent).
	Threshold float64
}

// New builds a balancer over addrs; addresses of weight 0 are never
// picked.
func New(addrs []Address, opts Options) (Balancer, error) {
	as := make([]*address, 0, len(addrs))
	for _, a := range addrs {
		if a.Weight < 0 {
			return nil, fmt.Errorf("address %s: negative weight %d", a.Addr, a.Weight)
		}
		x := &address{Address: a, dial: a.Addr.String()}
		x.available.Store(true)
		as = append(as, x)
	}
	b := &base{addrs: as, threshold: opts.Threshold}
	for _, a := range as {
		b.total += a.Weight
	}
	switch opts.Algorithm {
	case "", "round-robin":
		return newRoundRobin(b), nil
	case "consistent-hashing":
		return newConsistentHashing(b, opts.Slots), nil
	case "least-connections":
		return &leastConnections{base: b}, nil
	case "latency":
		return &latency{base: b}, nil
	}
	return nil, fmt.Errorf("unknown balancing algorithm %q", opts.Algorithm)
}

// base holds what every algorithm shares.
type base struct {
	addrs       []*address
	threshold   float64
	total       int          // sum of the weights
	unavailable atomic.Int64 // weight of the addresses marked down
}

// healthy is Kong's balancer health: some weight, and more of it
// available than the threshold.
func (b *base) healthy() bool {
	down := int(b.unavailable.Load())
	return b.total > 0 && float64(b.total-down)/float64(b.total)*100 > b.threshold
}

func peerOf(a *address) Peer { return Peer{Addr: a.Addr, Host: a.Host, Dial: a.dial} }

func (b *base) Take(h *Handle, addr netip.AddrPort) (Peer, bool) {
	a := b.takeable(addr)
	if a == nil {
		return Peer{}, false
	}
	h.current = a
	return peerOf(a), true
}

// takeable returns the address Take may give, or nil.
func (b *base) takeable(addr netip.AddrPort) *address {
	if !b.healthy() {
		return nil
	}
	for _, a := range b.addrs {
		if a.Addr == addr && a.Weight > 0 && a.available.Load() {
			return a
		}
	}
	return nil
}

// SetAvailable marks an address up or down (health checks); pickers skip
// unavailable addresses.
func (b *base) SetAvailable(addr netip.AddrPort, up bool) {
	for _, a := range b.addrs {
		if a.Addr == addr && a.available.CompareAndSwap(!up, up) {
			if up {
				b.unavailable.Add(-int64(a.Weight))
			} else {
				b.unavailable.Add(int64(a.Weight))
			}
		}
	}
}
