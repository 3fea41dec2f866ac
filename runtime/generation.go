package runtime

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gong-proxy/gong/pdk"
	"github.com/gong-proxy/gong/router"
	"github.com/gong-proxy/gong/runtime/balancer"
	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/telemetry"
	"github.com/gong-proxy/gong/tlsmgr"
)

// routeServerTLS is the termination config of a route: the manager's own,
// or one requiring client certificates (client_ca_certificates,
// client_verify_depth) and offering ALPN (alpn_protocols), gong's
// extensions to Kong's route.
func routeServerTLS(m *tlsmgr.Manager, d *declarative.Config, r *declarative.Route) (*tls.Config, error) {
	rt := tlsmgr.RouteTLS{VerifyDepth: 1, NextProtos: r.ALPNProtocols}
	if r.ClientVerifyDepth != nil {
		rt.VerifyDepth = *r.ClientVerifyDepth
	}
	if len(r.ClientCACertificates) > 0 {
		pool, err := caPool(d, r.ClientCACertificates)
		if err != nil {
			return nil, fmt.Errorf("route %s: client_ca_certificates: %w", nameOr(r.Name, r.ID), err)
		}
		rt.ClientCAs = pool
	}
	return m.ServerConfigFor(rt), nil
}

// generation is everything built from one configuration. It is immutable;
// connections keep the generation they started with.
type generation struct {
	conf      *conf.Config
	decl      *declarative.Config
	hash      string // the declarative configuration's, as Kong's configuration_hash
	router    *router.Router
	listeners map[listenKey]conf.Listener
	format    logFormat
	access    *accessLog      // nil when proxy_stream_access_log is off
	tls       *tlsmgr.Manager // nil without ssl listeners
	plugins   *pluginSet
	// upstreams are the upstream entities' balancers by name, which keep
	// their targets resolved until the generation retires, and resolver
	// the DNS of the generation: kong.service.set_target and set_upstream
	// pick from them.
	upstreams map[string]*upstreamPeers
	resolver  *balancer.Resolver
	tracer    *telemetry.Tracer // nil when tracing is off
	// globalLog runs the log phase of connections no route matched.
	globalLog []pluginRun

	// sessions counts the sessions using the generation; once it is
	// retired (no longer current) and the count reaches zero, its Lua VMs
	// are closed.
	sessions atomic.Int64
	retired  atomic.Bool
	release  sync.Once
	// dropTracer is set when the generation that replaced this one
	// traces with another tracer: this one's is shut down on release.
	dropTracer atomic.Bool
	tracerDone func() // called once a dropped tracer has flushed
}

// acquire takes the current generation for a new session, which must
// call done when it ends.
func (s *Server) acquire() *generation {
	for {
		g := s.current.Load()
		g.sessions.Add(1)
		if !g.retired.Load() {
			return g
		}
		g.done() // swapped out meanwhile: take the new one
	}
}

// done ends one session's use of the generation.
func (g *generation) done() {
	if g.sessions.Add(-1) == 0 && g.retired.Load() {
		g.release.Do(g.close)
	}
}

// retire marks a generation replaced; it is released now if idle, else
// when its last session ends. Its upstreams stop re-resolving their
// targets at once: its remaining sessions have their peers.
func (g *generation) retire() {
	g.retired.Store(true)
	g.stopUpstreams()
	if g.sessions.Load() == 0 {
		g.release.Do(g.close)
	}
}

// close frees what only this generation uses: its Lua VMs, and its
// tracer when the next generation has another one.
func (g *generation) close() {
	g.plugins.close()
	if g.dropTracer.Load() {
		go func() {
			g.tracer.Shutdown()
			g.tracerDone()
		}()
	}
}

// stopUpstreams ends the re-resolving of the generation's upstreams; a
// generation that fails to build or to apply calls it too.
func (g *generation) stopUpstreams() {
	for _, u := range g.upstreams {
		u.stop()
	}
}

