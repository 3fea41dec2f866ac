package pdk

import glua "github.com/yuin/gopher-lua"

// nodeFuncs is kong.node (kong/pdk/node.lua), the part a stream plugin
// needs.
func (p *pdk) nodeFuncs() []Func {
	return []Func{
		{"get_id", anyPhase, p.nodeGetID},
	}
}

// nodeGetID returns the node_id of the configuration; the runtime fills it
// with the node's UUID.
func (p *pdk) nodeGetID(L *glua.LState, _ *State) int {
	id, _ := p.opts.Configuration["node_id"].(string)
	L.Push(glua.LString(id))
	return 1
}
