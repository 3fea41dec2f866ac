package runloop

import (
	"context"
	"fmt"
	"time"

	"github.com/gong-proxy/gong/pdk"
	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/errlog"
	"github.com/gong-proxy/gong/runtime/limits"
	"github.com/gong-proxy/gong/runtime/stream"
	"github.com/gong-proxy/gong/tlsmgr"
)

var (
	_ stream.Hooks = (*Plugins)(nil)
	_ stream.Meter = (*limits.Meter)(nil)
)

// routeRuns are the plugins that run for a route's sessions, in order
// (first the preread handlers that run in Go, native.go, then the Lua
// ones), and the route and its service as plugins see them
// (Session.Entities), made once per generation: sessions share these maps
// and never change them.
type routeRuns struct {
	native         []*nativeRun
	preread, log   []pluginRun
	route, service map[string]any
}

// Bind prepares the set for the entities of its generation, before any
// VM is leased: the configurations each plugin's configure handler gets,
// the consumers kong.client.load_consumer finds, and the plugins that
// apply to each route and to sessions no route matched (the plugins
// iterator).
func (ps *Plugins) Bind(d *declarative.Config) {
	ps.handlerConfs = make(map[string]*handlerConf, len(d.Plugins))
	for _, p := range d.Plugins {
		if p.ID != "" {
			ps.handlerConfs[p.ID] = newHandlerConf(p.HandlerConfig())
		}
	}
	global := ps.collect(d.Plugins, "", "")
	ps.globalLog = ps.implementing(global, pdk.PhaseLog)
	ps.certificate = ps.implementing(global, pdk.PhaseCertificate)
	ps.consumers = d.Consumers
	ps.configs = map[string][]map[string]any{}
	for _, p := range d.Plugins {
		if p.Enabled && p.Stream() {
			ps.configs[p.Name] = append(ps.configs[p.Name], p.Config)
		}
	}
	services := make(map[string]map[string]any, len(d.Services))
	for _, svc := range d.Services {
		services[svc.ID] = entityMap(svc)
	}
	ps.routes = map[string]routeRuns{}
	natives := map[string]*nativeRun{}
	for _, r := range d.Routes {
		runs := ps.collect(d.Plugins, r.ID, derefOr(r.Service, ""))
		native, preread := ps.natives(ps.implementing(runs, pdk.PhasePreread), natives)
		ps.routes[r.ID] = routeRuns{native: native, preread: preread, log: ps.implementing(runs, pdk.PhaseLog),
			route: entityMap(r), service: services[derefOr(r.Service, "")]}
	}
}

// Preread implements stream.Hooks: the route's preread handlers. done
// reports that the session ended there: an exit, or an error (status
// 500, as in Kong).
func (ps *Plugins) Preread(s *stream.Session) (status int, done bool) {
	rr := ps.routes[s.Route().Decl.ID]
	runs := rr.preread
	if len(runs) == 0 && len(rr.native) == 0 {
		return 0, false
	}
	cx := sessionOf(s, ps)
	if len(rr.native) > 0 {
		cx.st.Begin(pdk.PhasePreread, time.Now())
		for _, n := range rr.native {
			if status, done := n.preread(cx); done {
				cx.st.Exited = true
				return status, true
			}
		}
		if len(runs) == 0 {
			cx.st.EndPreread(time.Now())
			return 0, false
		}
	}
	err := cx.run(pdk.PhasePreread, runs)
	if cx.st.Upstream != (pdk.UpstreamChange{}) {
		s.SetService(stream.ServiceChange(cx.st.Upstream))
	}
	if err != nil {
		return stream.StatusInternalError, true
	}
	if !cx.exited {
		cx.shape()
		return 0, false
	}
	if len(cx.exitBody) > 0 {
		s.WriteClient(cx.exitBody)
	}
	return cx.exitStatus, true
}

