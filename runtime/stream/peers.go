package stream

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/gong-proxy/gong/runtime/balancer"
	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/errlog"
)

// peers picks the peer of each connection attempt to a service. It is
// safe for concurrent use and lives as long as its generation.
type peers interface {
	// start begins the attempts of a connection (udp: a UDP session)
	// from client.
	start(client netip.AddrPort, udp bool) *attempts
	// next returns the address for the next attempt of the connection a
	// follows, and the host name it stands for (the target or service
	// host, for upstream TLS SNI).
	next(ctx context.Context, a *attempts) (peer, host string, err error)
	// failed reports that connecting to the attempt's peer failed and the
	// connection retries.
	failed(a *attempts, peer string)
	// release ends the connection's use of its last peer with the
	// session's status; connectTime is its connect time, 0 when it failed.
	release(a *attempts, connectTime time.Duration, status int)
}

// attempts is one connection's record of its tries.
type attempts struct {
	client netip.AddrPort
	udp    bool
	tried  []string // the peers dialled, in triedFirst while they fit
	// triedFirst holds the usual one or two tries in the attempts' own
	// allocation.
	triedFirst [2]string
	handle     balancer.Handle
	// b is the balancer of the connection's first pick, which its
	// retries and release use even if DNS rebuilt the upstream's since.
	b balancer.Balancer
}

// hostPeers serves a service whose host is an IP address or a DNS name:
// the resolver rotates over the name's addresses (or picks by SRV
// weight, with the SRV port).
type hostPeers struct {
	host     string
	port     int
	resolver *balancer.Resolver
	literal  string // the peer, when host is an IP address
}

func newHostPeers(host string, port int, r *balancer.Resolver) *hostPeers {
	b := &hostPeers{host: host, port: port, resolver: r}
	if ip, err := netip.ParseAddr(host); err == nil {
		b.literal = netip.AddrPortFrom(ip.Unmap(), uint16(port)).String()
	}
	return b
}

func (b *hostPeers) next(ctx context.Context, a *attempts) (string, string, error) {
	if b.literal != "" {
		a.tried = append(a.tried, b.literal)
		return b.literal, b.host, nil
	}
	addr, err := b.resolver.ToIP(ctx, b.host, b.port)
	if err != nil {
		return "", "", err
	}
	peer := addr.String()
	a.tried = append(a.tried, peer)
	return peer, b.host, nil
}

func (b *hostPeers) start(client netip.AddrPort, udp bool) *attempts {
	return newAttempts(client, udp)
}

func newAttempts(client netip.AddrPort, udp bool) *attempts {
	a := &attempts{client: client, udp: udp}
	a.tried = a.triedFirst[:0]
	return a
}

func (b *hostPeers) failed(*attempts, string) {}

func (b *hostPeers) release(*attempts, time.Duration, int) {}

// UpstreamPeers serves the services whose host names an upstream, with
// the upstream's algorithm over its targets' addresses, kept current by
// DNS.
type UpstreamPeers struct {
	Name     string
	Up       *balancer.Upstream
	hashOn   [2]string         // hash_on, hash_fallback
	Checker  *balancer.Checker // nil when the upstream has no health checks
	affinity *affinity         // nil unless udp_affinity_ttl is set
}

