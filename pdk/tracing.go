package pdk

import (
	"time"

	glua "github.com/yuin/gopher-lua"
)

// Tracing is a traced session as kong.tracing sees it. The runtime sets
// State.Tracing on the sessions it traces; without it kong.tracing hands
// out no-op spans, as Kong's noop tracer does when tracing is off.
type Tracing interface {
	// StartSpan starts a span at start under parent; when parent is nil,
	// under the span SetActive set, else the running handler's span,
	// else the session's.
	StartSpan(name string, parent Span, start time.Time) Span
	// Active is the span SetActive set, else the session's.
	Active() Span
	SetActive(Span)
}

// Span is a span a plugin holds.
type Span interface {
	// SetAttribute sets key to a string, float64, bool or int64 value; nil
	// is ignored.
	SetAttribute(key string, value any)
	AddEvent(name string, attrs map[string]any)
	RecordError(msg string)
	// SetStatus takes Kong's codes: 0 unset, 1 ok, 2 error.
	SetStatus(code int)
	Finish(end time.Time)
	IsRecording() bool
}

// tracingFuncs is kong.tracing (kong/pdk/tracing.lua), the part a stream
// plugin uses. Unlike Kong's, which returns no-op spans in preread, spans
// work in every phase of a traced session.
func (p *pdk) tracingFuncs() []Func {
	return []Func{
		{"start_span", anyPhase, p.tracingStartSpan},
		{"active_span", anyPhase, p.tracingActiveSpan},
		{"set_active_span", anyPhase, p.tracingSetActiveSpan},
		{"process_span", anyPhase, p.tracingProcessSpan},
		{"set_should_sample", anyPhase, tracingSetShouldSample},
		{"get_sampling_decision", anyPhase, tracingGetSamplingDecision},
	}
}

// tracingProcessSpan implements kong.tracing.process_span(processor, ...):
// processor(span, ...) for each span kong.tracing started in the session,
// in the log phase. Untraced, it does nothing, as Kong's no-op tracer.
func (p *pdk) tracingProcessSpan(L *glua.LState, s *State) int {
	if s == nil || s.Tracing == nil {
		return 0
	}
	checkPhase(L, s.Phase, only(PhaseLog))
	fn, ok := L.Get(1).(*glua.LFunction)
	if !ok {
		L.RaiseError("processor must be a function")
	}
	extra := make([]glua.LValue, 0, L.GetTop())
	for i := 2; i <= L.GetTop(); i++ {
		extra = append(extra, L.Get(i))
	}
	for _, sp := range s.spans {
		L.Push(fn)
		L.Push(p.spanValue(L, sp))
		for _, v := range extra {
			L.Push(v)
		}
		L.Call(1+len(extra), 0)
	}
	return 0
}

// tracingSetShouldSample implements kong.tracing:set_should_sample(bool)
// (callable with or without the colon): the decision
// get_sampling_decision then reports. The session's own spans were
// sampled when it began and stay so.
func tracingSetShouldSample(L *glua.LState, s *State) int {
	if s == nil || s.Tracing == nil {
		return 0
	}
	v := glua.LVAsBool(L.Get(firstArg(L)))
	s.shouldSample = &v
	return 0
}

// firstArg is the index of a method's first argument, for functions Kong
// calls with a colon on the tracer and a dot on the no-op tracer.
func firstArg(L *glua.LState) int {
	if _, self := L.Get(1).(*glua.LTable); self {
		return 2
	}
	return 1
}

// tracingGetSamplingDecision implements
// kong.tracing:get_sampling_decision(parent_should_sample, rate) for a
// session gong's sampler already traced: false when the parent (or
// set_should_sample) said false, else true. Untraced, nothing, as Kong's
// no-op tracer.
func tracingGetSamplingDecision(L *glua.LState, s *State) int {
	if s == nil || s.Tracing == nil {
		return 0
	}
	parent := L.Get(firstArg(L))
	sampled := parent != glua.LFalse && (s.shouldSample == nil || *s.shouldSample)
	L.Push(glua.LBool(sampled))
	return 1
}

