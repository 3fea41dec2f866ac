package stream

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gong-proxy/gong/runtime/balancer"
	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/errlog"
)

// CheckerSet owns the health checkers of the upstreams, across
// generations: a reload that leaves an upstream, its targets and its
// healthchecks unchanged hands the same checker, with its health state, to
// the new balancer; the others are stopped once the new generation serves.
type CheckerSet struct {
	log *slog.Logger

	mu      sync.Mutex // guards the maps
	all     map[string]*balancer.Checker
	used    map[string]bool              // keys the generation being built uses
	pending map[string]*balancer.Checker // checkers it started
	adopted map[string]fed               // checkers it took over, and whom they fed
}

// NewCheckerSet starts an empty set; log receives the checkers' reports.
func NewCheckerSet(log *slog.Logger) *CheckerSet {
	return &CheckerSet{log: log, all: map[string]*balancer.Checker{}}
}

// Begin starts collecting the checkers of a generation being built.
func (cs *CheckerSet) Begin() {
	cs.mu.Lock()
	cs.used, cs.pending, cs.adopted = map[string]bool{}, map[string]*balancer.Checker{}, map[string]fed{}
	cs.mu.Unlock()
}

// get returns the checker for an upstream's balancer over addrs, or nil
// when the upstream has no health checks.
func (cs *CheckerSet) get(u *declarative.Upstream, targets []*declarative.Target, addrs []balancer.Address, b balancer.Balancer) *balancer.Checker {
	cfg := healthConfig(u.Healthchecks)
	if !cfg.Enabled() {
		return nil
	}
	key := checkerKey(u, targets)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.used[key] = true
	if c, ok := cs.all[key]; ok {
		if _, again := cs.adopted[key]; !again {
			prev, prevAddrs := c.Adopt(b, addrs)
			cs.adopted[key] = fed{prev, prevAddrs}
		} else {
			c.Adopt(b, addrs)
		}
		return c
	}
	c := balancer.NewChecker(b, addrs, cfg, printfTo(cs.log, errlog.LevelNotice, "upstream "+u.Name+": "))
	cs.pending[key] = c
	return c
}

// Commit makes the collected checkers current and stops the others; Abort
// drops those a failed build started.
func (cs *CheckerSet) Commit() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for k, c := range cs.all {
		if !cs.used[k] {
			c.Stop()
			delete(cs.all, k)
		}
	}
	for k, c := range cs.pending {
		cs.all[k] = c
	}
	cs.pending, cs.adopted = nil, nil
}

func (cs *CheckerSet) Abort() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range cs.pending {
		c.Stop()
	}
	for k, prev := range cs.adopted {
		cs.all[k].Adopt(prev.b, prev.addrs)
	}
	cs.pending, cs.adopted = nil, nil
}

// StopAll ends every checker when the server ends.
func (cs *CheckerSet) StopAll() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for k, c := range cs.all {
		c.Stop()
		delete(cs.all, k)
	}
}

// fed is the balancer a checker fed before a reload, and its addresses.
type fed struct {
	b     balancer.Balancer
	addrs []balancer.Address
}

// checkerKey identifies an upstream's checking: its id, its healthchecks
// record and its targets. The targets' addresses may change with DNS; the
// checker follows them.
func checkerKey(u *declarative.Upstream, targets []*declarative.Target) string {
	hc, _ := json.Marshal(u.Healthchecks)
	list := make([]string, len(targets))
	for i, t := range targets {
		list[i] = fmt.Sprintf("%s/%d", t.Target, t.Weight)
	}
	slices.Sort(list)
	return u.ID + "|" + string(hc) + "|" + strings.Join(list, ",")
}

// healthConfig reads an upstream's healthchecks for stream: active checks
// run only with type tcp, as in Kong's stream subsystem, or gong's udp.
func healthConfig(h declarative.Healthchecks) balancer.HealthConfig {
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	a, p := h.Active, h.Passive
	var active string
	if a.Type == "tcp" || a.Type == "udp" {
		active = a.Type
	}
	return balancer.HealthConfig{
		Active:              active,
		Send:                []byte(derefOr(a.Send, "")),
		Expect:              []byte(derefOr(a.Expect, "")),
		Timeout:             sec(a.Timeout),
		Concurrency:         a.Concurrency,
		HealthyInterval:     sec(a.Healthy.Interval),
		UnhealthyInterval:   sec(a.Unhealthy.Interval),
		Successes:           a.Healthy.Successes,
		TCPFailures:         a.Unhealthy.TCPFailures,
		Timeouts:            a.Unhealthy.Timeouts,
		PassiveSuccesses:    p.Healthy.Successes,
		PassiveTCPFailures:  p.Unhealthy.TCPFailures,
		PassiveTimeouts:     p.Unhealthy.Timeouts,
		PassiveHTTPFailures: p.Unhealthy.HTTPFailures,
		HealthyStatuses:     p.Healthy.HTTPStatuses,
		UnhealthyStatuses:   p.Unhealthy.HTTPStatuses,
	}
}
