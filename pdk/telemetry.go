package pdk

import glua "github.com/yuin/gopher-lua"

// telemetryFuncs is kong.telemetry (kong/pdk/telemetry.lua). Its log
// entries go to the OpenTelemetry plugin's log export, which gong does not
// have: after Kong's argument checks it answers as Kong does when that
// export is off.
var telemetryFuncs = []Func{
	{"log", anyPhase, telemetryLog},
}

func telemetryLog(L *glua.LState, _ *State) int {
	fail := func(msg string) int {
		L.Push(glua.LNil)
		L.Push(glua.LString(msg))
		return 2
	}
	if L.Get(1).Type() != glua.LTString {
		return fail("plugin_name must be a string")
	}
	if L.Get(2).Type() != glua.LTTable {
		return fail("plugin_config must be a table")
	}
	if L.Get(3).Type() != glua.LTString {
		return fail("message_type must be a string")
	}
	if m := L.Get(4); m != glua.LNil && m.Type() != glua.LTString {
		return fail("message must be a string")
	}
	if a := L.Get(5); a != glua.LNil && a.Type() != glua.LTTable {
		return fail("attributes must be a table")
	}
	return fail("Telemetry logging is disabled: log entry will not be recorded. " +
		"Ensure the OpenTelemetry plugin is correctly configured to report logs in order to use this feature.")
}
