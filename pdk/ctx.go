package pdk

import glua "github.com/yuin/gopher-lua"

// openCtx installs kong.ctx (kong/pdk/ctx.lua): shared and plugin are
// resolved on each access from the bound State, and are nil outside a
// connection as Kong's are outside a request.
func (p *pdk) openCtx(L *glua.LState, kong *glua.LTable) {
	ctx := L.NewTable()
	mt := L.NewTable()
	mt.RawSetString("__index", L.NewFunction(func(L *glua.LState) int {
		s := p.b.State
		if s == nil {
			L.Push(glua.LNil)
			return 1
		}
		switch L.Get(2).String() {
		case "shared":
			L.Push(s.sharedCtx(L))
		case "plugin":
			L.Push(s.pluginCtx(L))
		default:
			L.Push(glua.LNil)
		}
		return 1
	}))
	L.SetMetatable(ctx, mt)
	kong.RawSetString("ctx", ctx)
}

// sharedCtx is kong.ctx.shared, created on first access.
func (s *State) sharedCtx(L *glua.LState) *glua.LTable {
	if s.shared == nil {
		s.shared = L.NewTable()
	}
	return s.shared
}

// pluginCtx is kong.ctx.plugin of the running plugin, created on first
// access. Kong keys it by the plugin's handler table; the name is the same
// key for one connection.
func (s *State) pluginCtx(L *glua.LState) *glua.LTable {
	t := s.plugins[s.Plugin]
	if t == nil {
		t = L.NewTable()
		if s.plugins == nil {
			s.plugins = map[string]*glua.LTable{}
		}
		s.plugins[s.Plugin] = t
	}
	return t
}

// ngxCtxTable is ngx.ctx, created on first access.
func (s *State) ngxCtxTable(L *glua.LState) *glua.LTable {
	if s.ngxCtx == nil {
		s.ngxCtx = L.NewTable()
	}
	return s.ngxCtx
}

// SetBalancerData sets ngx.ctx.balancer_data, Kong's record of where the
// session connects, on L, the VM the next phase runs on. data has the
// shapes of Session.Serialize; its tries get cjson's array_mt. A table an
// earlier phase left there on this VM is updated in place, so references
// plugins kept to it see the tries.
func (s *State) SetBalancerData(L *glua.LState, data map[string]any) {
	ctx := s.ngxCtxTable(L)
	t, ok := ctx.RawGetString("balancer_data").(*glua.LTable)
	if !ok {
		t = L.NewTable()
		ctx.RawSetString("balancer_data", t)
	}
	fresh := toLua(L, data, arrayMT(L)).(*glua.LTable)
	fresh.ForEach(func(k, v glua.LValue) { t.RawSet(k, v) })
	s.balancerData = t
}

// DropBalancerData removes the ngx.ctx.balancer_data SetBalancerData set
// when no other value is in the ctx tables, so that it alone does not keep
// the connection on its VM: the runtime sets it again for the next phase.
func (s *State) DropBalancerData() {
	if s.ngxCtx == nil || s.balancerData == nil || s.ngxCtx.RawGetString("balancer_data") != s.balancerData {
		return
	}
	s.ngxCtx.RawSetString("balancer_data", glua.LNil)
	if !s.CtxEmpty() {
		s.ngxCtx.RawSetString("balancer_data", s.balancerData)
		return
	}
	s.balancerData = nil
}

// setBalancerField writes key into ngx.ctx.balancer_data when there is one,
// as Kong's kong.service functions write the host and port they set there.
func (s *State) setBalancerField(key string, v glua.LValue) {
	if s.ngxCtx == nil {
		return
	}
	if t, ok := s.ngxCtx.RawGetString("balancer_data").(*glua.LTable); ok {
		t.RawSetString(key, v)
	}
}
