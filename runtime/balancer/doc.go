// Package balancer picks the peer of each connection to an upstream with
// Kong's algorithms (kong/runloop/balancer/*.lua): the weighted
// round-robin wheel, the consistent-hashing continuum, least-connections
// and latency (EWMA of connect time). It also resolves names as Kong's DNS
// client does (Resolver: hosts file, dns_order, TTL cache with stale and
// negative answers), keeps an upstream's targets resolved (Upstream), and
// checks the health of their addresses (Checker).
//
// A Balancer is built from resolved addresses and is safe for concurrent
// use; an Upstream replaces it when DNS answers change. A Handle follows
// one connection across its attempts.
package balancer