// newUpstreamPeers resolves the upstream's targets (one address per IP,
// each with the target's weight, or one per SRV record, as Kong does),
// builds its balancer with the health checker checkers gives it, and
// keeps resolving the targets' names. A target whose name does not
// resolve gets no address, with a warning.
func newUpstreamPeers(ctx context.Context, u *declarative.Upstream, targets []*declarative.Target, r *balancer.Resolver, checkers *CheckerSet, log *slog.Logger) (*UpstreamPeers, error) {
	ts := make([]balancer.Target, len(targets))
	for i, t := range targets {
		host, portStr, err := net.SplitHostPort(t.Target)
		if err != nil {
			return nil, err
		}
		port, _ := strconv.Atoi(portStr)
		ts[i] = balancer.Target{Name: t.Target, Host: host, Port: port, Weight: t.Weight, UseSRVName: u.UseSRVName}
	}
	opts := balancer.Options{Algorithm: u.Algorithm, Slots: u.Slots, Threshold: u.Healthchecks.Threshold}
	up, err := balancer.NewUpstream(ctx, ts, opts, r, printfTo(log, errlog.LevelWarn, "upstream "+u.Name+": "))
	if err != nil {
		return nil, err
	}
	p := &UpstreamPeers{Name: u.Name, Up: up, hashOn: [2]string{u.HashOn, u.HashFallback}}
	p.Checker = checkers.get(u, targets, up.Addresses(), up.Balancer())
	if p.Checker != nil {
		up.Watch(func(prev, b balancer.Balancer, addrs []balancer.Address) { p.Checker.Replace(prev, b, addrs) })
	} else {
		up.Watch(nil)
	}
	if u.UDPAffinityTTL > 0 {
		p.affinity = newAffinity(time.Duration(u.UDPAffinityTTL * float64(time.Second)))
	}
	return p, nil
}

// stop ends the re-resolving of the targets, when the generation is
// retired or fails to build.
func (u *UpstreamPeers) stop() { u.Up.Stop() }

// start sets the value consistent-hashing hashes for the client: in
// stream only hash_on ip yields one (consumer needs an authenticating
// plugin); anything else falls back, then hashes "", as in Kong.
func (u *UpstreamPeers) start(client netip.AddrPort, udp bool) *attempts {
	a := newAttempts(client, udp)
	for _, on := range u.hashOn {
		if on == "ip" {
			a.handle.HashValue = client.Addr().String()
			break
		}
	}
	return a
}

func (u *UpstreamPeers) next(_ context.Context, a *attempts) (string, string, error) {
	if a.b == nil {
		a.b = u.Up.Balancer()
		if p, ok := u.affine(a); ok {
			return u.picked(a, p)
		}
	}
	p, err := a.b.Pick(&a.handle)
	if err != nil {
		return "", "", err
	}
	return u.picked(a, p)
}

func (u *UpstreamPeers) picked(a *attempts, p balancer.Peer) (string, string, error) {
	a.tried = append(a.tried, p.Dial)
	return p.Dial, p.Host, nil
}

// affine sends a UDP client back to the peer of its previous session,
// when udp_affinity_ttl remembers it and the peer is still available.
func (u *UpstreamPeers) affine(a *attempts) (balancer.Peer, bool) {
	if !a.udp || u.affinity == nil {
		return balancer.Peer{}, false
	}
	addr, ok := u.affinity.get(a.client)
	if !ok {
		return balancer.Peer{}, false
	}
	return a.b.Take(&a.handle, addr)
}

func (u *UpstreamPeers) failed(_ *attempts, peer string) {
	if u.Checker != nil {
		u.Checker.ReportConnectFailure(netip.MustParseAddrPort(peer))
	}
}

// release also reports the session's status to passive health checks, as
// Kong's log phase does, when the session got as far as a peer, and
// remembers a UDP client's peer for udp_affinity_ttl.
func (u *UpstreamPeers) release(a *attempts, connectTime time.Duration, status int) {
	if a.b == nil {
		return
	}
	a.b.Release(&a.handle, connectTime)
	if len(a.tried) == 0 {
		return
	}
	last := netip.MustParseAddrPort(a.tried[len(a.tried)-1])
	if u.Checker != nil {
		u.Checker.ReportStatus(last, status)
	}
	if a.udp && u.affinity != nil && status == StatusOK {
		u.affinity.set(a.client, last)
	}
}

// affinityCapacity bounds the client addresses an upstream remembers for
// UDP affinity; the least recently used are forgotten first.
const affinityCapacity = 65536

// affinity remembers the peer of each UDP client address for a time after
// its session ends.
type affinity struct {
	ttl   time.Duration
	mu    sync.Mutex // makes get's expiry check and removal one step
	cache *lru.Cache[netip.AddrPort, stickyPeer]
}

type stickyPeer struct {
	addr  netip.AddrPort
	until time.Time
}

