package pdk

import glua "github.com/yuin/gopher-lua"

// nginxFuncs is kong.nginx (kong/pdk/nginx.lua).
func (p *pdk) nginxFuncs() []Func {
	return []Func{
		{"get_subsystem", anyPhase, nginxGetSubsystem},
		{"get_statistics", anyPhase, p.nginxGetStatistics},
	}
}

func nginxGetSubsystem(L *glua.LState, _ *State) int {
	L.Push(glua.LString("stream"))
	return 1
}

// nginxGetStatistics reports the sessions gong has accepted and has in
// progress. The reading, writing and waiting counters and total_requests
// count HTTP requests in nginx, which gong does not serve: they are 0.
func (p *pdk) nginxGetStatistics(L *glua.LState, _ *State) int {
	var st Statistics
	if p.opts.Statistics != nil {
		st = p.opts.Statistics()
	}
	t := L.CreateTable(0, 7)
	for k, v := range map[string]int64{
		"connections_active": st.Active, "connections_reading": 0, "connections_writing": 0,
		"connections_waiting": 0, "connections_accepted": st.Accepted, "connections_handled": st.Accepted,
		"total_requests": 0,
	} {
		t.RawSetString(k, glua.LNumber(v))
	}
	L.Push(t)
	return 1
}
