// Package lua is gong's gopher-lua host: the compiled module bundle of a
// config generation, the pool of Lua VMs built from it, protected calls
// under a context, and the LuaJIT/Lua 5.2 extensions Kong code relies on
// and gopher-lua lacks.
//
// It knows nothing of Kong: no kong.* or ngx.*, no plugins, no phases. The
// pdk package installs those through the pool's setup function, Go modules
// (GoModules) and reset hooks (VM.OnReset); runtime decides what to run
// and when. Imports: the standard library and github.com/yuin/gopher-lua
// (with its parse package) only.
//
// Usage:
//
//	b, err := lua.NewBundle(sources, lua.GoModules(pdkModules)) // once per generation
//	pool := lua.NewPool(b, lua.PoolOptions{MaxVMs: 64}, pdk.Install)
//	defer pool.Close()
//
//	vm, err := pool.Get(ctx)
//	handler, err := vm.Require(ctx, "kong.plugins.x.handler")
//	phaseCtx, cancel := context.WithTimeout(ctx, phaseTimeout)
//	exited, results, err := vm.Run(phaseCtx, vm.L.GetField(handler, "preread"), handler, conf)
//	cancel()
//	pool.Put(vm) // discards the VM instead when its state is not trusted
//
// Guarantees and their limits:
//
//   - Each module is parsed and compiled once per Bundle; every VM runs
//     closures over the same *FunctionProto, and require runs a module's
//     top level at most once per VM (package.loaded).
//   - gopher-lua has no instruction hook, so the "instruction budget" of a
//     phase is its context deadline: the VM checks the context between
//     instructions, which stops infinite loops and allocation loops that
//     run Lua code. A Go function that blocks must watch L.Context()
//     itself.
//   - Recursion is bounded by CallStackSize and reported as a Runtime
//     "stack overflow" error; the value stack by RegistryMaxSize ("registry
//     overflow"). Heap memory is not bounded per VM: a loop that allocates
//     fast enough (s = s .. s, or t[1e7] = 1, which gopher-lua stores as an
//     array padded with nils) can grow the process before the deadline
//     fires. L.SetMx is not a remedy: it exits the process.
//   - A Go panic is reported as Kind Panic only when it reaches Call or Run;
//     Lua code that catches it with its own pcall sees an ordinary error.
//
// Compat extensions on every VM (those LuaJIT and Kong code expect): bit (module and
// global, LuaJIT's signed 32-bit results), table.new, table.clear,
// table.nkeys, table.isempty, table.isarray, table.clone (also as
// require "table.new" and so on), table.pack, table.unpack, load(chunk,
// name, mode, env), xpcall(f, handler, ...), jit (fields and no-op switches: there is no compiler),
// string.buffer (string building only), tostring of numbers as LuaJIT's
// "%.14g" (inf, -inf, nan, 1e+15), tonumber with exponents ("1e2"),
// string.rep with a separator, math.log with a base. Sources bundled or
// given to load may use the "\xNN", "\z" and "\u{...}" string escapes:
// they are rewritten into Lua 5.1's before gopher-lua's lexer sees them.
//
// Not done here, because they need a patched gopher-lua or belong to
// other packages:
//
//   - number formatting of the .. operator, print and string.format("%s"),
//     which go through gopher-lua's LNumber.String (Go formatting);
//   - __pairs/__ipairs, weak tables, the %f pattern,
//     coroutine.running's second result, collectgarbage("count"),
//     debug.getinfo().short_src, os.date's %a/%x/%j;
//   - string.buffer encode/decode and its FFI methods;
//   - ffi, cjson, resty.*, ngx.* and kong.* (the pdk package).
package lua
