package balancer

import (
	"math"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// leastConnections picks the available address with the fewest sessions
// in flight for its weight, (active+1)/weight (least_connections.lua);
// a retry excludes the addresses the connection already tried until all
// have been.
type leastConnections struct {
	*base
	mu sync.Mutex // guards every address's active count
}

func (l *leastConnections) Pick(h *Handle) (Peer, error) {
	if !l.healthy() {
		return Peer{}, ErrUnhealthy
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked(h)
	best := pickBest(l.addrs, h, func(a *address) float64 { return float64(a.active+1) / float64(a.Weight) })
	if best == nil {
		return Peer{}, ErrNoPeers
	}
	best.active++
	h.current = best
	return peerOf(best), nil
}

func (l *leastConnections) Take(h *Handle, addr netip.AddrPort) (Peer, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.takeable(addr)
	if a == nil {
		return Peer{}, false
	}
	l.releaseLocked(h)
	a.active++
	h.current = a
	return peerOf(a), true
}

func (l *leastConnections) Release(h *Handle, _ time.Duration) {
	l.mu.Lock()
	l.releaseLocked(h)
	l.mu.Unlock()
}

func (l *leastConnections) releaseLocked(h *Handle) {
	if h.current != nil {
		h.current.active--
		h.tried = append(h.tried, h.current)
		h.current = nil
	}
}

// pickBest returns the available, weighted, untried address with the
// lowest score; when every candidate was tried, the tried list is reset,
// as Kong does.
func pickBest(addrs []*address, h *Handle, score func(*address) float64) *address {
	for pass := 0; pass < 2; pass++ {
		var best *address
		bestScore := math.Inf(1)
		for _, a := range addrs {
			if a.Weight == 0 || !a.available.Load() || slices.Contains(h.tried, a) {
				continue
			}
			if s := score(a); s < bestScore {
				best, bestScore = a, s
			}
		}
		if best != nil || len(h.tried) == 0 {
			return best
		}
		h.tried = h.tried[:0]
	}
	return nil
}

// latency picks the available, untried address with the lowest EWMA of
// connect time for its weight (latency.lua); in stream only the connect
// time is known, as in Kong.
type latency struct {
	*base
	mu sync.Mutex // guards every address's ewma
}

// latencyDecay is the EWMA's time constant.
const latencyDecay = 10 * time.Second

func (l *latency) Pick(h *Handle) (Peer, error) {
	if !l.healthy() {
		return Peer{}, ErrUnhealthy
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if h.current != nil {
		h.tried = append(h.tried, h.current)
		h.current = nil
	}
	best := pickBest(l.addrs, h, func(a *address) float64 { return a.ewma / float64(a.Weight) })
	if best == nil {
		return Peer{}, ErrNoPeers
	}
	h.current = best
	return peerOf(best), nil
}

// Release folds the connect time into the address's EWMA, decayed by the
// time since its last sample.
func (l *latency) Release(h *Handle, connectTime time.Duration) {
	if h.current == nil || connectTime <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a, now := h.current, time.Now()
	sample := connectTime.Seconds()
	if a.ewmaAt.IsZero() {
		a.ewma = sample
	} else {
		w := math.Exp(-float64(now.Sub(a.ewmaAt)) / float64(latencyDecay))
		a.ewma = a.ewma*w + sample*(1-w)
	}
	a.ewmaAt = now
}
