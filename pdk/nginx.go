package pdk

import glua "github.com/yuin/gopher-lua"

// nginxFuncs is kong.nginx (kong/pdk/nginx.lua), without get_statistics.
var nginxFuncs = []Func{
	{"get_subsystem", anyPhase, nginxGetSubsystem},
}

func nginxGetSubsystem(L *glua.LState, _ *State) int {
	L.Push(glua.LString("stream"))
	return 1
}
