package runtime

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/gong-proxy/gong/runtime/conf"
)

// resolver turns service hosts into addresses with the dns_* settings:
// dns_hostsfile first, then the dns_resolver nameservers (or
// /etc/resolv.conf's), asking for the address families dns_order allows.
type resolver struct {
	net     *net.Resolver
	hosts   map[string][]netip.Addr
	network string // "ip", "ip4" or "ip6"
}

func newResolver(d conf.DNS) (*resolver, error) {
	r := &resolver{net: net.DefaultResolver, network: "ip"}
	if len(d.Resolvers) > 0 {
		servers := d.Resolvers
		var dialer net.Dialer
		r.net = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var last error
			for _, s := range servers {
				c, err := dialer.DialContext(ctx, network, s)
				if err == nil {
					return c, nil
				}
				last = err
			}
			return nil, last
		}}
	}
	a, aaaa := slices.Contains(d.Order, "A"), slices.Contains(d.Order, "AAAA")
	switch {
	case a && !aaaa:
		r.network = "ip4"
	case aaaa && !a:
		r.network = "ip6"
	}
	if d.HostsFile != "" {
		hosts, err := readHostsFile(d.HostsFile)
		if err != nil {
			return nil, err
		}
		r.hosts = hosts
	}
	return r, nil
}

// readHostsFile parses an /etc/hosts style file: an address, then names.
func readHostsFile(path string) (map[string][]netip.Addr, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dns_hostsfile: %w", err)
	}
	defer f.Close()
	hosts := map[string][]netip.Addr{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		addr, err := netip.ParseAddr(fields[0])
		if err != nil {
			continue
		}
		for _, name := range fields[1:] {
			name = strings.ToLower(name)
			hosts[name] = append(hosts[name], addr.Unmap())
		}
	}
	return hosts, sc.Err()
}

// lookup returns the addresses of host: an IP literal as is, else the
// hosts file's entries, else DNS.
func (r *resolver) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	if addrs := r.hosts[strings.ToLower(host)]; len(addrs) > 0 {
		return addrs, nil
	}
	addrs, err := r.net.LookupNetIP(ctx, r.network, host)
	if err != nil {
		return nil, fmt.Errorf("name resolution failed for %s: %w", host, err)
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}
