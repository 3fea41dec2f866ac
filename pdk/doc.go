// Package pdk owns Kong's plugin development kit as gong's stream plugins
// see it: the kong.* namespaces, the ngx subset they use and the cjson
// modules, written in Go on gopher-lua. It imports the lua host only; the
// runtime implements Session and binds a State for each lease.
//
// Usage:
//
//	b, _ := lua.NewBundle(sources, lua.GoModules(pdk.Modules()))
//	pool := lua.NewPool(b, lua.PoolOptions{}, pdk.Setup(opts))
//	vm, _ := pool.Get(ctx)
//	st := &pdk.State{Phase: pdk.PhasePreread, Session: conn, Plugin: "my-plugin"}
//	pdk.BindingOf(vm.L).State = st // unbound again by pool.Put
//	exited, _, err := vm.Run(ctx, handler.preread, handler, conf)
//
// Each namespace file starts with its registration table in Kong's order
// and phase contract; testdata/surface.golden lists the result.
package pdk
