package runloop

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/gong-proxy/gong/runtime/errlog"
)

// pins bounds the VMs sessions keep from preread to log because their
// ctx values cannot leave the VM (lua_max_pinned_vms).
type pins struct {
	max  int64
	held atomic.Int64
}

// take reserves a pin; false when all max are held.
func (p *pins) take() bool {
	if p.held.Add(1) > p.max {
		p.held.Add(-1)
		return false
	}
	return true
}

func (p *pins) release() { p.held.Add(-1) }

// PinnedVMs counts the VMs sessions keep between preread and log.
func (ps *Plugins) PinnedVMs() int { return int(ps.pins.held.Load()) }

// park decides, after preread left values in kong.ctx or ngx.ctx, where
// they wait for the log phase: in Go (the VM goes back to the pool), or,
// when they cannot leave the VM (a function, userdata, a table with a
// metatable, past the carry bounds), in the VM, pinned to the session
// while fewer than lua_max_pinned_vms are. Past that bound the session
// keeps its plain values and loses the others, with a warning: the
// connection goes on. It reports whether the session keeps vm.
func (cx *session) park() bool {
	err := cx.st.CarryOut()
	if err == nil {
		return false
	}
	if cx.ps.pins.take() {
		cx.pinned = true
		return true
	}
	dropped := cx.st.CarryOutLossy()
	cx.s.Log(errlog.LevelWarn, fmt.Sprintf("lua_max_pinned_vms (%d) reached: values that cannot leave their Lua VM were dropped before the log phase: %s",
		cx.ps.pins.max, strings.Join(dropped, "; ")))
	return false
}

// unpin gives back the session's pin, once its VM returned to the pool.
func (cx *session) unpin() {
	if cx.pinned {
		cx.pinned = false
		cx.ps.pins.release()
	}
}