// tracingStartSpan implements kong.tracing.start_span(name, options):
// options may give start_time_ns, parent (a span) and attributes.
func (p *pdk) tracingStartSpan(L *glua.LState, s *State) int {
	name := L.CheckString(1)
	opts := L.OptTable(2, nil)
	if s == nil || s.Tracing == nil {
		L.Push(p.spanValue(L, nil))
		return 1
	}
	start := p.opts.Now()
	var parent Span
	var attrs *glua.LTable
	if opts != nil {
		if ns, ok := opts.RawGetString("start_time_ns").(glua.LNumber); ok {
			start = time.Unix(0, int64(ns))
		}
		if ud, ok := opts.RawGetString("parent").(*glua.LUserData); ok {
			parent, _ = ud.Value.(Span)
		}
		attrs, _ = opts.RawGetString("attributes").(*glua.LTable)
	}
	sp := s.Tracing.StartSpan(name, parent, start)
	s.spans = append(s.spans, sp)
	if attrs != nil {
		attrs.ForEach(func(k, v glua.LValue) { sp.SetAttribute(k.String(), fromLua(v)) })
	}
	L.Push(p.spanValue(L, sp))
	return 1
}

// tracingActiveSpan implements kong.tracing.active_span.
func (p *pdk) tracingActiveSpan(L *glua.LState, s *State) int {
	if s == nil || s.Tracing == nil {
		L.Push(p.spanValue(L, nil))
		return 1
	}
	L.Push(p.spanValue(L, s.Tracing.Active()))
	return 1
}

// tracingSetActiveSpan implements kong.tracing.set_active_span.
func (p *pdk) tracingSetActiveSpan(L *glua.LState, s *State) int {
	ud := L.CheckUserData(1)
	if sp, ok := ud.Value.(Span); ok && s != nil && s.Tracing != nil {
		s.Tracing.SetActive(sp)
	}
	return 0
}

const spanMetaKey = "gong.pdk.span"

// spanValue wraps sp (nil: the no-op span) as a Lua span object with
// Kong's span methods.
func (p *pdk) spanValue(L *glua.LState, sp Span) *glua.LUserData {
	mt := registryValue(L, spanMetaKey, func() glua.LValue { return p.spanMeta(L) })
	ud := L.NewUserData()
	if sp != nil {
		ud.Value = sp
	}
	L.SetMetatable(ud, mt)
	return ud
}

// spanMeta is the span objects' metatable; every method returns the span,
// so calls chain, and does nothing on the no-op span.
func (p *pdk) spanMeta(L *glua.LState) *glua.LTable {
	method := func(f func(L *glua.LState, sp Span)) *glua.LFunction {
		return L.NewFunction(func(L *glua.LState) int {
			ud := L.CheckUserData(1)
			if sp, ok := ud.Value.(Span); ok {
				f(L, sp)
			}
			L.Push(ud)
			return 1
		})
	}
	methods := L.NewTable()
	methods.RawSetString("set_attribute", method(func(L *glua.LState, sp Span) {
		sp.SetAttribute(L.CheckString(2), fromLua(L.Get(3)))
	}))
	methods.RawSetString("add_event", method(func(L *glua.LState, sp Span) {
		attrs := map[string]any{}
		if t, ok := L.Get(3).(*glua.LTable); ok {
			t.ForEach(func(k, v glua.LValue) { attrs[k.String()] = fromLua(v) })
		}
		sp.AddEvent(L.CheckString(2), attrs)
	}))
	methods.RawSetString("record_error", method(func(L *glua.LState, sp Span) {
		sp.RecordError(L.ToStringMeta(L.Get(2)).String())
	}))
	methods.RawSetString("set_status", method(func(L *glua.LState, sp Span) {
		sp.SetStatus(L.CheckInt(2))
	}))
	methods.RawSetString("finish", method(func(L *glua.LState, sp Span) {
		end := p.opts.Now()
		if ns, ok := L.Get(2).(glua.LNumber); ok {
			end = time.Unix(0, int64(ns))
		}
		sp.Finish(end)
	}))
	methods.RawSetString("is_recording", L.NewFunction(func(L *glua.LState) int {
		sp, ok := L.CheckUserData(1).Value.(Span)
		L.Push(glua.LBool(ok && sp.IsRecording()))
		return 1
	}))
	mt := L.NewTable()
	mt.RawSetString("__index", methods)
	return mt
}

// fromLua is an attribute value: string, float64 (int64 when whole),
// bool, or nil for other types.
func fromLua(v glua.LValue) any {
	switch v := v.(type) {
	case glua.LString:
		return string(v)
	case glua.LBool:
		return bool(v)
	case glua.LNumber:
		if f := float64(v); f == float64(int64(f)) {
			return int64(f)
		}
		return float64(v)
	}
	return nil
}
