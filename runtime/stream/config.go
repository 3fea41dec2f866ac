package stream

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gong-proxy/gong/router"
	"github.com/gong-proxy/gong/runtime/balancer"
	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/telemetry"
	"github.com/gong-proxy/gong/tlsmgr"
)

// Config is the engine's part of one configuration generation: the
// listeners, router, services and their balancers, certificates, access
// log and tracer, and the hooks that run the plugins. It is immutable;
// a session keeps the Config it started with, and counts itself in it
// (Hold, Done) so that a retired Config is released when its last session
// ends.
type Config struct {
	Conf      *conf.Config
	Listeners map[ListenKey]conf.Listener
	// Upstreams are the upstream entities' balancers by name, which keep
	// their targets resolved until the Config retires: kong.service's
	// set_target and set_upstream pick from them too.
	Upstreams map[string]*UpstreamPeers
	Tracer    *telemetry.Tracer // nil when tracing is off
	Hooks     Hooks
	// OnRelease runs once the Config is retired and its last session has
	// ended.
	OnRelease func()

	router *router.Router
	// tcpRoutes are the routes a plain TCP listener's sessions may match,
	// and loops the listeners whose sessions the event loops serve
	// (loopListeners, made when the Config becomes current).
	tcpRoutes []*Route
	loops     map[ListenKey]bool
	format    LogFormat
	access    *AccessLog      // nil when proxy_stream_access_log is off
	tls       *tlsmgr.Manager // nil without ssl listeners
	resolver  *balancer.Resolver
	// clientCerts are the certificate entities services present to
	// their upstreams (ReplaceClientCertificate).
	clientCerts clientCerts

	sessions atomic.Int64
	retired  atomic.Bool
	release  sync.Once
}

// ListenKey identifies a listening socket across generations.
type ListenKey struct {
	Network string // "tcp" or "udp"
	Addr    string
}

// KeyOf is a stream_listen entry's socket.
func KeyOf(l conf.Listener) ListenKey {
	if l.UDP {
		return ListenKey{"udp", l.Addr()}
	}
	return ListenKey{"tcp", l.Addr()}
}

// Route is the router's payload for a route.
type Route struct {
	Decl    *declarative.Route
	Name    string   // route name or id, for logs
	Service *Service // nil: the route has no usable service
	// serverTLS terminates TLS for connections routed here by their
	// ClientHello: the shared config, or the route's own with its client
	// certificate and ALPN extensions. Nil without ssl listeners.
	serverTLS *tls.Config
	// series are the route's session metrics, resolved by its first
	// session (Session.series).
	series atomic.Pointer[telemetry.RouteSeries]
}

// Service is a declarative service prepared for proxying.
type Service struct {
	Decl    *declarative.Service
	name    string
	peers   peers
	connect time.Duration
	idle    time.Duration // max(read_timeout, write_timeout), as Kong sets proxy_timeout
	tries   int           // 1 + retries
	tls     *upstreamTLS  // nil for plain TCP upstreams
	// proxyProtocol sends each upstream connection a PROXY v2 header
	// (the service's proxy_protocol, a gong extension).
	proxyProtocol bool
}

// Name is the service's name, else its id.
func (s *Service) Name() string { return s.name }

// Upstream is the name of the upstream entity the service balances over,
// empty when its host is an address or a DNS name.
func (s *Service) Upstream() string {
	if up, ok := s.peers.(*UpstreamPeers); ok {
		return up.Name
	}
	return ""
}

// streamProtocols are the route protocols the stream router serves.
var streamProtocols = []string{"tcp", "tls", "udp", "tls_passthrough"}

// BuildOptions are what a Config takes beyond kong.conf and the entities.
type BuildOptions struct {
	Hooks Hooks
	// Certificate runs during TLS handshakes (nil: nothing runs).
	Certificate tlsmgr.CertificateHook
	// AccessLog returns the shared writer for a path.
	AccessLog func(path string) (*AccessLog, error)
	// Checkers owns the upstreams' health checkers across generations.
	Checkers *CheckerSet
	// Log receives the warnings of the build and of the upstreams'
	// re-resolving.
	Log *slog.Logger
}

