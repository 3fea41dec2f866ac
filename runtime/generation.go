package runtime

import (
	"sync/atomic"

	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/runloop"
	"github.com/gong-proxy/gong/runtime/stream"
	"github.com/gong-proxy/gong/runtime/telemetry"
)

// generation is everything built from one configuration: the engine's
// part (listeners, router, services, certificates, access log, tracer)
// and the plugins that run as its hooks. It is immutable; sessions keep
// the generation they started with, and it is released (its Lua VMs
// closed) once it is retired and its last session has ended.
type generation struct {
	conf    *conf.Config
	decl    *declarative.Config
	hash    string // the declarative configuration's, as Kong's configuration_hash
	stream  *stream.Config
	plugins *runloop.Plugins
	// rotation re-reads the vault references of its certificates and
	// plugin configs while it is current; nil when it has none.
	rotation *rotation

	// dropTracer is set when the generation that replaced this one
	// traces with another tracer: this one's is shut down on release.
	dropTracer atomic.Bool
	tracerDone func() // called once a dropped tracer has flushed
}

// tracer is the generation's tracer, nil when tracing is off.
func (g *generation) tracer() *telemetry.Tracer { return g.stream.Tracer }

// hold takes the current generation for a user that must call done.
func (s *Server) hold() *generation {
	for {
		if g := s.current.Load(); g.stream.Hold() {
			return g
		}
	}
}

func (g *generation) done() { g.stream.Done() }

// close frees what only this generation uses: its Lua VMs, and its
// tracer when the next generation has another one.
func (g *generation) close() {
	g.plugins.Close()
	if g.dropTracer.Load() {
		go func() {
			g.stream.Tracer.Shutdown()
			g.tracerDone()
		}()
	}
}