// listenKey identifies a listening socket across generations.
type listenKey struct {
	network string // "tcp" or "udp"
	addr    string
}

func keyOf(l conf.Listener) listenKey {
	if l.UDP {
		return listenKey{"udp", l.Addr()}
	}
	return listenKey{"tcp", l.Addr()}
}

// routeTarget is the router's payload for a route.
type routeTarget struct {
	route   *declarative.Route
	name    string   // route name or id, for logs
	service *service // nil: the route has no usable service
	// serverTLS terminates TLS for connections routed here by their
	// ClientHello: the shared config, or the route's own with its client
	// certificate and ALPN extensions. Nil without ssl listeners.
	serverTLS *tls.Config
	// preread and log are the plugins that run in those phases for
	// connections of this route, in order.
	preread, log []pluginRun
}

// service is a declarative service prepared for proxying.
type service struct {
	decl    *declarative.Service
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

// streamProtocols are the route protocols the stream router serves.
var streamProtocols = []string{"tcp", "tls", "udp", "tls_passthrough"}

// buildGeneration prepares a configuration for serving. accessLog returns
// the shared writer for a path. Errors name the entity at fault.
func buildGeneration(c *conf.Config, d *declarative.Config, ps *pluginSet, accessLog func(path string) (*accessLog, error), checkers *checkerSet, warn func(string, ...any)) (_ *generation, err error) {
	g := &generation{conf: c, decl: d, listeners: map[listenKey]conf.Listener{}}
	defer func() {
		if err != nil {
			g.stopUpstreams()
		}
	}()
	g.plugins = ps
	global := ps.collect(d.Plugins, "", "")
	g.globalLog = ps.implementing(global, pdk.PhaseLog)
	ps.consumers = d.Consumers
	ps.configs = map[string][]map[string]any{}
	for _, p := range d.Plugins {
		if p.Enabled && p.Stream() {
			ps.configs[p.Name] = append(ps.configs[p.Name], p.Config)
		}
	}
	for _, l := range c.StreamListeners {
		k := keyOf(l)
		if _, dup := g.listeners[k]; dup {
			return nil, fmt.Errorf("stream_listen: %s is listed twice", l.Listener)
		}
		g.listeners[k] = l
	}
	if !c.ProxyStreamAccessLog.Off {
		f, err := compileLogFormat(c.Stream.LogFormats[c.ProxyStreamAccessLog.Format])
		if err != nil {
			return nil, fmt.Errorf("nginx_stream_log_format: %w", err)
		}
		g.format = f
		if g.access, err = accessLog(c.ProxyStreamAccessLog.Path); err != nil {
			return nil, fmt.Errorf("proxy_stream_access_log: %w", err)
		}
	}
	if slices.ContainsFunc(c.StreamListeners, func(l conf.Listener) bool { return l.SSL }) {
		hook := certificateHook(ps, ps.implementing(global, pdk.PhaseCertificate))
		if g.tls, err = newTLSManager(c, d, hook); err != nil {
			return nil, err
		}
	}
	res, err := newResolver(c.DNS)
	if err != nil {
		return nil, err
	}
	g.resolver = res
	g.upstreams = map[string]*upstreamPeers{}
	services, err := buildServices(c, d, res, checkers, g.upstreams, warn)
	if err != nil {
		return nil, err
	}
	var routes []*router.Route
	for _, r := range d.Routes {
		if !slices.ContainsFunc(r.Protocols, func(p string) bool { return slices.Contains(streamProtocols, p) }) {
			continue
		}
		runs := ps.collect(d.Plugins, r.ID, derefOr(r.Service, ""))
		target := &routeTarget{route: r, name: nameOr(r.Name, r.ID),
			preread: ps.implementing(runs, pdk.PhasePreread), log: ps.implementing(runs, pdk.PhaseLog)}
		if g.tls != nil {
			if target.serverTLS, err = routeServerTLS(g.tls, d, r); err != nil {
				return nil, err
			}
		}
		if r.Service != nil {
			s, ok := services[*r.Service]
			if !ok {
				continue // its service is disabled: Kong leaves the route out
			}
			target.service = s
		}
		routes = append(routes, &router.Route{
			ID: r.ID, Name: target.name, Protocols: r.Protocols,
			Sources: endpoints(r.Sources), Destinations: endpoints(r.Destinations),
			SNIs: r.SNIs, CreatedAt: r.CreatedAt, Value: target,
		})
	}
	g.router, err = router.New(routes, router.Options{Flavor: router.Flavor(c.RouterFlavor)})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// buildServices prepares the enabled services, keyed by id; a service of an
// http protocol gets nil, so its routes serve without a service, as in Kong.
// The services of one upstream share its peers. Every upstream gets peers,
// added to ups by name, for kong.service.set_upstream too.
func buildServices(c *conf.Config, d *declarative.Config, res *balancer.Resolver, checkers *checkerSet, ups map[string]*upstreamPeers, warn func(string, ...any)) (map[string]*service, error) {
	upstreams := map[string]*declarative.Upstream{}
	for _, u := range d.Upstreams {
		upstreams[u.Name] = u
	}
	targets := map[string][]*declarative.Target{}
	for _, t := range d.Targets {
		targets[t.Upstream] = append(targets[t.Upstream], t)
	}
	out := map[string]*service{}
	for _, s := range d.Services {
		if !s.Enabled {
			continue
		}
		if !slices.Contains([]string{"tcp", "tls", "udp", "tls_passthrough"}, s.Protocol) {
			warn("service with protocol '%s' cannot be used with 'stream' subsystem", s.Protocol)
			out[s.ID] = nil
			continue
		}
		svc := &service{
			decl:    s,
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
				up, err = newUpstreamPeers(ctx, u, targets[u.ID], res, checkers, warn)
				cancel()
				if err != nil {
					return nil, fmt.Errorf("upstream %s: %w", u.Name, err)
				}
				ups[u.Name] = up
			}
			svc.peers = up
		} else {
			svc.peers = &hostPeers{host: s.Host, port: s.Port, resolver: res}
		}
		// Kong disables upstream TLS only for tcp services (and UDP never
		// has it); tls and tls_passthrough services both speak TLS.
		if s.Protocol == "tls" || s.Protocol == "tls_passthrough" {
			var err error
			if svc.tls, err = newUpstreamTLS(c, d, s, u); err != nil {
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
		up, err := newUpstreamPeers(ctx, u, targets[u.ID], res, checkers, warn)
		cancel()
		if err != nil {
			warn("upstream %s: %v", u.Name, err)
			continue
		}
		ups[u.Name] = up
	}
	return out, nil
}

// unusedUpstreamTimeout bounds resolving the targets of an upstream no
// service names (Kong's default connect_timeout).
const unusedUpstreamTimeout = 60 * time.Second

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

// destination is the address routes match as the connection's
// destination: the listener's local address, its port mapped through
// port_maps as Kong does for the first routing pass.
func (g *generation) destination(local netip.AddrPort) netip.AddrPort {
	if p, ok := g.conf.PortMaps[int(local.Port())]; ok {
		return netip.AddrPortFrom(local.Addr(), uint16(p))
	}
	return local
}

// trusted reports whether a peer may set the client address with a PROXY
// protocol header (trusted_ips).
func (g *generation) trusted(peer netip.Addr) bool {
	peer = peer.Unmap()
	for _, p := range g.conf.TrustedIPs {
		if p.Contains(peer) {
			return true
		}
	}
	return false
}

// routeLabel names a route for log lines.
func routeLabel(t *routeTarget) string {
	var b strings.Builder
	b.WriteString("route: ")
	b.WriteString(t.name)
	if t.service != nil {
		b.WriteString(", service: ")
		b.WriteString(t.service.name)
	}
	return b.String()
}
