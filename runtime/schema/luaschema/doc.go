// Package luaschema reads plugin schema.lua files into runtime/schema.
//
// It owns the Go-native Lua modules "kong.db.schema" (define) and
// "kong.db.schema.typedefs" (callable typedef tables whose custom
// validators are Go functions), and Load, which converts the table a
// plugin's schema.lua returns into Go values (each Lua function wrapped as
// a schema.Func that calls it on the VM, bounded by a timeout) and hands
// them to schema.Define.
//
// In Lua, null is the VM's ngx.null when the "ngx" global has one when the
// typedefs module is loaded, and a sentinel of this package otherwise.
//
// Imports: the standard library, github.com/yuin/gopher-lua,
// github.com/gong-proxy/gong/lua and runtime/schema.
package luaschema
