package balancer

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/OneOfOne/xxhash"
)

// consistentHashing is Kong's continuum (consistent_hashing.lua): each
// address owns points of a ring of slots, placed by xxHash32 of
// "<ip>::<port> <i>"; a connection's hash value picks a slot and the walk
// goes down the ring to the first available address.
type consistentHashing struct {
	*base
	ring []*address // slot i-1 holds Kong's 1-based slot i
}

func newConsistentHashing(b *base, slots int) *consistentHashing {
	if slots < 1000 {
		slots = 1000
	}
	c := &consistentHashing{base: b, ring: make([]*address, slots)}
	// Kong places targets in order, each target's addresses by their
	// ip:port string, and gives each address
	// floor(weight/total × targets × 160) points.
	addrs := slices.Clone(b.addrs)
	slices.SortFunc(addrs, func(x, y *address) int {
		if c := strings.Compare(x.Target, y.Target); c != 0 {
			return c
		}
		return strings.Compare(x.Addr.String(), y.Addr.String())
	})
	total := 0
	targets := map[string]bool{}
	for _, a := range addrs {
		total += a.Weight
		targets[a.Target] = true
	}
	if total == 0 {
		return c
	}
	free := slots
	for _, a := range addrs {
		if a.Weight == 0 {
			continue
		}
		points := max(1, a.Weight*len(targets)*160/total)
		prefix := a.Addr.Addr().String() + "::" + strconv.Itoa(int(a.Addr.Port())) + " "
		for i, placed := 1, 0; placed < points && free > 0; i++ {
			slot := kongSlot(prefix+strconv.Itoa(i), slots)
			if c.ring[slot] == nil {
				c.ring[slot] = a
				placed++
				free--
			}
		}
	}
	return c
}

// kongSlot maps a key to a 0-based ring slot exactly as Kong does: luaxxhash
// returns the 32-bit digest as a signed integer, and Lua's modulo floors.
func kongSlot(key string, slots int) int {
	h := int64(int32(xxhash.ChecksumString32(key)))
	n := int64(slots)
	return int(((h % n) + n) % n)
}

func (c *consistentHashing) Pick(h *Handle) (Peer, error) {
	if !c.healthy() {
		return Peer{}, ErrUnhealthy
	}
	if !h.hashed {
		h.point, h.hashed = kongSlot(h.HashValue, len(c.ring)), true
	}
	// A retry starts again at the same point: the same address, unless it
	// became unavailable.
	for i := range c.ring {
		a := c.ring[(h.point-i+len(c.ring))%len(c.ring)]
		if a != nil && a.available.Load() {
			h.current = a
			return peerOf(a), nil
		}
	}
	return Peer{}, ErrNoPeers
}

func (c *consistentHashing) Release(*Handle, time.Duration) {}
