package pdk

import glua "github.com/yuin/gopher-lua"

// pluginFuncs is kong.plugin (kong/pdk/plugin.lua).
var pluginFuncs = []Func{
	{"get_id", anyPhase, pluginGetID},
}

// pluginGetID returns the running plugin instance's id, nil outside a
// handler.
func pluginGetID(L *glua.LState, s *State) int {
	if s == nil || s.PluginID == "" {
		L.Push(glua.LNil)
		return 1
	}
	L.Push(glua.LString(s.PluginID))
	return 1
}
