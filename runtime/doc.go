// Package runtime is the gong server: it builds configuration
// generations, swaps them into the stream engine on reload, and hosts
// the Admin and Status APIs.
//
// A generation is everything built from one kong.conf and one declarative
// config: the engine's part (runtime/stream: listeners, router, services
// with their balancers, certificates, access log) and the plugins that run
// as the engine's hooks (runtime/runloop). New connections take the
// current generation; established ones keep theirs until they end, so a
// reload never touches them. A reload that fails to build leaves the
// current generation serving.
//
// cmd/gong drives it through Server.
package runtime
