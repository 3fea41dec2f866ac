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
		s.putTiming()
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
	s.lastBalancer = &d
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
		try.fields(
			func(k, v string) { t.RawSetString(k, glua.LString(v)) },
			func(k string, n int64) { t.RawSetString(k, glua.LNumber(n)) })
		out.Append(t)
	}
	L.SetMetatable(out, arrayMT(L))
	return out
}

// fields gives the try's members of balancer_data.tries, its strings to
// str and its numbers to num: typed, so that gong.log_record writes them
// without boxing each into a Lua value.
func (try BalancerTry) fields(str func(key, v string), num func(key string, v int64)) {
	str("ip", try.IP)
	num("port", int64(try.Port))
	num("balancer_start", try.Start.UnixMilli())
	num("balancer_start_ns", try.Start.UnixNano())
	num("balancer_latency", try.Latency.Milliseconds())
	num("balancer_latency_ns", try.Latency.Nanoseconds())
	if try.Retried {
		str("state", "failed")
		num("code", 0)
	}
}

// DropBalancerData takes ngx.ctx.balancer_data and the KONG_* timing
// values away again when no other value is in the ctx tables, so that they
// alone do not keep the connection on its VM: the runtime gives them again
// for the next phase.
func (s *State) DropBalancerData() {
	s.pendingBalancer = nil
	if s.ngxCtx == nil {
		return
	}
	var kept []glua.LValue
	keys := append([]string{"balancer_data"}, timingKeys...)
	for _, k := range keys {
		kept = append(kept, s.ngxCtx.RawGetString(k))
		s.ngxCtx.RawSetString(k, glua.LNil)
	}
	if bd := kept[0]; bd != glua.LNil && bd != s.balancerData || !s.CtxEmpty() {
		for i, k := range keys {
			s.ngxCtx.RawSetString(k, kept[i])
		}
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

// Timing is when a session's runloop steps happened. Kong's stream runloop
// records them in ngx.ctx as KONG_* values (kong/init.lua Kong.preread,
// Kong.balancer, Kong.log); the PDK derives those values from it, and from
// the balancer tries, only when a handler reads ngx.ctx.
type Timing struct {
	// Start is the session's start, ngx.req.start_time; the runtime sets it.
	Start time.Time
	// PrereadStart, PrereadEnd and LogStart are set by Begin and
	// EndPreread.
	PrereadStart, PrereadEnd, LogStart time.Time
}

// Begin records that phase starts at at, for the KONG_* timing values, and
// refreshes them in an ngx.ctx that exists already. The runtime calls it
// once per phase, before the first handler.
func (s *State) Begin(phase Phase, at time.Time) {
	switch phase {
	case PhasePreread:
		s.Timing.PrereadStart = at
	case PhaseLog:
		s.Timing.LogStart = at
		if s.Timing.PrereadStart.IsZero() && !s.Exited {
			// No preread phase ran (no handler has one): the session went
			// on to the balancer, as Kong's does after its preread.
			s.Proxied = s.hasService()
		}
	}
	if s.ngxCtx != nil {
		s.putTiming()
	}
}

// EndPreread records the end of a preread phase after which the session
// goes on to the balancer (no handler failed or ended it): from then on
// kong.response.get_source answers "service" (KONG_PROXIED), as Kong's
// does even when the balancer then fails.
func (s *State) EndPreread(at time.Time) {
	s.Timing.PrereadEnd = at
	s.Proxied = s.hasService()
	if s.ngxCtx != nil {
		s.putTiming()
	}
}

func (s *State) hasService() bool {
	if s.Session == nil {
		return false
	}
	if ids, ok := s.Session.(EntityIDs); ok {
		_, _, has := ids.IDs()
		return has
	}
	_, service := s.Session.Entities()
	return service != nil
}

// timingKeys are the ngx.ctx keys putTiming may write, which
// DropBalancerData takes away again.
var timingKeys = []string{"KONG_PROCESSING_START", "KONG_PREREAD_START", "KONG_PREREAD_ENDED_AT", "KONG_PREREAD_TIME",
	"KONG_BALANCER_START", "KONG_BALANCER_ENDED_AT", "KONG_BALANCER_TIME", "KONG_PROXY_LATENCY",
	"KONG_RESPONSE_LATENCY", "KONG_LOG_START", "KONG_LOG_START_NS", "KONG_PROXIED"}

// putTiming writes the KONG_* values known so far into ngx.ctx.
func (s *State) putTiming() {
	s.timing(func(k string, v glua.LValue) { s.ngxCtx.RawSetString(k, v) })
}

// timing gives the KONG_* values known so far to put, in Kong's
// units (integer milliseconds since the epoch, nanoseconds for
// KONG_LOG_START_NS) and with its invariants: PROCESSING_START <=
// PREREAD_START <= PREREAD_ENDED_AT <= BALANCER_START <=
// BALANCER_ENDED_AT <= LOG_START, PROXY_LATENCY = BALANCER_ENDED_AT -
// PROCESSING_START.
func (s *State) timing(put func(key string, v glua.LValue)) {
	t := s.Timing
	if t.Start.IsZero() {
		return
	}
	set := func(k string, v int64) { put(k, glua.LNumber(v)) }
	start := t.Start.UnixMilli()
	set("KONG_PROCESSING_START", start)
	prereadStart, prereadEnd := t.PrereadStart, t.PrereadEnd
	if prereadStart.IsZero() && !t.LogStart.IsZero() {
		prereadStart = t.Start // no preread phase ran
	}
	if prereadStart.IsZero() {
		return
	}
	set("KONG_PREREAD_START", prereadStart.UnixMilli())
	var tries []BalancerTry
	if s.lastBalancer != nil {
		tries = s.lastBalancer.Tries
	}
	if prereadEnd.IsZero() && !t.LogStart.IsZero() {
		// Kong backfills the end in the log phase: the balancer's start,
		// or the log's.
		prereadEnd = t.LogStart
		if len(tries) > 0 {
			prereadEnd = tries[0].Start
		}
	}
	if prereadEnd.IsZero() {
		return
	}
	set("KONG_PREREAD_ENDED_AT", prereadEnd.UnixMilli())
	set("KONG_PREREAD_TIME", prereadEnd.UnixMilli()-prereadStart.UnixMilli())
	var latency int64 = -1
	if len(tries) > 0 {
		last := tries[len(tries)-1]
		b0, b1 := tries[0].Start.UnixMilli(), last.Start.Add(last.Latency).UnixMilli()
		set("KONG_BALANCER_START", b0)
		set("KONG_BALANCER_ENDED_AT", b1)
		set("KONG_BALANCER_TIME", b1-b0)
		latency = b1 - start
		set("KONG_PROXY_LATENCY", latency)
	}
	if s.Proxied {
		put("KONG_PROXIED", glua.LTrue)
	}
	if t.LogStart.IsZero() {
		if s.Exited {
			set("KONG_RESPONSE_LATENCY", prereadEnd.UnixMilli()-start)
		}
		return
	}
	set("KONG_LOG_START", t.LogStart.UnixMilli())
	set("KONG_LOG_START_NS", t.LogStart.UnixNano())
	switch {
	case s.Proxied && latency < 0:
		set("KONG_PROXY_LATENCY", t.LogStart.UnixMilli()-start)
	case !s.Proxied:
		set("KONG_RESPONSE_LATENCY", prereadEnd.UnixMilli()-start)
	}
}

// timingLatency is kongLatency for a State whose ngx.ctx was not made
// yet, so no plugin changed its values: computed without making it.
func (s *State) timingLatency() int64 {
	var proxy, response glua.LValue
	s.timing(func(k string, v glua.LValue) {
		switch k {
		case "KONG_PROXY_LATENCY":
			proxy = v
		case "KONG_RESPONSE_LATENCY":
			response = v
		}
	})
	for _, v := range []glua.LValue{proxy, response} {
		if n, isNum := v.(glua.LNumber); isNum {
			return int64(n)
		}
	}
	return 0
}

// kongLatency is the log record's latencies.kong (kong/pdk/log.lua):
// KONG_PROXY_LATENCY, else KONG_RESPONSE_LATENCY, else 0; ok is false
// when the runtime gave no Timing.
func (s *State) kongLatency() (ms int64, ok bool) {
	if s.Timing.Start.IsZero() || s.ngxCtx == nil {
		return 0, false
	}
	for _, k := range []string{"KONG_PROXY_LATENCY", "KONG_RESPONSE_LATENCY"} {
		if v, isNum := s.ngxCtx.RawGetString(k).(glua.LNumber); isNum {
			return int64(v), true
		}
	}
	return 0, true
}
