// Package router matches the facts of a stream connection (protocol, SNI,
// source and destination address) to Kong stream routes (snis, sources,
// destinations) with the semantics of Kong's router flavors: traditional
// (kong/router/traditional.lua), traditional_compatible
// (kong/router/compat.lua, transform.lua, atc.lua) and expressions
// (kong/router/expressions.lua), whose language (expr.go) is that of
// Kong's ATC router for the stream fields.
//
// One deliberate difference from Kong holds in every flavor: a route with
// snis never matches a connection that carries no SNI.
//
// A Router is built once per config generation by New, is read-only
// afterwards and is safe for concurrent Match calls. Routes are indexed by
// SNI, address, port and CIDR (expression routes by net.dst.port and
// tls.sni) so a lookup does not scan the route list, and results (positive and negative) are kept in bounded LRU caches keyed like
// Kong's.
//
// The package does no I/O, knows nothing of Lua, and imports no other gong
// package: the runtime translates its entities into Route values.
//
//	rt, err := router.New(routes, router.Options{Flavor: router.TraditionalCompatible})
//	if err != nil { ... }
//	route, ok := rt.Match(router.ConnInfo{Protocol: "tls", Src: src, Dst: dst, SNI: sni})
package router
