package pdk

import (
	"strings"

	glua "github.com/yuin/gopher-lua"
)

// Phase is one of Kong's PDK phases, with the bit values of
// kong/pdk/private/phases.lua (the commented-out init, set, content and timer
// bits are not phases there either).
type Phase uint32

const (
	PhaseInitWorker      Phase = 0x00000001
	PhaseCertificate     Phase = 0x00000002
	PhaseRewrite         Phase = 0x00000010
	PhaseAccess          Phase = 0x00000020
	PhaseBalancer        Phase = 0x00000040
	PhaseResponse        Phase = 0x00000080
	PhaseClusterListener Phase = 0x00000100
	PhaseHeaderFilter    Phase = 0x00000200
	PhaseBodyFilter      Phase = 0x00000400
	PhaseLog             Phase = 0x00002000
	PhasePreread         Phase = 0x00004000
	PhaseError           Phase = 0x01000000
	PhaseAdminAPI        Phase = 0x10000000
)

var phaseNames = map[Phase]string{
	PhaseInitWorker:      "init_worker",
	PhaseCertificate:     "certificate",
	PhaseRewrite:         "rewrite",
	PhaseAccess:          "access",
	PhaseBalancer:        "balancer",
	PhaseResponse:        "response",
	PhaseClusterListener: "cluster_listener",
	PhaseHeaderFilter:    "header_filter",
	PhaseBodyFilter:      "body_filter",
	PhaseLog:             "log",
	PhasePreread:         "preread",
	PhaseError:           "error",
	PhaseAdminAPI:        "admin_api",
}

// String returns Kong's name of p, or "'unknown phase'" as phases.lua does
// for a value it has no name for.
func (p Phase) String() string {
	if n, ok := phaseNames[p]; ok {
		return n
	}
	return "'unknown phase'"
}

// PhaseSet is a mask of phases, as built by phases.lua's new(...).
type PhaseSet uint32

// Phases returns the set holding ps.
func Phases(ps ...Phase) PhaseSet {
	var s PhaseSet
	for _, p := range ps {
		s |= PhaseSet(p)
	}
	return s
}

// Has reports whether p is in s.
func (s PhaseSet) Has(p Phase) bool { return s&PhaseSet(p) != 0 }

// Names lists the named phases of s in bit order, as get_phases_names does
// (bits 0 to 29).
func (s PhaseSet) Names() []string {
	var names []string
	for i := 0; i < 30; i++ {
		p := Phase(1) << i
		if s.Has(p) {
			if n, ok := phaseNames[p]; ok {
				names = append(names, n)
			}
		}
	}
	return names
}

// String joins Names with ", ", the form of Kong's phase errors.
func (s PhaseSet) String() string { return strings.Join(s.Names(), ", ") }

// phaseCheck is the contract of one PDK function: check_phase(set),
// check_not_phase(set) when except is true, or no check when set is zero.
type phaseCheck struct {
	set    PhaseSet
	except bool
	// ctxArg skips the check when the first argument is a table: the
	// explicit ctx kong.response.get_source accepts.
	ctxArg bool
}

// only is phases.lua check_phase.
func only(ps ...Phase) phaseCheck { return phaseCheck{set: Phases(ps...)} }

// notIn is phases.lua check_not_phase.
func notIn(ps ...Phase) phaseCheck { return phaseCheck{set: Phases(ps...), except: true} }

// anyPhase is a function without phase check ("n/c").
var anyPhase = phaseCheck{}

// String describes c for the surface golden.
func (c phaseCheck) String() string {
	switch {
	case c.set == 0:
		return "any"
	case c.except:
		return "not: " + c.set.String()
	case c.ctxArg:
		return "only: " + c.set.String() + " (any with a ctx argument)"
	default:
		return "only: " + c.set.String()
	}
}

// checkPhase raises Kong's phase errors (kong/pdk/private/phases.lua) at the
// calling Lua line; current is the bound State's phase, zero when none.
func checkPhase(L *glua.LState, current Phase, c phaseCheck) {
	if c.set == 0 {
		return
	}
	if current == 0 {
		if c.except {
			L.RaiseError("no phase in ngx.ctx.KONG_PHASE")
		}
		L.RaiseError("no phase in ngx.ctx.KONG_PHASE, (need one of %s)", c.set)
	}
	in := c.set.Has(current)
	switch {
	case !c.except && !in:
		L.RaiseError("function cannot be called in %s phase (only in: %s)", current, c.set)
	case c.except && in:
		L.RaiseError("function cannot be called in %s phase (can be called in any phases except: %s)", current, c.set)
	}
}

// ngxPhase is ngx.get_phase's name for a Kong phase in the stream subsystem.
func ngxPhase(p Phase) string {
	switch p {
	case 0:
		return "init"
	case PhaseCertificate:
		return "ssl_cert"
	default:
		return p.String()
	}
}
