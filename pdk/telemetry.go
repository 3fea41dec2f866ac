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
	if L.Get(1).Type() != glua.LTString {
		return pushErr(L, "plugin_name must be a string")
	}
	if L.Get(2).Type() != glua.LTTable {
		return pushErr(L, "plugin_config must be a table")
	}
	if L.Get(3).Type() != glua.LTString {
		return pushErr(L, "message_type must be a string")
	}
	if m := L.Get(4); m != glua.LNil && m.Type() != glua.LTString {
		return pushErr(L, "message must be a string")
	}
	if a := L.Get(5); a != glua.LNil && a.Type() != glua.LTTable {
		return pushErr(L, "attributes must be a table")
	}
	return pushErr(L, "Telemetry logging is disabled: log entry will not be recorded. "+
		"Ensure the OpenTelemetry plugin is correctly configured to report logs in order to use this feature.")
}
