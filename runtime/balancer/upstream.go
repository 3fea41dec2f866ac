package balancer

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Target is an upstream's target: "host:port" with its weight.
type Target struct {
	Name   string // as configured, "host:port"
	Host   string
	Port   int
	Weight int
	// UseSRVName makes the name of an SRV record's target, not the
	// target's host, the host of its addresses (upstream use_srv_name).
	UseSRVName bool
}

// Expand resolves a target into addresses as Kong's balancer does: an
// address answer gives one address per IP, sorted, each with the
// target's port and weight; an SRV answer gives the records of the lowest
// priority, each with its own port (the target's when 0) and weight
// (0 counts as 1), its target name resolved to its addresses, and that
// name as their host with UseSRVName. It also
// says when to resolve the target again (zero: never, for an IP or the
// hosts file).
func (r *Resolver) Expand(ctx context.Context, t Target, fresh bool) ([]Address, time.Time, error) {
	ans, err := r.Resolve(ctx, t.Host, fresh)
	if err != nil {
		return nil, time.Time{}, err
	}
	host := t.Host
	if _, err := netip.ParseAddr(host); err == nil {
		host = ""
	}
	var out []Address
	refresh := ans.Refresh
	add := func(recs []Record, host string, port, weight int) {
		for _, rec := range recs {
			out = append(out, Address{Addr: netip.AddrPortFrom(rec.Addr, uint16(port)), Weight: weight, Host: host, Target: t.Name})
		}
	}
	if !ans.SRV {
		add(ans.Records, host, t.Port, t.Weight)
	} else {
		best := slices.MinFunc(ans.Records, func(a, b Record) int { return cmp.Compare(a.Priority, b.Priority) }).Priority
		var last error
		for _, rec := range ans.Records {
			if rec.Priority != best {
				continue
			}
			sub, err := r.Resolve(ctx, rec.Target, fresh)
			if err != nil || sub.SRV {
				last = err
				continue
			}
			if !sub.Refresh.IsZero() && sub.Refresh.Before(refresh) {
				refresh = sub.Refresh
			}
			port := rec.Port
			if port == 0 {
				port = t.Port
			}
			srvHost := host
			if t.UseSRVName {
				srvHost = strings.TrimSuffix(rec.Target, ".")
			}
			add(sub.Records, srvHost, port, max(rec.Weight, 1))
		}
		if len(out) == 0 && last != nil {
			return nil, time.Time{}, last
		}
	}
	slices.SortFunc(out, func(a, b Address) int { return a.Addr.Compare(b.Addr) })
	return out, refresh, nil
}

// Upstream keeps the balancer of an upstream's targets current: targets
// with host names are resolved again when their answers expire (or, after
// a failure, when the resolver's backoff allows), and the balancer is
// rebuilt when their addresses change. A target that no longer resolves
// loses its addresses, as in Kong.
type Upstream struct {
	targets []Target
	opts    Options
	res     *Resolver
	log     func(string, ...any)

	cur atomic.Pointer[built]
	// Per target, owned by the loop once it runs: when to resolve it
	// again (zero: never), its addresses, and its failures in a row.
	refresh  []time.Time
	per      [][]Address
	failures []int

	mu       sync.Mutex // guards onChange and stop
	onChange func(prev, b Balancer, addrs []Address)
	stop     context.CancelFunc // nil until Watch starts the loop
}

// built is one balancer and the addresses it was built from.
type built struct {
	b     Balancer
	addrs []Address
}

// NewUpstream resolves the targets and builds their balancer; log warns
// of targets that do not resolve.
func NewUpstream(ctx context.Context, targets []Target, opts Options, res *Resolver, log func(string, ...any)) (*Upstream, error) {
	u := &Upstream{targets: targets, opts: opts, res: res, log: log, refresh: make([]time.Time, len(targets)),
		per: make([][]Address, len(targets)), failures: make([]int, len(targets))}
	for i, t := range targets {
		addrs, refresh, err := res.Expand(ctx, t, true)
		if err != nil {
			log("target %s: %v", t.Name, err)
			refresh = u.retryAt(i)
		}
		u.per[i], u.refresh[i] = addrs, refresh
	}
	b, err := New(slices.Concat(u.per...), opts)
	if err != nil {
		return nil, err
	}
	u.cur.Store(&built{b: b, addrs: slices.Concat(u.per...)})
	return u, nil
}

// Balancer returns the current balancer.
func (u *Upstream) Balancer() Balancer { return u.cur.Load().b }

// Addresses returns the addresses of the current balancer.
func (u *Upstream) Addresses() []Address { return u.cur.Load().addrs }

// Unresolved lists the targets (by Target.Name) that have no address in
// the current balancer: their names did not resolve.
func (u *Upstream) Unresolved() []string {
	addrs := u.cur.Load().addrs
	var out []string
	for _, t := range u.targets {
		if !slices.ContainsFunc(addrs, func(a Address) bool { return a.Target == t.Name }) {
			out = append(out, t.Name)
		}
	}
	return out
}

// Watch starts re-resolving the targets that have host names; onChange
// hears of each rebuilt balancer. Stop ends it.
func (u *Upstream) Watch(onChange func(prev, b Balancer, addrs []Address)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.onChange = onChange
	if u.stop != nil || !slices.ContainsFunc(u.refresh, func(t time.Time) bool { return !t.IsZero() }) {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	u.stop = cancel
	go u.watchLoop(ctx)
}

// Stop ends re-resolving, without waiting for a query in flight: a
// rebuild that lands after it changes nothing anyone uses. It may be
// called more than once.
func (u *Upstream) Stop() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stop != nil {
		u.stop()
	}
}

// minRefresh keeps an answer with a TTL of 0 from being asked for in a
// tight loop.
const minRefresh = time.Second

func (u *Upstream) watchLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		next := time.Time{}
		for _, r := range u.refresh {
			if !r.IsZero() && (next.IsZero() || r.Before(next)) {
				next = r
			}
		}
		t.Reset(max(time.Until(next), minRefresh))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		u.resolveDue(ctx)
	}
}

// retryAt counts a failed resolution of target i and says when to try
// again.
func (u *Upstream) retryAt(i int) time.Time {
	u.failures[i]++
	return time.Now().Add(u.res.backoff(u.failures[i]))
}

// resolveDue resolves the targets whose refresh time has come and
// rebuilds the balancer if their addresses changed.
func (u *Upstream) resolveDue(ctx context.Context) {
	now := time.Now()
	changed := false
	for i, t := range u.targets {
		if u.refresh[i].IsZero() || u.refresh[i].After(now) {
			continue
		}
		addrs, refresh, err := u.res.Expand(ctx, t, true)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if len(u.per[i]) > 0 {
				u.log("target %s: %v", t.Name, err)
			}
			refresh = u.retryAt(i)
		} else {
			u.failures[i] = 0
		}
		u.refresh[i] = refresh
		if !slices.Equal(addrs, u.per[i]) {
			u.per[i], changed = addrs, true
		}
	}
	if !changed || ctx.Err() != nil {
		return
	}
	addrs := slices.Concat(u.per...)
	b, err := New(addrs, u.opts)
	if err != nil {
		u.log("rebuilding the balancer: %v", err)
		return
	}
	// The new balancer learns the addresses' health before it serves.
	u.mu.Lock()
	onChange := u.onChange
	u.mu.Unlock()
	if onChange != nil {
		onChange(u.cur.Load().b, b, addrs)
	}
	u.cur.Store(&built{b: b, addrs: addrs})
}
