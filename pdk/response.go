package pdk

import (
	"strconv"

	glua "github.com/yuin/gopher-lua"
)

// responseFuncs is kong.response in stream: only exit (kong/pdk/response.lua,
// the non-http branch). kong.response.error is left out: its phase mask
// (rewrite, access, admin_api, header_filter) holds no stream phase.
func (p *pdk) responseFuncs() []Func {
	return []Func{
		{"get_status", headerBodyLog, responseGetStatus},
		{"get_source", phaseCheck{set: headerBodyLog.set, ctxArg: true}, responseGetSource},
		{"exit", anyPhase, p.responseExit},
	}
}

// headerBodyLog is response.lua's mask for the getters: log in stream.
var headerBodyLog = only(PhaseResponse, PhaseHeaderFilter, PhaseBodyFilter, PhaseLog, PhaseError, PhaseAdminAPI)

// responseGetStatus is ngx.status: the session status.
func responseGetStatus(L *glua.LState, s *State) int {
	L.Push(glua.LNumber(sessionState(L, s).Session.Status()))
	return 1
}

// responseGetSource answers "exit", "service" or "error" from the given
// ctx's KONG_* flags, or, without one, from the session.
func responseGetSource(L *glua.LState, s *State) int {
	var unexpected, exited, proxied bool
	if ctx, ok := L.Get(1).(*glua.LTable); ok {
		unexpected = glua.LVAsBool(ctx.RawGetString("KONG_UNEXPECTED"))
		exited = glua.LVAsBool(ctx.RawGetString("KONG_EXITED"))
		proxied = glua.LVAsBool(ctx.RawGetString("KONG_PROXIED"))
	} else {
		exited, proxied = s.Exited, s.Proxied
	}
	switch {
	case unexpected:
		L.Push(glua.LString("error"))
	case exited:
		L.Push(glua.LString("exit"))
	case proxied:
		L.Push(glua.LString("service"))
	default:
		L.Push(glua.LString("error"))
	}
	return 1
}

// streamExitCodes are response.lua's VALID_CODES, nginx's stream statuses.
var streamExitCodes = map[int]bool{200: true, 400: true, 403: true, 500: true, 502: true, 503: true}

// responseExit validates as Kong does, then ends the session: the body is
// sent below 400 and logged at err from 400 on (Kong logs it for every
// status >= 400, whatever its doc says). Headers are ignored. Kong has no
// phase check here; outside preread the underlying ngx.exit is refused.
func (p *pdk) responseExit(L *glua.LState, s *State) int {
	n, ok := L.Get(1).(glua.LNumber)
	if !ok {
		L.RaiseError("code must be a number")
	}
	status := int(n)
	if float64(status) != float64(n) || !streamExitCodes[status] {
		L.RaiseError("unacceptable code, only 200, 400, 403, 500, 502 and 503 are accepted")
	}
	var body []byte
	hasBody := false
	switch v := L.Get(2).(type) {
	case *glua.LNilType:
	case glua.LString:
		body, hasBody = []byte(v), true
	case *glua.LTable:
		enc, err := safeConfig().encode(L, v)
		if err != nil {
			L.RaiseError("invalid body: %s", err)
		}
		body, hasBody = enc, true
	default:
		L.RaiseError("body must be a nil, string or table")
	}
	if hasBody && status >= 400 {
		p.log(L, s, LevelErr, "unable to proxy stream connection, status: "+strconv.Itoa(status)+", err: "+string(body))
		body = nil
	}
	if s != nil {
		s.Exited = true // ngx.ctx.KONG_EXITED
	}
	return exitSession(L, s, status, body)
}

// exitSession records the exit and yields the handler's coroutine, which
// the runtime's lua.VM.Run reports as yielded (Kong's coroutine.yield in
// the preread loop). Only preread can end a session this way; elsewhere
// ngx.exit's "API disabled" error is raised.
func exitSession(L *glua.LState, s *State, status int, body []byte) int {
	if s == nil || s.Session == nil {
		L.RaiseError("no request found")
	}
	if s.Phase != PhasePreread {
		L.RaiseError("API disabled in the context of %s", ngxContext(s.Phase))
	}
	s.Session.Exit(status, body)
	return L.Yield()
}

// ngxContext names the stream-lua directive a phase runs in, as its
// "API disabled" errors do.
func ngxContext(p Phase) string {
	switch p {
	case PhaseInitWorker:
		return "init_worker_by_lua*"
	case PhaseCertificate:
		return "ssl_certificate_by_lua*"
	case PhaseBalancer:
		return "balancer_by_lua*"
	case PhaseLog:
		return "log_by_lua*"
	default:
		return p.String()
	}
}
