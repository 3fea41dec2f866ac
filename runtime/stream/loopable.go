package stream

import (
	"slices"

	"github.com/gong-proxy/gong/runtime/declarative"
)

// loopListeners are the listeners of cfg whose sessions the event loops
// may serve (loop_linux.go): plain TCP listeners, every route of which
// has a service the loops can dial (loopDialable) or none. Anything else
// needs a goroutine per session: TLS, DNS, PROXY headers to upstreams.
// Plugins may run: their hooks run on worker goroutines.
func (c *Config) loopListeners() map[ListenKey]bool {
	out := map[ListenKey]bool{}
	for k, l := range c.Listeners {
		if l.UDP || l.SSL {
			continue
		}
		port := uint16(l.Port)
		if p, ok := c.Conf.PortMaps[l.Port]; ok {
			port = uint16(p)
		}
		if !slices.ContainsFunc(c.tcpRoutes, func(r *Route) bool {
			return r.mayMatchPort(port) && r.Service != nil && !r.Service.loopDialable()
		}) {
			out[k] = true
		}
	}
	return out
}

// mayMatchPort reports whether the route may match a connection whose
// destination port is port: it has no destinations, or one without a
// port or with this one. An expression route may match any.
func (r *Route) mayMatchPort(port uint16) bool {
	d := r.Decl
	if d.Expression != nil || len(d.Destinations) == 0 {
		return true
	}
	return slices.ContainsFunc(d.Destinations, func(e declarative.Endpoint) bool { return e.Port == nil || *e.Port == int(port) })
}

// loopDialable reports whether an event loop can dial the service: over
// plain TCP, without a PROXY header, to an IP address or through an
// upstream, whose picks never wait for DNS.
func (svc *Service) loopDialable() bool {
	if svc.tls != nil || svc.proxyProtocol {
		return false
	}
	switch p := svc.peers.(type) {
	case *hostPeers:
		return p.literal != ""
	case *UpstreamPeers:
		return true
	}
	return false
}
