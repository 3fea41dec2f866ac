package pdk

import glua "github.com/yuin/gopher-lua"

// requestPhases is phases.lua's "request" alias, which has no stream
// phase but log.
var requestPhases = only(PhaseRewrite, PhaseAccess, PhaseBalancer, PhaseResponse, PhaseHeaderFilter,
	PhaseBodyFilter, PhaseLog, PhaseError, PhaseAdminAPI, PhaseClusterListener)

// requestFuncs is the part of kong.request (kong/pdk/request.lua) that
// works in stream; the others read HTTP request data.
var requestFuncs = []Func{
	{"get_port", notIn(PhaseInitWorker), requestGetPort},
	{"get_start_time", requestPhases, requestGetStartTime},
}

func requestGetPort(L *glua.LState, s *State) int {
	v, ok := sessionVar(L, s, "server_port")
	return pushPort(L, v, ok)
}

// requestGetStartTime is the session's start in milliseconds, from the
// log record's started_at.
func requestGetStartTime(L *glua.LState, s *State) int {
	s = sessionState(L, s)
	if rec := s.Session.Serialize(); rec != nil {
		L.Push(glua.LNumber(rec.StartedAt))
	} else {
		L.Push(glua.LNil)
	}
	return 1
}
