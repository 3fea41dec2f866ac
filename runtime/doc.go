// Package runtime is the gong server: listeners, the life of each
// connection (PROXY protocol, routing, upstream dial with retries, the byte
// relay, logs), and configuration generations, built, swapped and drained
// on reload.
//
// A generation is everything built from one kong.conf and one declarative
// config: the router, the services with their balancers, the listener
// settings and the access log. New connections take the current
// generation; established ones keep theirs until they end, so a reload
// never touches them. A reload that fails to build leaves the current
// generation serving.
//
// runtime imports runtime/conf, runtime/declarative and router; cmd/gong
// drives it through Server.
package runtime
