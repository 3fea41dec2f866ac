package balancer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"
)

// HealthConfig is an upstream's healthchecks record, as the checker uses
// it in stream: active checks are TCP connects (Kong runs no other type
// in stream) or, as gong adds, UDP exchanges, either of which may send a
// payload and expect a reply; passive ones count connect failures and
// session statuses.
type HealthConfig struct {
	// Active is the active check's type: "tcp", "udp", or "" when active
	// checks do not run in stream.
	Active string
	// Send is written once connected (TCP) or as the datagram (UDP);
	// Expect is what the reply must start with. An empty Expect takes a
	// completed send (TCP) or any datagram (UDP) as a success.
	Send, Expect      []byte
	Timeout           time.Duration
	Concurrency       int
	HealthyInterval   time.Duration
	UnhealthyInterval time.Duration
	// Active limits: successes to turn healthy, failures or timeouts to
	// turn unhealthy; 0 disables a counter.
	Successes, TCPFailures, Timeouts int
	// Passive limits and statuses.
	PassiveSuccesses, PassiveTCPFailures, PassiveTimeouts, PassiveHTTPFailures int
	HealthyStatuses, UnhealthyStatuses                                         []int
}

// Enabled says whether Kong would create a health checker for the
// upstream: some active interval or passive unhealthy limit is set.
func (c HealthConfig) Enabled() bool {
	return c.activeEnabled() ||
		c.PassiveTCPFailures > 0 || c.PassiveTimeouts > 0 || c.PassiveHTTPFailures > 0
}

func (c HealthConfig) activeEnabled() bool {
	return c.Active != "" && (c.HealthyInterval > 0 || c.UnhealthyInterval > 0)
}

// Checker keeps the health of an upstream's addresses, as
// lua-resty-healthcheck does for Kong: per address a success counter and
// failure counters; a success clears the failures, a failure clears the
// successes, and a counter reaching its limit flips the address. It
// probes actively when configured and takes passive reports from
// connections. Health changes go to the balancer it feeds.
type Checker struct {
	cfg HealthConfig
	log func(format string, args ...any)

	mu      sync.Mutex       // guards the fields below
	addrs   []netip.AddrPort // the checked ones
	b       Balancer
	given   []Address // the addresses b was built from
	state   map[netip.AddrPort]*health
	stop    context.CancelFunc
	stopped chan struct{}
}

type health struct {
	healthy                          bool
	successes, tcpFailures, timeouts int
	httpFailures                     int
	lastProbe                        time.Time
}

// NewChecker starts checking addrs (weight 0 excluded) for b; log reports
// health changes.
func NewChecker(b Balancer, addrs []Address, cfg HealthConfig, log func(string, ...any)) *Checker {
	c := &Checker{cfg: cfg, b: b, log: log, state: map[netip.AddrPort]*health{}, stopped: make(chan struct{})}
	c.unsyncedSetAddresses(addrs)
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	if cfg.activeEnabled() {
		go c.probeLoop(ctx)
	} else {
		close(c.stopped)
	}
	return c
}

// Adopt hands the checker to a new balancer of the same upstream (a
// reload that left it unchanged) over addrs: the new balancer starts from
// the health the checker knows of the addresses it keeps. It returns the
// balancer the checker fed before and its addresses, for a reload that
// fails to give it back.
func (c *Checker) Adopt(b Balancer, addrs []Address) (Balancer, []Address) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev, prevAddrs := c.b, c.given
	c.unsyncedAdopt(b, addrs)
	return prev, prevAddrs
}

// Replace is Adopt for a balancer rebuilt from new DNS answers: it takes
// effect only while the checker still feeds prev, so a retired
// generation's rebuild cannot take the checker from the current one.
func (c *Checker) Replace(prev, b Balancer, addrs []Address) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.b != prev {
		return false
	}
	c.unsyncedAdopt(b, addrs)
	return true
}

func (c *Checker) unsyncedAdopt(b Balancer, addrs []Address) {
	c.b = b
	c.unsyncedSetAddresses(addrs)
	for a, h := range c.state {
		b.SetAvailable(a, h.healthy)
	}
}

// unsyncedSetAddresses makes addrs (weight 0 excluded) the checked ones:
// addresses it keeps keep their health, new ones start healthy.
func (c *Checker) unsyncedSetAddresses(addrs []Address) {
	c.given = addrs
	var list []netip.AddrPort
	for _, a := range addrs {
		if a.Weight > 0 && !slices.Contains(list, a.Addr) {
			list = append(list, a.Addr)
			if c.state[a.Addr] == nil {
				c.state[a.Addr] = &health{healthy: true}
			}
		}
	}
	for a := range c.state {
		if !slices.Contains(list, a) {
			delete(c.state, a)
		}
	}
	c.addrs = list
}

// Stop ends active probing.
func (c *Checker) Stop() {
	c.stop()
	<-c.stopped
}

// Healthy reports the health of every checked address.
func (c *Checker) Healthy() map[netip.AddrPort]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[netip.AddrPort]bool, len(c.state))
	for a, h := range c.state {
		out[a] = h.healthy
	}
	return out
}

// Report kinds.
const (
	reportSuccess = iota
	reportTCPFailure
	reportTimeout
	reportHTTPFailure
)

// ReportConnectFailure is a passive report: a connect to addr failed and
// the connection retries. Kong's stream counts timeouts as TCP failures
// here too.
func (c *Checker) ReportConnectFailure(addr netip.AddrPort) {
	c.report(addr, reportTCPFailure, false)
}

