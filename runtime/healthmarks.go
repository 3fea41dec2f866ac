package runtime

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/store/postgres"
)

// healthMark is a target's health set through the Admin API, as Kong
// broadcasts it on the balancer:post_health channel so that every node's
// balancer applies it: "hostname|ip|port|health|upstream id|upstream
// name", where ip is empty for the whole target, port is the target's
// port (or the address's when ip is set) and health is 1 or 0.
type healthMark struct {
	hostname, ip             string
	port                     int
	healthy                  bool
	upstreamID, upstreamName string
}

func (m healthMark) String() string {
	health := 0
	if m.healthy {
		health = 1
	}
	return fmt.Sprintf("%s|%s|%d|%d|%s|%s", m.hostname, m.ip, m.port, health, m.upstreamID, m.upstreamName)
}

// parseHealthMark reads Kong's payload; the upstream's name is the rest
// of the line.
func parseHealthMark(data string) (healthMark, error) {
	f := strings.SplitN(data, "|", 6)
	if len(f) != 6 || f[0] == "" || f[4] == "" {
		return healthMark{}, fmt.Errorf("malformed %s event %q", postgres.HealthChannel, data)
	}
	port, err := strconv.Atoi(f[2])
	if err != nil {
		return healthMark{}, fmt.Errorf("malformed %s event %q: port %q", postgres.HealthChannel, data, f[2])
	}
	return healthMark{hostname: f[0], ip: f[1], port: port, healthy: f[3] == "1", upstreamID: f[4], upstreamName: f[5]}, nil
}

// newHealthMark is the event for a mark set on target ("host:port" as
// the targets entity has it) of upstream u, for the whole target when
// address is "", else for the address ("ip[:port]", port 8000 when
// absent), with Kong's fields.
func newHealthMark(u *declarative.Upstream, target, address string, healthy bool) healthMark {
	host, port := splitTarget(target)
	m := healthMark{hostname: formatHost(host), port: port, healthy: healthy, upstreamID: u.ID, upstreamName: u.Name}
	if address != "" {
		m.ip, m.port = splitTarget(address)
		m.ip = strings.Trim(m.ip, "[]")
	}
	return m
}

// splitTarget splits "host:port", "[v6]:port" or a bare host (port 8000,
// Kong's default).
func splitTarget(s string) (host string, port int) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return strings.Trim(s, "[]"), defaultTargetPort
	}
	port, err = strconv.Atoi(p)
	if err != nil {
		port = defaultTargetPort
	}
	return h, port
}

// formatHost writes an IPv6 address in brackets, as Kong's hostnames are.
func formatHost(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

// broadcastHealth tells the other nodes of the database about a mark this
// node's Admin API set. As in Kong, a failed broadcast does not undo the
// local mark; it is logged.
func (s *Server) broadcastHealth(m healthMark) {
	if s.db == nil {
		return
	}
	if err := s.db.Broadcast(context.Background(), postgres.HealthChannel, m.String()); err != nil {
		s.log.Error(fmt.Sprintf("failed broadcasting the health of upstream %s to the other nodes: %v", m.upstreamName, err))
	}
}

// applyHealthEvent applies a mark another node broadcast to this node's
// balancer, without a rebuild. Marks for upstreams or targets this node
// does not have are logged and dropped, as Kong's nodes do.
func (s *Server) applyHealthEvent(data string) {
	m, err := parseHealthMark(data)
	if err != nil {
		s.log.Error(err.Error())
		return
	}
	if err := s.applyHealthMark(m); err != nil {
		s.log.Error(fmt.Sprintf("failed posting health of %s to workers: %v", m.upstreamName, err))
	}
}

func (s *Server) applyHealthMark(m healthMark) error {
	g := s.current.Load()
	if g == nil {
		return fmt.Errorf("Upstream %s has no balancer", m.upstreamName)
	}
	var up *declarative.Upstream
	for _, u := range g.decl.Upstreams {
		if u.ID == m.upstreamID {
			up = u
			break
		}
	}
	if up == nil {
		return fmt.Errorf("Upstream %s has no balancer", m.upstreamName)
	}
	address := ""
	if m.ip != "" {
		address = net.JoinHostPort(m.ip, strconv.Itoa(m.port))
	}
	found := false
	for _, t := range g.decl.Targets {
		if t.Upstream != up.ID {
			continue
		}
		host, port := splitTarget(t.Target)
		if formatHost(host) != m.hostname || m.ip == "" && port != m.port {
			continue
		}
		found = true
		if err := s.markHealth(up.Name, t.Target, address, m.healthy); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("no target %s:%d in upstream %s", m.hostname, m.port, m.upstreamName)
	}
	return nil
}

// markHealth forces a target's health in the current configuration's
// balancer, with Kong's errors for an upstream whose balancer could not
// be built and one without health checks. An address that is not an IP
// stands for the whole target; one without a port has Kong's default,
// 8000.
func (s *Server) markHealth(upstream, target, address string, healthy bool) error {
	up := s.current.Load().stream.Upstreams[upstream]
	if up == nil {
		return fmt.Errorf("Upstream %s has no balancer", upstream)
	}
	if up.Checker == nil {
		return fmt.Errorf("no healthchecker found for %s", upstream)
	}
	addr, err := netip.ParseAddrPort(address)
	if ip, ipErr := netip.ParseAddr(strings.Trim(address, "[]")); err != nil && ipErr == nil {
		addr = netip.AddrPortFrom(ip, defaultTargetPort)
	}
	up.Checker.SetHealthy(target, addr, healthy)
	return nil
}

// defaultTargetPort is the port of a target written without one.
const defaultTargetPort = 8000
