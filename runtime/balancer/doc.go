// Package balancer picks the peer of each connection to an upstream with
// Kong's algorithms (kong/runloop/balancer/*.lua): the weighted
// round-robin wheel, the consistent-hashing continuum, least-connections
// and latency (EWMA of connect time).
//
// A Balancer is built per upstream and config generation from resolved
// addresses; it is safe for concurrent use. A Handle follows one
// connection across its attempts. balancer imports the standard library
// and an xxHash32 implementation only.
package balancer
