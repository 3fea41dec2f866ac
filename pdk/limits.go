package pdk

import (
	"context"
	"time"

	glua "github.com/yuin/gopher-lua"
)

// Limit is one window of a rate limit: at most Max events per Period
// ("second", "minute", "hour", "day", "month" or "year", aligned on UTC
// calendar boundaries as Kong's rate-limiting aligns them).
type Limit struct {
	Period string
	Max    int64
}

// CounterStore keeps counters that outlive a connection: on the node or
// shared by a fleet.
type CounterStore interface {
	// Hit counts one event under key in the window of every limit, unless
	// one of those windows is already full: then nothing is counted and
	// full names its period.
	Hit(ctx context.Context, key string, limits []Limit) (full string, err error)
	// Acquire counts one session in progress under key unless max are
	// already counted. release undoes it; call it once.
	Acquire(ctx context.Context, key string, max int64) (release func(), ok bool, err error)
}

// Counters is what the gong.limits module reaches: the stores plugin
// configurations name, and the refusal counter of /metrics. The runtime
// implements it once for the process, so counters survive reloads.
type Counters interface {
	// Store returns the store conf names: its policy ("local", "redis"),
	// redis record and sync_rate, as the bundled limit plugins' schemas
	// have them. The error is for the plugin's author: a policy the
	// runtime cannot serve, a bad redis record.
	Store(conf map[string]any) (CounterStore, error)
	// Refused counts a session a limit refused, by plugin, route (name,
	// else id; empty when none matched) and reason.
	Refused(plugin, route, reason string)
}

// Shaping is what the bandwidth-limit plugin asked for a session: bytes
// per second each way (0: unlimited), a rate shared by every session of
// Key on the node, and the burst each bucket allows.
type Shaping struct {
	DownstreamRate, UpstreamRate int64
	AggregateRate                int64
	Key                          string
	Burst                        int64
}

// limitsCallTimeout bounds one store call from Lua, whatever the store's
// own timeout.
const limitsCallTimeout = 10 * time.Second