func newAffinity(ttl time.Duration) *affinity {
	c, _ := lru.New[netip.AddrPort, stickyPeer](affinityCapacity) // fails only for a size <= 0
	return &affinity{ttl: ttl, cache: c}
}

func (f *affinity) get(client netip.AddrPort) (netip.AddrPort, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sp, ok := f.cache.Get(client)
	if !ok {
		return netip.AddrPort{}, false
	}
	if time.Now().After(sp.until) {
		f.cache.Remove(client)
		return netip.AddrPort{}, false
	}
	return sp.addr, true
}

func (f *affinity) set(client, peer netip.AddrPort) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cache.Add(client, stickyPeer{addr: peer, until: time.Now().Add(f.ttl)})
}

// buildServices prepares the enabled services, keyed by id; a service of an
// http protocol gets nil, so its routes serve without a service, as in Kong.
// The services of one upstream share its peers. Every upstream gets peers,
// added to ups by name, for kong.service.set_upstream too.
func buildServices(c *conf.Config, d *declarative.Config, res *balancer.Resolver, checkers *CheckerSet, ups map[string]*UpstreamPeers, certs clientCerts, log *slog.Logger) (map[string]*Service, error) {
	upstreams := map[string]*declarative.Upstream{}
	for _, u := range d.Upstreams {
		upstreams[u.Name] = u
	}
	targets := map[string][]*declarative.Target{}
	for _, t := range d.Targets {
		targets[t.Upstream] = append(targets[t.Upstream], t)
	}
	out := map[string]*Service{}
	for _, s := range d.Services {
		if !s.Enabled {
			continue
		}
		if !slices.Contains([]string{"tcp", "tls", "udp", "tls_passthrough"}, s.Protocol) {
			log.Warn(fmt.Sprintf("service with protocol '%s' cannot be used with 'stream' subsystem", s.Protocol))
			out[s.ID] = nil
			continue
		}
		svc := &Service{
			Decl:    s,
			name:    nameOr(s.Name, s.ID),
			connect: time.Duration(s.ConnectTimeout) * time.Millisecond,
			idle:    time.Duration(max(s.ReadTimeout, s.WriteTimeout)) * time.Millisecond,
			tries:   1 + s.Retries,

			proxyProtocol: s.ProxyProtocol != nil && *s.ProxyProtocol,
		}
		u := upstreams[s.Host]
		if u != nil {
			up := ups[u.Name]
			if up == nil {
				ctx, cancel := context.WithTimeout(context.Background(), svc.connect)
				var err error
				up, err = newUpstreamPeers(ctx, u, targets[u.ID], res, checkers, log)
				cancel()
				if err != nil {
					return nil, fmt.Errorf("upstream %s: %w", u.Name, err)
				}
				ups[u.Name] = up
			}
			svc.peers = up
		} else {
			svc.peers = newHostPeers(s.Host, s.Port, res)
		}
		// Kong disables upstream TLS only for tcp services (and UDP never
		// has it); tls and tls_passthrough services both speak TLS.
		if s.Protocol == "tls" || s.Protocol == "tls_passthrough" {
			var err error
			if svc.tls, err = newUpstreamTLS(c, d, s, u, certs); err != nil {
				return nil, err
			}
		}
		out[s.ID] = svc
	}
	for _, u := range d.Upstreams {
		if _, ok := ups[u.Name]; ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), unusedUpstreamTimeout)
		up, err := newUpstreamPeers(ctx, u, targets[u.ID], res, checkers, log)
		cancel()
		if err != nil {
			log.Warn(fmt.Sprintf("upstream %s: %v", u.Name, err))
			continue
		}
		ups[u.Name] = up
	}
	return out, nil
}

// unusedUpstreamTimeout bounds resolving the targets of an upstream no
// service names (Kong's default connect_timeout).
const unusedUpstreamTimeout = 60 * time.Second

// printfTo adapts log to the printf-style reports of runtime/balancer:
// lines at level, after prefix.
func printfTo(log *slog.Logger, level slog.Level, prefix string) func(string, ...any) {
	return func(format string, args ...any) {
		log.Log(context.Background(), level, prefix+fmt.Sprintf(format, args...))
	}
}