// NoPlugins implements stream.Hooks: no plugin handler runs for the
// route's sessions (nil: for sessions no route matched).
func (ps *Plugins) NoPlugins(r *stream.Route) bool {
	if r == nil {
		return len(ps.globalLog) == 0
	}
	rr := ps.routes[r.Decl.ID]
	return len(rr.native) == 0 && len(rr.preread) == 0 && len(rr.log) == 0
}

// shape paces the session's relay as bandwidth-limit asked, its share of
// an aggregate rate given back when the session ends.
func (cx *session) shape() {
	if cx.st.Shaping == nil || cx.ps.shaper == nil {
		return
	}
	down, up, release := cx.ps.shaper.Session(*cx.st.Shaping)
	cx.st.OnEnd(release)
	cx.s.SetMeters(meter(down), meter(up))
}

// meter is m as the engine takes it: a nil m is no Meter at all.
func meter(m *limits.Meter) stream.Meter {
	if m == nil {
		return nil
	}
	return m
}

// Log implements stream.Hooks: the log handlers of the plugins that saw
// the session, or the global ones when no route matched. Afterwards, what
// plugins held for the session (limit-conn's count) is given back.
func (ps *Plugins) Log(s *stream.Session) {
	cx, _ := s.HookData.(*session)
	if cx != nil {
		defer cx.st.End()
	}
	runs := ps.globalLog
	if r := s.Route(); r != nil {
		runs = ps.routes[r.Decl.ID].log
	}
	switch {
	case len(runs) > 0:
		sessionOf(s, ps).run(pdk.PhaseLog, runs)
	case cx != nil && cx.vm != nil:
		ps.pool.Put(cx.vm)
		cx.vm = nil
		cx.unpin()
	}
}

// run runs one phase of the session's plugins. The VM a phase borrows
// goes back to the pool afterwards: values the plugins left in kong.ctx
// or ngx.ctx wait for the log phase in Go, or, when they cannot leave
// the VM, the session keeps it (park). It reports a handler error,
// logged here.
func (cx *session) run(phase pdk.Phase, runs []pluginRun) error {
	ps := cx.ps
	vm := cx.vm
	if vm == nil {
		vm = ps.pool.TryGet()
	}
	if vm == nil {
		ctx, cancel := context.WithTimeout(context.Background(), phaseTimeout)
		var err error
		vm, err = ps.pool.Get(ctx)
		cancel()
		if err != nil {
			cx.s.Log(errlog.LevelError, fmt.Sprintf("no Lua VM for the %s phase: %v", phase, err))
			return err
		}
	}
	cx.st.CarryIn(vm.L)
	if d := cx.balancerData(); d != nil {
		cx.st.SetBalancerData(vm.L, *d)
	}
	cx.st.Begin(phase, time.Now())
	err := ps.run(vm, cx.st, phase, runs, func() bool { return cx.exited }, cx.s.Trace())
	if err != nil {
		cx.s.Log(errlog.LevelError, err.Error())
	}
	cx.vm = nil
	if phase == pdk.PhasePreread {
		if err == nil && !cx.exited {
			cx.st.EndPreread(time.Now())
		}
		cx.st.DropBalancerData()
	}
	switch {
	case err != nil && isVMFailure(err):
		ps.pool.Discard(vm)
	case phase == pdk.PhasePreread && !cx.st.CtxEmpty() && cx.park():
		cx.vm = vm
	default:
		ps.pool.Put(vm)
	}
	if cx.vm == nil {
		cx.unpin()
	}
	return err
}

// CertificateHook runs the global plugins' certificate handlers during a
// handshake, as Kong's ssl_certificate phase does (no route is known yet,
// so only global plugins run); nil when none has one. An error fails the
// handshake. The certificate is still chosen by the lookup that follows.
func (ps *Plugins) CertificateHook() tlsmgr.CertificateHook {
	if len(ps.certificate) == 0 {
		return nil
	}
	return ps.certificateHook
}
