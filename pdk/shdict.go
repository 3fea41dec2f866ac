package pdk

import (
	"errors"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// SharedDicts are the ngx.shared dictionaries of a gong process: Go maps
// every VM reads and writes, so plugins on different VMs see the same
// values, as nginx workers share a lua_shared_dict zone.
type SharedDicts struct {
	dicts map[string]*SharedDict
	now   func() time.Time
}

// NewSharedDicts makes one dictionary per entry of sizes (name to capacity
// in bytes). now is the clock of expiry; nil means time.Now.
func NewSharedDicts(sizes map[string]int64, now func() time.Time) *SharedDicts {
	if now == nil {
		now = time.Now
	}
	ds := &SharedDicts{dicts: map[string]*SharedDict{}, now: now}
	for name, size := range sizes {
		ds.dicts[name] = newSharedDict(name, size, now)
	}
	return ds
}

// Get returns the dictionary called name, or nil.
func (ds *SharedDicts) Get(name string) *SharedDict {
	if ds == nil {
		return nil
	}
	return ds.dicts[name]
}

// Names lists the dictionaries in name order.
func (ds *SharedDicts) Names() []string {
	if ds == nil {
		return nil
	}
	names := make([]string, 0, len(ds.dicts))
	for n := range ds.dicts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Carry returns a set with the dictionaries of sizes, taking over each of
// prev's that keeps its name and size with its contents, as nginx keeps a
// shared zone over a reload when its size is unchanged.
func (prev *SharedDicts) Carry(sizes map[string]int64) *SharedDicts {
	var now func() time.Time
	if prev != nil {
		now = prev.now
	}
	ds := NewSharedDicts(nil, now)
	for name, size := range sizes {
		if d := prev.Get(name); d != nil && d.capacity == size {
			ds.dicts[name] = d
		} else {
			ds.dicts[name] = newSharedDict(name, size, ds.now)
		}
	}
	return ds
}

// shdictNodeOverhead approximates what a zone spends on an entry besides
// its key and value (the rbtree node, queue links and header), so a
// dictionary holds about as many items as nginx's of the same size.
const shdictNodeOverhead = 64

// SharedDict is one ngx.shared dictionary: values of type bool, float64 or
// string with flags and an optional expiry, evicted least recently used
// first when the bytes they take would pass the capacity.
type SharedDict struct {
	name     string
	capacity int64
	now      func() time.Time

	mu   sync.Mutex
	used int64
	lru  *simplelru.LRU[string, *shdictItem]
}

type shdictItem struct {
	value   any // bool, float64 or string
	flags   uint32
	expires time.Time // zero: never
	size    int64
}

func newSharedDict(name string, capacity int64, now func() time.Time) *SharedDict {
	d := &SharedDict{name: name, capacity: capacity, now: now}
	d.lru, _ = simplelru.NewLRU[string, *shdictItem](math.MaxInt, func(_ string, it *shdictItem) {
		d.used -= it.size
	})
	return d
}

// Errors of the dictionary operations, in OpenResty's words.
var (
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("exists")
	ErrNoMemory    = errors.New("no memory")
	ErrNotANumber  = errors.New("not a number")
	ErrBadValue    = errors.New("bad value type")
	errNegativeTTL = errors.New(`bad "exptime" argument`)
)

func (it *shdictItem) expired(now time.Time) bool {
	return !it.expires.IsZero() && !now.Before(it.expires)
}

func itemSize(key string, v any) int64 {
	n := int64(len(key)) + shdictNodeOverhead
	switch v := v.(type) {
	case string:
		n += int64(len(v))
	default:
		n += 8
	}
	return (n + 7) &^ 7
}

func expiry(now time.Time, ttl float64) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return now.Add(time.Duration(ttl * float64(time.Second)))
}

// Get returns a live key's value and flags; ok is false when it is absent
// or expired. A hit makes the key the most recently used.
func (d *SharedDict) Get(key string) (value any, flags uint32, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	it, found := d.lru.Get(key)
	if !found || it.expired(d.now()) {
		return nil, 0, false
	}
	return it.value, it.flags, true
}

// GetStale is Get that also returns an expired value not yet evicted,
// with stale true.
func (d *SharedDict) GetStale(key string) (value any, flags uint32, stale, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	it, found := d.lru.Get(key)
	if !found {
		return nil, 0, false, false
	}
	return it.value, it.flags, it.expired(d.now()), true
}

// Mode selects which of set, add and replace Store performs.
type Mode int

const (
	ModeSet Mode = iota
	ModeAdd
	ModeReplace
)

// Store writes key as set, add or replace do (a nil value deletes it).
// safe refuses to evict live items: it fails with ErrNoMemory instead.
// forcible reports that live items were evicted to make room.
func (d *SharedDict) Store(mode Mode, key string, value any, ttl float64, flags uint32, safe bool) (forcible bool, err error) {
	if ttl < 0 {
		return false, errNegativeTTL
	}
	switch value.(type) {
	case nil, bool, float64, string:
	default:
		return false, ErrBadValue
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	old, found := d.lru.Peek(key)
	live := found && !old.expired(now)
	switch {
	case mode == ModeAdd && live:
		return false, ErrExists
	case mode == ModeReplace && !live:
		return false, ErrNotFound
	}
	if value == nil {
		if found {
			d.lru.Remove(key)
		}
		return false, nil
	}
	return d.put(key, &shdictItem{value: value, flags: flags, expires: expiry(now, ttl)}, safe, now)
}

// put stores it under key, making room first.
func (d *SharedDict) put(key string, it *shdictItem, safe bool, now time.Time) (bool, error) {
	it.size = itemSize(key, it.value)
	d.lru.Remove(key)
	forcible, err := d.makeRoom(it.size, safe, now)
	if err != nil {
		return false, err
	}
	d.lru.Add(key, it)
	d.used += it.size
	return forcible, nil
}

// makeRoom frees size bytes: expired items first, then, unless safe, the
// least recently used live ones.
func (d *SharedDict) makeRoom(size int64, safe bool, now time.Time) (forcible bool, err error) {
	if size > d.capacity {
		return false, ErrNoMemory
	}
	if d.used+size <= d.capacity {
		return false, nil
	}
	d.removeExpired(0, now)
	for d.used+size > d.capacity {
		if safe {
			return false, ErrNoMemory
		}
		d.lru.RemoveOldest()
		forcible = true
	}
	return forcible, nil
}

// removeExpired drops up to max expired items (0: all) and counts them.
func (d *SharedDict) removeExpired(max int, now time.Time) int {
	n := 0
	for _, k := range d.lru.Keys() {
		if it, _ := d.lru.Peek(k); it.expired(now) {
			d.lru.Remove(k)
			n++
			if max > 0 && n == max {
				break
			}
		}
	}
	return n
}

// Incr adds delta to a number. A missing key fails with ErrNotFound unless
// init is given: then it starts at *init with initTTL (0 or less: no
// expiry).
func (d *SharedDict) Incr(key string, delta float64, init *float64, initTTL float64) (value float64, forcible bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	it, found := d.lru.Get(key)
	if found && !it.expired(now) {
		n, ok := it.value.(float64)
		if !ok {
			return 0, false, ErrNotANumber
		}
		it.value = n + delta
		return n + delta, false, nil
	}
	if init == nil {
		return 0, false, ErrNotFound
	}
	v := *init + delta
	forcible, err = d.put(key, &shdictItem{value: v, expires: expiry(now, initTTL)}, false, now)
	return v, forcible, err
}

// TTL returns a live key's remaining time to live in seconds, 0 when it
// never expires.
func (d *SharedDict) TTL(key string) (float64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	it, found := d.lru.Peek(key)
	if !found || it.expired(now) {
		return 0, ErrNotFound
	}
	if it.expires.IsZero() {
		return 0, nil
	}
	return it.expires.Sub(now).Seconds(), nil
}

// Expire sets a live key's time to live (0: never expires).
func (d *SharedDict) Expire(key string, ttl float64) error {
	if ttl < 0 {
		return errNegativeTTL
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	it, found := d.lru.Peek(key)
	if !found || it.expired(now) {
		return ErrNotFound
	}
	it.expires = expiry(now, ttl)
	return nil
}

// FlushAll marks every item expired; their memory is reused as needed.
func (d *SharedDict) FlushAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	past := d.now().Add(-time.Nanosecond)
	for _, k := range d.lru.Keys() {
		if it, _ := d.lru.Peek(k); it != nil {
			it.expires = past
		}
	}
}

// FlushExpired frees up to max expired items (0: all) and counts them.
func (d *SharedDict) FlushExpired(max int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.removeExpired(max, d.now())
}

// Keys lists up to max live keys (0: all), least recently used first.
func (d *SharedDict) Keys(max int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	var keys []string
	for _, k := range d.lru.Keys() {
		if it, _ := d.lru.Peek(k); !it.expired(now) {
			keys = append(keys, k)
			if max > 0 && len(keys) == max {
				break
			}
		}
	}
	return keys
}

// Capacity is the dictionary's size in bytes.
func (d *SharedDict) Capacity() int64 { return d.capacity }

// FreeSpace is the bytes not taken by items, expired ones included.
func (d *SharedDict) FreeSpace() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.capacity - d.used
}
