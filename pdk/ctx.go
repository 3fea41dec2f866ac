package pdk

import (
	"time"

	glua "github.com/yuin/gopher-lua"
)

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

// ngxCtxTable is ngx.ctx, created on first access, with the
// balancer_data SetBalancerData gave.
func (s *State) ngxCtxTable(L *glua.LState) *glua.LTable {
	if s.ngxCtx == nil {
		s.ngxCtx = L.NewTable()
	}
	if s.pendingBalancer != nil {
		s.putBalancerData(L)
	}
	return s.ngxCtx
}

// BalancerData is ngx.ctx.balancer_data as Kong's stream runloop leaves it
// (kong/runloop/handler.lua balancer_prepare, kong/init.lua
// Kong.balancer): where the session connects and how its tries went.
// Empty strings are nil.
type BalancerData struct {
	Scheme, Type, Host string
	// Port is the service's, and once a try was made, the last peer's.
	Port                                              int
	Retries, ConnectTimeout, SendTimeout, ReadTimeout int
	Tries                                             []BalancerTry
	// IP and Hostname are the last try's peer.
	IP, Hostname string
}

// BalancerTry is one entry of balancer_data.tries: a connect attempt.
type BalancerTry struct {
	IP    string
	Port  int
	Start time.Time
	// Latency is how long the balancer took to choose the peer.
	Latency time.Duration
	// Retried marks a try that failed and was retried: state "failed",
	// code 0 (stream has no status per try).
	Retried bool
}

// SetBalancerData gives ngx.ctx.balancer_data for the phase about to run:
// it is written into ngx.ctx when a handler first reads ngx.ctx, or at
// once when ngx.ctx exists. A balancer_data table already there, from an
// earlier phase on the same VM, is updated in place, so references plugins
// kept to it see the tries.
func (s *State) SetBalancerData(L *glua.LState, d BalancerData) {
	s.pendingBalancer = &d
	if s.ngxCtx != nil {
		s.putBalancerData(L)
	}
}

func (s *State) putBalancerData(L *glua.LState) {
	d := s.pendingBalancer
	s.pendingBalancer = nil
	t, ok := s.ngxCtx.RawGetString("balancer_data").(*glua.LTable)
	if !ok {
		t = L.CreateTable(0, 16)
		s.ngxCtx.RawSetString("balancer_data", t)
	}
	s.balancerData = t
	str := func(key, v string) {
		if v != "" {
			t.RawSetString(key, glua.LString(v))
		}
	}
	str("scheme", d.Scheme)
	str("type", d.Type)
	str("host", d.Host)
	str("ip", d.IP)
	str("hostname", d.Hostname)
	t.RawSetString("port", glua.LNumber(d.Port))
	t.RawSetString("retries", glua.LNumber(d.Retries))
	t.RawSetString("connect_timeout", glua.LNumber(d.ConnectTimeout))
	t.RawSetString("send_timeout", glua.LNumber(d.SendTimeout))
	t.RawSetString("read_timeout", glua.LNumber(d.ReadTimeout))
	t.RawSetString("try_count", glua.LNumber(len(d.Tries)))
	t.RawSetString("tries", triesTable(L, d.Tries))
}

// triesTable is balancer_data.tries, with cjson's array_mt as Kong's has,
// so that an empty one encodes as [].
func triesTable(L *glua.LState, tries []BalancerTry) *glua.LTable {
	out := L.CreateTable(len(tries), 0)
	for _, try := range tries {
		t := L.CreateTable(0, 8)
		t.RawSetString("ip", glua.LString(try.IP))
		t.RawSetString("port", glua.LNumber(try.Port))
		t.RawSetString("balancer_start", glua.LNumber(try.Start.UnixMilli()))
		t.RawSetString("balancer_start_ns", glua.LNumber(try.Start.UnixNano()))
		t.RawSetString("balancer_latency", glua.LNumber(try.Latency.Milliseconds()))
		t.RawSetString("balancer_latency_ns", glua.LNumber(try.Latency.Nanoseconds()))
		if try.Retried {
			t.RawSetString("state", glua.LString("failed"))
			t.RawSetString("code", glua.LNumber(0))
		}
		out.Append(t)
	}
	L.SetMetatable(out, arrayMT(L))
	return out
}

// DropBalancerData takes ngx.ctx.balancer_data away again when no other
// value is in the ctx tables, so that it alone does not keep the
// connection on its VM: the runtime gives it again for the next phase.
func (s *State) DropBalancerData() {
	s.pendingBalancer = nil
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

// setBalancerField writes key into ngx.ctx.balancer_data, as Kong's
// kong.service functions write the host and port they set there.
func (s *State) setBalancerField(L *glua.LState, key string, v glua.LValue) {
	if s.ngxCtx == nil && s.pendingBalancer == nil {
		return
	}
	if t, ok := s.ngxCtxTable(L).RawGetString("balancer_data").(*glua.LTable); ok {
		t.RawSetString(key, v)
	}
}
