package pdk

import (
	"fmt"
	"math"
	"os"
	"strings"
	"sync"

	glua "github.com/yuin/gopher-lua"
)

// nodeFuncs is kong.node (kong/pdk/node.lua).
func (p *pdk) nodeFuncs() []Func {
	return []Func{
		{"get_id", anyPhase, p.nodeGetID},
		{"get_memory_stats", anyPhase, p.nodeGetMemoryStats},
		{"get_hostname", anyPhase, nodeGetHostname},
	}
}

// nodeGetID returns the node's id: Options.NodeID, else the
// configuration's node_id.
func (p *pdk) nodeGetID(L *glua.LState, _ *State) int {
	id := p.opts.NodeID
	if id == "" {
		id, _ = p.opts.Configuration["node_id"].(string)
	}
	L.Push(glua.LString(id))
	return 1
}

var hostname = sync.OnceValue(func() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
})

func nodeGetHostname(L *glua.LState, _ *State) int {
	L.Push(glua.LString(hostname()))
	return 1
}

// nodeGetMemoryStats reports the shared dictionaries' capacity and use,
// and in workers_lua_vms the Lua VMs' memory of gong's one process (Kong
// lists each worker's, from what its VM reports of itself).
func (p *pdk) nodeGetMemoryStats(L *glua.LState, _ *State) int {
	unit := L.OptString(1, "b")
	scale := L.OptInt(2, 2)
	if _, err := BytesToStr(0, unit, scale); err != nil {
		L.RaiseError("%s", err)
	}
	res := L.NewTable()
	vms := L.NewTable()
	if p.opts.LuaVMsBytes != nil {
		vm := L.NewTable()
		vm.RawSetString("pid", glua.LNumber(os.Getpid()))
		vm.RawSetString("http_allocated_gc", convertBytes(int64(p.opts.LuaVMsBytes()), unit, scale))
		vms.Append(vm)
	}
	res.RawSetString("workers_lua_vms", vms)
	dicts := L.NewTable()
	for _, name := range p.opts.Shared.Names() {
		d := p.opts.Shared.Get(name)
		t := L.NewTable()
		t.RawSetString("capacity", convertBytes(d.Capacity(), unit, scale))
		t.RawSetString("allocated_slabs", convertBytes(d.Capacity()-d.FreeSpace(), unit, scale))
		dicts.RawSetString(name, t)
	}
	res.RawSetString("lua_shared_dicts", dicts)
	L.Push(res)
	return 1
}

func convertBytes(n int64, unit string, scale int) glua.LValue {
	if strings.EqualFold(unit, "b") {
		return glua.LNumber(n)
	}
	s, _ := BytesToStr(n, unit, scale)
	return glua.LString(s)
}

// BytesToStr is kong.tools.string.bytes_to_str: bytes in b (an integer
// string), k, m or g units with scale decimals. string.lua takes it from
// the gong.bytes_to_str module, so there is one implementation.
func BytesToStr(n int64, unit string, scale int) (string, error) {
	if unit == "" || strings.EqualFold(unit, "b") {
		return fmt.Sprintf("%d", n), nil
	}
	if scale < 0 {
		return "", fmt.Errorf("scale must be equal or greater than 0")
	}
	var exp float64
	var suffix string
	switch strings.ToLower(unit) {
	case "k":
		exp, suffix = 10, "KiB"
	case "m":
		exp, suffix = 20, "MiB"
	case "g":
		exp, suffix = 30, "GiB"
	default:
		return "", fmt.Errorf("invalid unit '%s' (expected 'k/K', 'm/M', or 'g/G')", unit)
	}
	return fmt.Sprintf("%.*f %s", scale, float64(n)/math.Pow(2, exp), suffix), nil
}

// openBytesToStr is the gong.bytes_to_str module: BytesToStr for Lua,
// bytes_to_str(bytes, unit, scale) with scale 2 by default.
func openBytesToStr(L *glua.LState) int {
	L.Push(L.NewFunction(func(L *glua.LState) int {
		n := int64(L.CheckNumber(1))
		scale := 2
		if v := L.Get(3); v != glua.LNil {
			f, ok := v.(glua.LNumber)
			if !ok {
				L.RaiseError("scale must be equal or greater than 0")
			}
			scale = int(f)
		}
		s, err := BytesToStr(n, L.OptString(2, ""), scale)
		if err != nil {
			L.RaiseError("%s", err)
		}
		L.Push(glua.LString(s))
		return 1
	}))
	return 1
}

// clusterFuncs is kong.cluster (kong/pdk/cluster.lua). Kong reads the
// cluster id from its database's parameters; gong, without one, reports
// the node id: each gong node is a cluster of its own.
func (p *pdk) clusterFuncs() []Func {
	return []Func{
		{"get_id", anyPhase, p.nodeGetID},
	}
}