// ReportStatus is a passive report of a finished session's status: a
// status in the healthy list is a success, one in the unhealthy list an
// HTTP failure, anything else is ignored (Kong's 502 after the last
// failed try, with the default lists).
func (c *Checker) ReportStatus(addr netip.AddrPort, status int) {
	switch {
	case slices.Contains(c.cfg.HealthyStatuses, status):
		c.report(addr, reportSuccess, false)
	case slices.Contains(c.cfg.UnhealthyStatuses, status):
		c.report(addr, reportHTTPFailure, false)
	}
}

func (c *Checker) report(addr netip.AddrPort, kind int, active bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.state[addr]
	if h == nil {
		return
	}
	limits := [4]int{c.cfg.PassiveSuccesses, c.cfg.PassiveTCPFailures, c.cfg.PassiveTimeouts, c.cfg.PassiveHTTPFailures}
	if active {
		limits = [4]int{c.cfg.Successes, c.cfg.TCPFailures, c.cfg.Timeouts, 0}
	}
	if kind == reportSuccess {
		h.tcpFailures, h.timeouts, h.httpFailures = 0, 0, 0
		h.successes++
		if !h.healthy && limits[0] > 0 && h.successes >= limits[0] {
			c.flip(addr, h, true)
		}
		return
	}
	h.successes = 0
	var n *int
	switch kind {
	case reportTCPFailure:
		n = &h.tcpFailures
	case reportTimeout:
		n = &h.timeouts
	default:
		n = &h.httpFailures
	}
	*n++
	if h.healthy && limits[kind] > 0 && *n >= limits[kind] {
		c.flip(addr, h, false)
	}
}

// flip changes an address's health. c.mu is held.
func (c *Checker) flip(addr netip.AddrPort, h *health, healthy bool) {
	c.set(addr, h, healthy, "health check")
}

// set gives an address its health and clears its counters; why names
// the cause in the log. c.mu is held.
func (c *Checker) set(addr netip.AddrPort, h *health, healthy bool, why string) {
	h.healthy = healthy
	h.successes, h.tcpFailures, h.timeouts, h.httpFailures = 0, 0, 0, 0
	c.b.SetAvailable(addr, healthy)
	state := "unhealthy"
	if healthy {
		state = "healthy"
	}
	c.log("%s: %s is %s", why, addr, state)
}

// SetHealthy forces the health of target's checked addresses (target as
// in Address.Target), or of only addr among them when addr is valid, as
// Kong's healthy and unhealthy Admin API endpoints do: the counters
// restart, and later checks may change the health again. Addresses the
// target does not have are ignored, as Kong ignores them.
func (c *Checker) SetHealthy(target string, addr netip.AddrPort, healthy bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.given {
		if a.Target != target || addr.IsValid() && a.Addr != addr {
			continue
		}
		if h := c.state[a.Addr]; h != nil {
			c.set(a.Addr, h, healthy, "set through the Admin API")
		}
	}
}

// probeLoop probes healthy addresses every healthy interval and unhealthy
// ones every unhealthy interval (0 skips that group), at most Concurrency
// at a time.
func (c *Checker) probeLoop(ctx context.Context) {
	defer close(c.stopped)
	tick := min(nonZero(c.cfg.HealthyInterval), nonZero(c.cfg.UnhealthyInterval))
	t := time.NewTicker(tick)
	defer t.Stop()
	sem := make(chan struct{}, max(c.cfg.Concurrency, 1))
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		now := time.Now()
		for _, a := range c.due(now) {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				c.probe(ctx, a)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func nonZero(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Duration(1<<63 - 1)
	}
	return d
}

// due lists the addresses whose interval has passed, and marks them.
func (c *Checker) due(now time.Time) []netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []netip.AddrPort
	for _, a := range c.addrs {
		h := c.state[a]
		every := c.cfg.HealthyInterval
		if !h.healthy {
			every = c.cfg.UnhealthyInterval
		}
		if every > 0 && now.Sub(h.lastProbe) >= every {
			h.lastProbe = now
			out = append(out, a)
		}
	}
	return out
}

// probe is one active check within the timeout: connect (TCP) and
// exchange the payload. Success is a success, a timeout a timeout,
// anything else (refused, closed, a wrong reply) a TCP failure.
func (c *Checker) probe(ctx context.Context, a netip.AddrPort) {
	err := c.exchange(ctx, a)
	if ctx.Err() != nil {
		return
	}
	var ne net.Error
	switch {
	case err == nil:
		c.report(a, reportSuccess, true)
	case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded):
		c.report(a, reportTimeout, true)
	default:
		c.report(a, reportTCPFailure, true)
	}
}

var errWrongReply = errors.New("unexpected reply")

func (c *Checker) exchange(ctx context.Context, a netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	network := "tcp"
	if c.cfg.Active == "udp" {
		network = "udp"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, a.String())
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if len(c.cfg.Send) > 0 {
		if _, err := conn.Write(c.cfg.Send); err != nil {
			return err
		}
	}
	switch {
	case network == "udp":
		buf := make([]byte, 64<<10)
		n, err := conn.Read(buf)
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(buf[:n], c.cfg.Expect) {
			return errWrongReply
		}
	case len(c.cfg.Expect) > 0:
		buf := make([]byte, len(c.cfg.Expect))
		if _, err := io.ReadFull(conn, buf); err != nil {
			return err
		}
		if !bytes.Equal(buf, c.cfg.Expect) {
			return errWrongReply
		}
	}
	return nil
}
