package pdk

import (
	"os"

	glua "github.com/yuin/gopher-lua"
)

// nodeFuncs is kong.node (kong/pdk/node.lua), the part a stream plugin
// needs.
func (p *pdk) nodeFuncs() []Func {
	return []Func{
		{"get_id", anyPhase, p.nodeGetID},
		{"get_hostname", anyPhase, nodeGetHostname},
	}
}

// nodeGetID returns the node_id of the configuration; the runtime fills it
// with the node's UUID.
func (p *pdk) nodeGetID(L *glua.LState, _ *State) int {
	id, _ := p.opts.Configuration["node_id"].(string)
	L.Push(glua.LString(id))
	return 1
}

// nodeGetHostname implements kong.node.get_hostname: the host's name.
func nodeGetHostname(L *glua.LState, _ *State) int {
	name, err := os.Hostname()
	if err != nil {
		L.RaiseError("could not get hostname: %s", err)
	}
	L.Push(glua.LString(name))
	return 1
}
