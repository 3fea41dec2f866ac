package pdk

import (
	"fmt"

	glua "github.com/yuin/gopher-lua"
)

// Bounds on what CarryOut moves out of a VM. Beyond them the values stay
// in their VM (the connection is pinned), as for a function value.
const (
	// CarryMaxEntries caps the table entries of all ctx tables together,
	// nested ones included.
	CarryMaxEntries = 4096
	// CarryMaxDepth caps how deep tables nest below a ctx table.
	CarryMaxDepth = 32
	// CarryMaxBytes caps the bytes of all carried strings, keys included.
	CarryMaxBytes = 1 << 20
)

// carriedTable is a Lua table held in Go: its entries in iteration order.
// Keys and values are nil, bool, float64, string or *carriedTable.
// arrayLen is the table's array part, so that the length operator gives
// the same border after the trip even for a table with holes.
type carriedTable struct {
	keys, vals []any
	arrayLen   int
}

// carried is a State's ctx values between two phases, outside any VM.
type carried struct {
	ngx, shared *carriedTable
	plugins     map[string]*carriedTable
}

// carrier converts one State's Lua values to Go. Tables are converted
// once each, so shared references and cycles among the carried tables
// come back as they left.
type carrier struct {
	seen     map[*glua.LTable]*carriedTable
	skip     *glua.LTable // ngx.ctx.balancer_data: given again each phase
	lossy    bool
	entries  int
	bytes    int
	problems []string
}

// CarryOut moves the ctx tables' values (ngx.ctx, kong.ctx.shared,
// kong.ctx.plugin) out of the VM after preread into Go,
// so the next phase may run on any VM: CarryIn puts them into that one.
// ngx.ctx.balancer_data is left behind, since each phase gets it anew.
// When a value cannot be carried (a function, userdata, coroutine, a
// table with a metatable, beyond the Carry* bounds) the State is left as
// it was and the error names the first such value.
func (s *State) CarryOut() error {
	c := &carrier{seen: map[*glua.LTable]*carriedTable{}, skip: s.balancerData}
	out := c.state(s)
	if len(c.problems) > 0 {
		return fmt.Errorf("%s", c.problems[0])
	}
	s.park(out)
	return nil
}

// CarryOutLossy is CarryOut that drops what cannot be carried instead of
// failing, for a connection that may not keep its VM. It returns where
// the dropped values were. Past a bound, every later value is dropped.
func (s *State) CarryOutLossy() (dropped []string) {
	c := &carrier{seen: map[*glua.LTable]*carriedTable{}, skip: s.balancerData, lossy: true}
	s.park(c.state(s))
	return c.problems
}

// CarryIn rebuilds the values CarryOut took in L, the VM the next phase
// runs on. Nothing happens when nothing was carried.
func (s *State) CarryIn(L *glua.LState) {
	cv := s.carried
	if cv == nil {
		return
	}
	s.carried = nil
	made := map[*carriedTable]*glua.LTable{}
	if cv.ngx != nil {
		s.ngxCtx = rebuild(L, cv.ngx, made)
	}
	if cv.shared != nil {
		s.shared = rebuild(L, cv.shared, made)
	}
	if cv.plugins != nil {
		s.plugins = make(map[string]*glua.LTable, len(cv.plugins))
		for name, t := range cv.plugins {
			s.plugins[name] = rebuild(L, t, made)
		}
	}
}

// park drops the State's Lua values, now held in out.
func (s *State) park(out *carried) {
	s.carried = out
	s.ngxCtx, s.shared, s.plugins = nil, nil, nil
	s.balancerData, s.pendingBalancer = nil, nil
	s.route, s.service = nil, nil // kong.router's tables, built again on use
}

func (c *carrier) state(s *State) *carried {
	out := &carried{}
	if s.ngxCtx != nil {
		out.ngx = c.table(s.ngxCtx, "ngx.ctx", 0)
	}
	if s.shared != nil {
		out.shared = c.table(s.shared, "kong.ctx.shared", 0)
	}
	if len(s.plugins) > 0 {
		out.plugins = make(map[string]*carriedTable, len(s.plugins))
		for name, t := range s.plugins {
			out.plugins[name] = c.table(t, fmt.Sprintf("kong.ctx.plugin (%s)", name), 0)
		}
	}
	return out
}

// table converts t; in lossy mode an entry that cannot be carried is
// left out.
func (c *carrier) table(t *glua.LTable, path string, depth int) *carriedTable {
	if ct, ok := c.seen[t]; ok {
		return ct
	}
	ct := &carriedTable{arrayLen: t.Len()}
	c.seen[t] = ct
	t.ForEach(func(k, v glua.LValue) {
		if depth == 0 && v == c.skip && c.skip != nil && path == "ngx.ctx" {
			return
		}
		if !c.lossy && len(c.problems) > 0 {
			return
		}
		at := path + "." + k.String()
		if c.entries++; c.entries > CarryMaxEntries {
			c.problem(at, fmt.Sprintf("more than %d entries in all", CarryMaxEntries))
			return
		}
		gk, ok := c.value(k, at+" (key)", depth+1)
		if !ok {
			return
		}
		gv, ok := c.value(v, at, depth+1)
		if !ok {
			return
		}
		ct.keys = append(ct.keys, gk)
		ct.vals = append(ct.vals, gv)
	})
	return ct
}

// value converts one Lua value; false when it cannot be carried.
func (c *carrier) value(v glua.LValue, path string, depth int) (any, bool) {
	if g, ok := luaScalar(v); ok {
		if str, ok := g.(string); ok {
			if c.bytes += len(str); c.bytes > CarryMaxBytes {
				c.problem(path, fmt.Sprintf("more than %d bytes of strings in all", CarryMaxBytes))
				return nil, false
			}
		}
		return g, true
	}
	t, ok := v.(*glua.LTable)
	switch {
	case !ok:
		c.problem(path, "a "+v.Type().String())
	case t.Metatable != glua.LNil:
		c.problem(path, "a table with a metatable")
	case depth > CarryMaxDepth:
		c.problem(path, fmt.Sprintf("tables nested deeper than %d", CarryMaxDepth))
	default:
		return c.table(t, path, depth), true
	}
	return nil, false
}

func (c *carrier) problem(path, what string) {
	c.problems = append(c.problems, path+" is "+what)
}

func rebuild(L *glua.LState, ct *carriedTable, made map[*carriedTable]*glua.LTable) *glua.LTable {
	if t, ok := made[ct]; ok {
		return t
	}
	t := L.CreateTable(ct.arrayLen, max(0, len(ct.keys)-ct.arrayLen))
	made[ct] = t
	for i, k := range ct.keys {
		v := toValue(L, ct.vals[i], made)
		if n, ok := k.(float64); ok && n >= 1 && int(n) <= ct.arrayLen && float64(int(n)) == n {
			t.RawSetInt(int(n), v)
		} else {
			t.RawSetH(toValue(L, k, made), v)
		}
	}
	return t
}

// toValue is v in L: a scalar as toLua makes it, a table rebuilt.
func toValue(L *glua.LState, v any, made map[*carriedTable]*glua.LTable) glua.LValue {
	if t, ok := v.(*carriedTable); ok {
		return rebuild(L, t, made)
	}
	return toLua(L, v, nil)
}