// openLimits is the gong.limits module:
//
//	store, err = limits.store(conf)       -- conf: policy, redis, sync_rate
//	full, err  = store:hit(key, {second = 5, minute = 100})
//	ok, err    = store:acquire(key, max)  -- released when the session ends
//	limits.refuse(status, reason)         -- ends the session in preread
//	route_id, service_id = limits.ids()   -- the matched route and service, in any phase
//	limits.shape{downstream_rate = ..., upstream_rate = ..., aggregate_rate = ..., key = ..., burst = ...}
func openLimits(L *glua.LState) int {
	b := BindingOf(L)
	var counters Counters
	if b != nil && b.opts != nil {
		counters = b.opts.Counters
	}
	storeMT := L.NewTable()
	methods := L.NewTable()
	storeMT.RawSetString("__index", methods)
	check := func(L *glua.LState) CounterStore {
		if ud, ok := L.Get(1).(*glua.LUserData); ok {
			if s, ok := ud.Value.(CounterStore); ok {
				return s
			}
		}
		L.ArgError(1, "store expected, call methods with ':'")
		return nil
	}
	setFuncs(L, methods, map[string]glua.LGFunction{
		"hit": func(L *glua.LState) int {
			s := check(L)
			key := L.CheckString(2)
			var limits []Limit
			L.CheckTable(3).ForEach(func(k, v glua.LValue) {
				if n, ok := v.(glua.LNumber); ok {
					limits = append(limits, Limit{Period: k.String(), Max: int64(n)})
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), limitsCallTimeout)
			defer cancel()
			full, err := s.Hit(ctx, key, limits)
			switch {
			case err != nil:
				L.Push(glua.LNil)
				L.Push(glua.LString(err.Error()))
				return 2
			case full == "":
				L.Push(glua.LFalse)
			default:
				L.Push(glua.LString(full))
			}
			return 1
		},
		"acquire": func(L *glua.LState) int {
			s := check(L)
			key := L.CheckString(2)
			max := L.CheckInt64(3)
			st := b.State
			if st == nil || st.Session == nil {
				L.RaiseError("acquire needs a session: call it in preread")
			}
			ctx, cancel := context.WithTimeout(context.Background(), limitsCallTimeout)
			defer cancel()
			release, ok, err := s.Acquire(ctx, key, max)
			if err != nil {
				L.Push(glua.LNil)
				L.Push(glua.LString(err.Error()))
				return 2
			}
			if ok {
				st.OnEnd(release)
			}
			L.Push(glua.LBool(ok))
			return 1
		},
	})
	t := L.NewTable()
	setFuncs(L, t, map[string]glua.LGFunction{
		"store": func(L *glua.LState) int {
			if counters == nil {
				L.Push(glua.LNil)
				L.Push(glua.LString("no counter stores in this process"))
				return 2
			}
			conf := recordToGo(L.CheckTable(1), 2)
			s, err := counters.Store(conf)
			if err != nil {
				L.Push(glua.LNil)
				L.Push(glua.LString(err.Error()))
				return 2
			}
			ud := L.NewUserData()
			ud.Value = s
			L.SetMetatable(ud, storeMT)
			L.Push(ud)
			return 1
		},
		"refuse": func(L *glua.LState) int {
			status := L.CheckInt(1)
			reason := L.OptString(2, "limit")
			s := b.State
			if counters != nil && s != nil && s.Session != nil {
				counters.Refused(s.Plugin, routeLabel(s.Session), reason)
			}
			if s != nil {
				s.Exited = true
			}
			return exitSession(L, s, status, nil)
		},
		"ids": func(L *glua.LState) int {
			s := b.State
			if s == nil || s.Session == nil {
				L.RaiseError("ids needs a session")
			}
			if ids, ok := s.Session.(EntityIDs); ok {
				route, service, _ := ids.IDs()
				for _, id := range []string{route, service} {
					if id != "" {
						L.Push(glua.LString(id))
					} else {
						L.Push(glua.LNil)
					}
				}
				return 2
			}
			route, service := s.Session.Entities()
			for _, e := range []map[string]any{route, service} {
				if id, ok := e["id"].(string); ok {
					L.Push(glua.LString(id))
				} else {
					L.Push(glua.LNil)
				}
			}
			return 2
		},
		"shape": func(L *glua.LState) int {
			opts := L.CheckTable(1)
			s := b.State
			if s == nil || s.Session == nil {
				L.RaiseError("shape needs a session: call it in preread")
			}
			num := func(k string) int64 {
				n, _ := opts.RawGetString(k).(glua.LNumber)
				return int64(n)
			}
			s.Shaping = &Shaping{DownstreamRate: num("downstream_rate"), UpstreamRate: num("upstream_rate"),
				AggregateRate: num("aggregate_rate"), Key: glua.LVAsString(opts.RawGetString("key")), Burst: num("burst")}
			return 0
		},
	})
	L.Push(t)
	return 1
}

// routeLabel is the matched route's name, else its id, for /metrics.
func routeLabel(s Session) string {
	route, _ := s.Entities()
	if name, ok := route["name"].(string); ok && name != "" {
		return name
	}
	id, _ := route["id"].(string)
	return id
}

// OnEnd registers fn to run when the session ends (End).
func (s *State) OnEnd(fn func()) { s.onEnd = append(s.onEnd, fn) }

// End runs what OnEnd registered, once: the runtime calls it when the
// session is over. A nil State has nothing to run.
func (s *State) End() {
	if s == nil {
		return
	}
	fns := s.onEnd
	s.onEnd = nil
	for _, fn := range fns {
		fn()
	}
}

// recordToGo copies the string-keyed scalars of t, and of its records
// down to depth more levels, into a map; other values are left out.
func recordToGo(t *glua.LTable, depth int) map[string]any {
	m := map[string]any{}
	t.ForEach(func(k, v glua.LValue) {
		name, ok := k.(glua.LString)
		if !ok {
			return
		}
		if sub, isTable := v.(*glua.LTable); isTable && depth > 0 {
			m[string(name)] = recordToGo(sub, depth-1)
		} else if x, ok := luaScalar(v); ok {
			m[string(name)] = x
		}
	})
	return m
}
