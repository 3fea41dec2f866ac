package pdk

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// fakeSpan records what a plugin does to a span, as "name: op" lines.
type fakeSpan struct {
	name string
	ops  *[]string
}

func (s fakeSpan) record(f string, a ...any) {
	*s.ops = append(*s.ops, s.name+": "+fmt.Sprintf(f, a...))
}

func (s fakeSpan) SetAttribute(key string, v any) { s.record("set %s=%v (%T)", key, v, v) }
func (s fakeSpan) AddEvent(name string, attrs map[string]any) {
	var kv []string
	for k, v := range attrs {
		kv = append(kv, fmt.Sprintf("%s=%v", k, v))
	}
	sort.Strings(kv)
	s.record("event %s %s", name, strings.Join(kv, ","))
}
func (s fakeSpan) RecordError(msg string) { s.record("error %s", msg) }
func (s fakeSpan) SetStatus(code int)     { s.record("status %d", code) }
func (s fakeSpan) Finish(end time.Time)   { s.record("finish %d", end.UnixNano()) }
func (s fakeSpan) IsRecording() bool      { return true }

type fakeTracing struct {
	ops    []string
	active Span
}

func (f *fakeTracing) StartSpan(name string, parent Span, start time.Time) Span {
	p := "active"
	if parent != nil {
		p = parent.(fakeSpan).name
	}
	f.ops = append(f.ops, fmt.Sprintf("start %s under %s at %d", name, p, start.UnixNano()))
	return fakeSpan{name, &f.ops}
}
func (f *fakeTracing) Active() Span {
	if f.active != nil {
		return f.active
	}
	return fakeSpan{"root", &f.ops}
}
func (f *fakeTracing) SetActive(s Span) { f.active = s }

func TestTracingNoop(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	got := runString(t, e.vm, `
		local s = kong.tracing.start_span("x", { attributes = { a = 1 } })
		s:set_attribute("k", "v"):add_event("e"):record_error("bad"):set_status(2):finish()
		kong.tracing.set_active_span(s)
		return tostring(s:is_recording()) .. " " .. tostring(kong.tracing.active_span():is_recording())`)
	if got != "false false" {
		t.Errorf("untraced spans: %q; want no-op spans that do not record", got)
	}
}

func TestTracingSpans(t *testing.T) {
	e := newEnv(t, PhaseLog, Options{})
	ft := &fakeTracing{}
	e.st.Tracing = ft
	runLua(t, e.vm, `
		local s = kong.tracing.start_span("work", { start_time_ns = 1000, attributes = { n = 2, f = 1.5, ok = true } })
		s:set_attribute("who", "me"):add_event("hit", { n = 1 })
		local child = kong.tracing.start_span("child", { parent = s, start_time_ns = 2000 })
		child:record_error("oops"):set_status(2):finish(3000)
		kong.tracing.set_active_span(s)
		kong.tracing.active_span():set_attribute("on_active", true)
		assert(s:is_recording())
		s:finish(4000)`)
	want := []string{
		"start work under active at 1000",
		"work: set f=1.5 (float64)", "work: set n=2 (int64)", "work: set ok=true (bool)",
		"work: set who=me (string)",
		"work: event hit n=1",
		"start child under work at 2000",
		"child: error oops", "child: status 2", "child: finish 3000",
		"work: set on_active=true (bool)",
		"work: finish 4000",
	}
	// Attributes from a table come in Lua's order: compare them sorted.
	sort.Strings(ft.ops[1:4])
	if strings.Join(ft.ops, "\n") != strings.Join(want, "\n") {
		t.Errorf("span calls:\n%s\nwant:\n%s", strings.Join(ft.ops, "\n"), strings.Join(want, "\n"))
	}
}

// TestTracingProcessSpan: process_span visits the spans kong.tracing
// started, in the log phase only; get_sampling_decision follows the
// parent's and set_should_sample's decision for a traced session.
func TestTracingProcessSpan(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	e.st.Tracing = &fakeTracing{}
	runString(t, e.vm, `kong.tracing.start_span("one"); kong.tracing.start_span("two"); return ""`)
	wantLuaError(t, e.vm, `kong.tracing.process_span(function() end)`, "function cannot be called in preread phase")
	e.st.Phase = PhaseLog
	got := runString(t, e.vm, `
		local seen = {}
		kong.tracing.process_span(function(span, tag) seen[#seen + 1] = tostring(span:is_recording()) .. tag end, "!")
		local a = kong.tracing:get_sampling_decision(nil, 0.5)
		local b = kong.tracing:get_sampling_decision(false)
		kong.tracing:set_should_sample(false)
		local c = kong.tracing:get_sampling_decision(true)
		return table.concat(seen, ",") .. " " .. tostring(a) .. tostring(b) .. tostring(c)`)
	if got != "true!,true! truefalsefalse" {
		t.Errorf("got %q", got)
	}
}
