package stream

import (
	"github.com/gong-proxy/gong/runtime/balancer"
	"github.com/gong-proxy/gong/runtime/conf"
)

// resolvConf is where the nameservers, search domains and query timeout
// come from when dns_resolver is not set.
const resolvConf = "/etc/resolv.conf"

// newResolver builds the resolver of service hosts and upstream targets
// from the dns_* settings.
func newResolver(d conf.DNS) (*balancer.Resolver, error) {
	return balancer.NewResolver(balancer.ResolverConfig{
		Nameservers: d.Resolvers,
		ResolvConf:  resolvConf,
		HostsFile:   d.HostsFile,
		Order:       d.Order,
		ValidTTL:    d.ValidTTL,
		StaleTTL:    d.StaleTTL,
		NotFoundTTL: d.NotFoundTTL,
		ErrorTTL:    d.ErrorTTL,
		CacheSize:   d.CacheSize,
		NoSync:      d.NoSync,
	})
}
