package pdk

import glua "github.com/yuin/gopher-lua"

// tableFuncs is kong.table (kong/pdk/table.lua): no phase checks.
var tableFuncs = []Func{
	{"new", anyPhase, tableNew},
	{"clear", anyPhase, tableClear},
	{"merge", anyPhase, tableMerge},
}

// tableNew ignores the size hints beyond a bound, as table.new's shim does.
func tableNew(L *glua.LState, _ *State) int {
	narr, nrec := min(L.OptInt(1, 0), 1024), min(L.OptInt(2, 0), 1024)
	L.Push(L.CreateTable(max(narr, 0), max(nrec, 0)))
	return 1
}

// tableClear empties t in place, keeping its identity and metatable.
func tableClear(L *glua.LState, _ *State) int {
	t := L.CheckTable(1)
	var keys []glua.LValue
	t.ForEach(func(k, _ glua.LValue) { keys = append(keys, k) })
	for _, k := range keys {
		t.RawSet(k, glua.LNil)
	}
	return 0
}

// tableMerge is a shallow merge into a new table, t2 winning; either may
// be nil.
func tableMerge(L *glua.LState, _ *State) int {
	merged := L.NewTable()
	for i := 1; i <= 2; i++ {
		if t, ok := L.Get(i).(*glua.LTable); ok {
			t.ForEach(func(k, v glua.LValue) { merged.RawSet(k, v) })
		}
	}
	L.Push(merged)
	return 1
}