// Build prepares a configuration for serving. Errors name the entity at
// fault.
func Build(c *conf.Config, d *declarative.Config, opts BuildOptions) (_ *Config, err error) {
	cfg := &Config{Conf: c, Listeners: map[ListenKey]conf.Listener{}, Hooks: opts.Hooks}
	defer func() {
		if err != nil {
			cfg.StopUpstreams()
		}
	}()
	for _, l := range c.StreamListeners {
		k := KeyOf(l)
		if _, dup := cfg.Listeners[k]; dup {
			return nil, fmt.Errorf("stream_listen: %s is listed twice", l.Listener)
		}
		cfg.Listeners[k] = l
	}
	if !c.ProxyStreamAccessLog.Off {
		f, err := CompileLogFormat(c.Stream.LogFormats[c.ProxyStreamAccessLog.Format])
		if err != nil {
			return nil, fmt.Errorf("nginx_stream_log_format: %w", err)
		}
		cfg.format = f
		if cfg.access, err = opts.AccessLog(c.ProxyStreamAccessLog.Path); err != nil {
			return nil, fmt.Errorf("proxy_stream_access_log: %w", err)
		}
	}
	if slices.ContainsFunc(c.StreamListeners, func(l conf.Listener) bool { return l.SSL }) {
		if cfg.tls, err = newTLSManager(c, d, opts.Certificate); err != nil {
			return nil, err
		}
	}
	if cfg.resolver, err = newResolver(c.DNS); err != nil {
		return nil, err
	}
	cfg.Upstreams = map[string]*UpstreamPeers{}
	cfg.clientCerts = clientCerts{}
	services, err := buildServices(c, d, cfg.resolver, opts.Checkers, cfg.Upstreams, cfg.clientCerts, opts.Log)
	if err != nil {
		return nil, err
	}
	var routes []*router.Route
	for _, r := range d.Routes {
		if !slices.ContainsFunc(r.Protocols, func(p string) bool { return slices.Contains(streamProtocols, p) }) {
			continue
		}
		target := &Route{Decl: r, Name: nameOr(r.Name, r.ID)}
		if cfg.tls != nil {
			if target.serverTLS, err = routeServerTLS(cfg.tls, d, r); err != nil {
				return nil, err
			}
		}
		if r.Service != nil {
			s, ok := services[*r.Service]
			if !ok {
				continue // its service is disabled: Kong leaves the route out
			}
			target.Service = s
		}
		rt := &router.Route{
			ID: r.ID, Name: target.Name, Protocols: r.Protocols,
			Sources: endpoints(r.Sources), Destinations: endpoints(r.Destinations),
			SNIs: r.SNIs, CreatedAt: r.CreatedAt, Value: target,
			Expression: derefOr(r.Expression, ""),
		}
		if r.Priority != nil {
			rt.Priority = uint64(*r.Priority)
		}
		routes = append(routes, rt)
		if slices.Contains(r.Protocols, "tcp") {
			cfg.tcpRoutes = append(cfg.tcpRoutes, target)
		}
	}
	cfg.router, err = router.New(routes, router.Options{Flavor: router.Flavor(c.RouterFlavor)})
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// Certificates are the certificates the Config's ssl listeners serve by
// SNI, nil without ssl listeners; the vault rotator replaces entities
// whose secrets changed.
func (c *Config) Certificates() *tlsmgr.Manager { return c.tls }

// Hold counts a new user of the Config (a session, an Admin API
// validation), which must call Done; false when it has been retired
// meanwhile: take the current one instead.
func (c *Config) Hold() bool {
	c.sessions.Add(1)
	if !c.retired.Load() {
		return true
	}
	c.Done()
	return false
}

// Done ends one use of the Config.
func (c *Config) Done() {
	if c.sessions.Add(-1) == 0 && c.retired.Load() {
		c.release.Do(c.OnRelease)
	}
}

// Retire marks the Config replaced; it is released now if idle, else when
// its last session ends. Its upstreams stop re-resolving their targets at
// once: its remaining sessions have their peers.
func (c *Config) Retire() {
	c.retired.Store(true)
	c.StopUpstreams()
	if c.sessions.Load() == 0 {
		c.release.Do(c.OnRelease)
	}
}

// StopUpstreams ends the re-resolving of the upstreams; a Config that
// fails to build or to apply calls it too.
func (c *Config) StopUpstreams() {
	for _, u := range c.Upstreams {
		u.stop()
	}
}

// HasUpstream reports an upstream entity of that name.
func (c *Config) HasUpstream(name string) bool {
	_, ok := c.Upstreams[name]
	return ok
}

// Destination is the address routes match as the connection's
// destination: the listener's local address, its port mapped through
// port_maps as Kong does for the first routing pass.
func (c *Config) Destination(local netip.AddrPort) netip.AddrPort {
	if p, ok := c.Conf.PortMaps[int(local.Port())]; ok {
		return netip.AddrPortFrom(local.Addr(), uint16(p))
	}
	return local
}

// Trusted reports whether a peer may set the client address with a PROXY
// protocol header (trusted_ips).
func (c *Config) Trusted(peer netip.Addr) bool {
	peer = peer.Unmap()
	for _, p := range c.Conf.TrustedIPs {
		if p.Contains(peer) {
			return true
		}
	}
	return false
}

// TargetHealth lists the upstream addresses and their health, for
// kong_upstream_target_health.
func (c *Config) TargetHealth() []telemetry.TargetHealth {
	var out []telemetry.TargetHealth
	for _, up := range c.Upstreams {
		var healthy map[netip.AddrPort]bool
		if up.Checker != nil {
			healthy = up.Checker.Healthy()
		}
		for _, a := range up.Up.Addresses() {
			state := "healthchecks_off"
			if h, checked := healthy[a.Addr]; checked && h {
				state = "healthy"
			} else if checked {
				state = "unhealthy"
			}
			out = append(out, telemetry.TargetHealth{Upstream: up.Name, Target: a.Target, Address: a.Addr.String(), State: state})
		}
		for _, t := range up.Up.Unresolved() {
			out = append(out, telemetry.TargetHealth{Upstream: up.Name, Target: t, State: "dns_error"})
		}
	}
	return out
}

func endpoints(eps []declarative.Endpoint) []router.Endpoint {
	var out []router.Endpoint
	for _, e := range eps {
		var re router.Endpoint
		if e.IP != nil {
			re.IP = *e.IP
		}
		if e.Port != nil {
			re.Port, re.HasPort = uint16(*e.Port), true
		}
		out = append(out, re)
	}
	return out
}

func nameOr(name *string, id string) string {
	if name != nil {
		return *name
	}
	return id
}

func derefOr(p *string, or string) string {
	if p == nil {
		return or
	}
	return *p
}
