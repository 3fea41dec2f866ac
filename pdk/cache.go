package pdk

import (
	"errors"
	"fmt"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	glua "github.com/yuin/gopher-lua"
)

// Cache is kong.cache: one LRU of entries every VM shares, with Kong's
// (mlcache's) rules: a callback fills a miss, nil results are cached as
// negative entries, and concurrent misses of a key run the callback once.
// Values cross VMs as Go copies: nil, booleans, numbers, strings and
// tables of those.
type Cache struct {
	ttl, negTTL time.Duration // 0: forever
	now         func() time.Time
	entries     *lru.Cache[string, cacheEntry]

	mu       sync.Mutex
	inflight map[string]chan struct{}
}

type cacheEntry struct {
	value   any // nil for a negative entry
	expires time.Time
}

// cacheEntrySize approximates an entry's footprint to turn mem_cache_size
// into a number of entries.
const cacheEntrySize = 1024

// NewCache makes a cache of about memSize bytes (mem_cache_size) with
// db_cache_ttl and db_cache_neg_ttl as default TTLs.
func NewCache(memSize int64, ttl, negTTL time.Duration, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	n := int(max(memSize/cacheEntrySize, 1024))
	entries, _ := lru.New[string, cacheEntry](n)
	return &Cache{ttl: ttl, negTTL: negTTL, now: now, entries: entries, inflight: map[string]chan struct{}{}}
}

func (c *Cache) lookup(key string) (cacheEntry, bool) {
	e, ok := c.entries.Get(key)
	if !ok {
		return e, false
	}
	if !e.expires.IsZero() && !c.now().Before(e.expires) {
		c.entries.Remove(key)
		return e, false
	}
	return e, true
}

func (c *Cache) store(key string, v any, ttl time.Duration) {
	e := cacheEntry{value: v}
	if ttl > 0 {
		e.expires = c.now().Add(ttl)
	}
	c.entries.Add(key, e)
}

// lockTimeout bounds the wait for another caller's callback, as mlcache's
// lock does (5 s); then the waiter runs the callback itself.
const lockTimeout = 5 * time.Second

// lock makes the caller the one filling key (owner true), or waits for the
// one who is. After lockTimeout the caller fills it too, without owning
// the lock.
func (c *Cache) lock(key string) (owner, waited bool) {
	c.mu.Lock()
	ch, busy := c.inflight[key]
	if !busy {
		c.inflight[key] = make(chan struct{})
		c.mu.Unlock()
		return true, false
	}
	c.mu.Unlock()
	t := time.NewTimer(lockTimeout)
	defer t.Stop()
	select {
	case <-ch:
		return false, true
	case <-t.C:
		return false, false
	}
}

func (c *Cache) unlock(key string) {
	c.mu.Lock()
	close(c.inflight[key])
	delete(c.inflight, key)
	c.mu.Unlock()
}

// Invalidate drops key.
func (c *Cache) Invalidate(key string) { c.entries.Remove(key) }

// Purge drops every entry.
func (c *Cache) Purge() { c.entries.Purge() }

// openCache installs kong.cache, whose methods take the cache as self
// (kong.cache:get(...)) as Kong's do.
func (p *pdk) openCache(L *glua.LState, kong *glua.LTable) {
	c := p.opts.Cache
	t := L.NewTable()
	checkKey := func(L *glua.LState) string {
		k, ok := L.Get(2).(glua.LString)
		if !ok {
			L.RaiseError("key must be a string")
		}
		return string(k)
	}
	setFuncs(L, t, map[string]glua.LGFunction{
		"get": func(L *glua.LState) int {
			key := checkKey(L)
			return c.get(L, key, false)
		},
		"renew": func(L *glua.LState) int {
			key := checkKey(L)
			return c.get(L, key, true)
		},
		"probe": func(L *glua.LState) int {
			e, ok := c.lookup(checkKey(L))
			if !ok {
				L.Push(glua.LNil)
				return 1
			}
			var ttl float64
			if !e.expires.IsZero() {
				ttl = e.expires.Sub(c.now()).Seconds()
			}
			L.Push(glua.LNumber(ttl))
			L.Push(glua.LNil)
			L.Push(toLua(L, e.value, nil))
			return 3
		},
		"invalidate": func(L *glua.LState) int {
			c.Invalidate(checkKey(L))
			return 0
		},
		"invalidate_local": func(L *glua.LState) int {
			c.Invalidate(checkKey(L))
			return 0
		},
		// get_bulk(bulk, opts) is mlcache's: bulk lists key, opts, cb,
		// arg per entry and n; the result lists value, err, hit level per
		// entry, and n.
		"get_bulk": func(L *glua.LState) int {
			bulk := L.CheckTable(2)
			n, ok := bulk.RawGetString("n").(glua.LNumber)
			if !ok || n < 0 {
				L.RaiseError("bulk must have n field")
			}
			get := t.RawGetString("get")
			res := L.CreateTable(3*int(n), 1)
			for i := 0; i < int(n); i++ {
				L.Push(get)
				L.Push(t)
				for j := 1; j <= 4; j++ {
					L.Push(bulk.RawGetInt(4*i + j))
				}
				L.Call(5, 3)
				for j := 1; j <= 3; j++ {
					res.RawSetInt(3*i+j, L.Get(-4+j))
				}
				L.Pop(3)
			}
			res.RawSetString("n", n)
			L.Push(res)
			return 1
		},
		"purge": func(L *glua.LState) int {
			c.Purge()
			return 0
		},
		"safe_set": func(L *glua.LState) int {
			key := checkKey(L)
			v, err := luaToGo(L.Get(3), 0)
			if err != nil {
				return pushErr(L, "failed to set in node cache: "+err.Error())
			}
			c.store(key, v, c.ttl)
			L.Push(glua.LTrue)
			return 1
		},
	})
	kong.RawSetString("cache", t)
}

