package balancer

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// roundRobin is Kong's weighted wheel (round_robin.lua): every address
// appears weight/gcd(weights) times, shuffled; each pick advances one
// slot, skipping unavailable addresses; a retry goes on from the next
// slot.
type roundRobin struct {
	*base
	wheel []*address
	next  atomic.Uint64
}

func newRoundRobin(b *base) *roundRobin {
	g := 0
	for _, a := range b.addrs {
		if a.Weight > 0 {
			g = gcd(g, a.Weight)
		}
	}
	r := &roundRobin{base: b}
	for _, a := range b.addrs {
		for range a.Weight / max(g, 1) {
			r.wheel = append(r.wheel, a)
		}
	}
	rand.Shuffle(len(r.wheel), func(i, j int) { r.wheel[i], r.wheel[j] = r.wheel[j], r.wheel[i] })
	return r
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (r *roundRobin) Pick(h *Handle) (Peer, error) {
	if !r.healthy() {
		return Peer{}, ErrUnhealthy
	}
	for range r.wheel {
		a := r.wheel[(r.next.Add(1)-1)%uint64(len(r.wheel))]
		if a.available.Load() {
			h.current = a
			return peerOf(a), nil
		}
	}
	return Peer{}, ErrNoPeers
}

func (r *roundRobin) Release(*Handle, time.Duration) {}