// get is kong.cache:get(key, opts?, cb?, ...) (and renew, which skips the
// lookup): value, nil, hit level (1 cached, 3 from the callback, -1
// missed without a callback), or nil and "failed to get from node cache:
// <err>".
func (c *Cache) get(L *glua.LState, key string, renew bool) int {
	opts, _ := L.Get(3).(*glua.LTable)
	cb := L.Get(4)
	if cb != glua.LNil {
		if _, ok := cb.(*glua.LFunction); !ok {
			L.RaiseError("callback must be a function")
		}
	}
	for {
		if !renew {
			if e, ok := c.lookup(key); ok {
				L.Push(toLua(L, e.value, nil))
				L.Push(glua.LNil)
				L.Push(glua.LNumber(1))
				return 3
			}
		}
		if cb == glua.LNil {
			L.Push(glua.LNil)
			L.Push(glua.LNil)
			L.Push(glua.LNumber(-1))
			return 3
		}
		owner, waited := c.lock(key)
		if owner {
			defer c.unlock(key)
			break
		}
		if !waited {
			break // the other caller is too slow: fill it without the lock
		}
		renew = false // another caller filled it meanwhile
	}
	args := make([]glua.LValue, 0, L.GetTop())
	for i := 5; i <= L.GetTop(); i++ {
		args = append(args, L.Get(i))
	}
	L.Push(cb)
	for _, a := range args {
		L.Push(a)
	}
	if err := L.PCall(len(args), 3, nil); err != nil {
		return pushErr(L, "failed to get from node cache: callback threw an error: "+luaErrorText(err))
	}
	v, cbErr, ttlV := L.Get(-3), L.Get(-2), L.Get(-1)
	L.Pop(3)
	if cbErr != glua.LNil {
		return pushErr(L, "failed to get from node cache: "+tostringValue(L, cbErr))
	}
	goV, err := luaToGo(v, 0)
	if err != nil {
		return pushErr(L, "failed to get from node cache: "+err.Error())
	}
	ttl := c.ttl
	if v == glua.LNil {
		ttl = c.negTTL
	}
	if opts != nil {
		name := "ttl"
		if v == glua.LNil {
			name = "neg_ttl"
		}
		if n, ok := opts.RawGetString(name).(glua.LNumber); ok {
			ttl = time.Duration(float64(n) * float64(time.Second))
		}
	}
	if n, ok := ttlV.(glua.LNumber); ok {
		ttl = time.Duration(float64(n) * float64(time.Second))
	}
	if ttl >= 0 {
		c.store(key, goV, ttl)
	}
	L.Push(v)
	L.Push(glua.LNil)
	L.Push(glua.LNumber(3))
	return 3
}

// luaErrorText is a raised error's message without gopher-lua's
// traceback.
func luaErrorText(err error) string {
	var ae *glua.ApiError
	if errors.As(err, &ae) && ae.Object != nil {
		return ae.Object.String()
	}
	return err.Error()
}

// luaToGo copies a cacheable Lua value into Go: nil, bool, float64,
// string, or map[any]any of those.
func luaToGo(v glua.LValue, depth int) (any, error) {
	if s, ok := luaScalar(v); ok {
		return s, nil
	}
	switch v := v.(type) {
	case *glua.LTable:
		if depth > 100 {
			return nil, errors.New("cannot cache a table nested that deep")
		}
		m := map[any]any{}
		var err error
		v.ForEach(func(k, val glua.LValue) {
			if err != nil {
				return
			}
			var gk, gv any
			if gk, err = luaToGo(k, depth+1); err == nil {
				gv, err = luaToGo(val, depth+1)
				m[gk] = gv
			}
		})
		return m, err
	default:
		return nil, fmt.Errorf("cannot cache value of type %s", v.Type())
	}
}
