// Package schema is gong's one schema engine: Kong's schema DSL
// (typedefs, validators, entity checks, defaults) for the core entities
// and for plugin configs, with Kong's messages and nested error shape.
//
// The core entities' schemas are built in Go (build.go: String, Integer,
// Record, ... with Required, Default, Custom, Checks, Shorthand,
// Subschemas, Auto) by runtime/declarative, and validated without a VM
// (Field.Process, Field.ValidateRecord, Field.Validate). The typedef
// validators (hosts.go: ValidateHost, ValidateSNI, NormalizeIP, ...) serve
// both those schemas and the kong.db.schema.typedefs Lua module.
//
// It owns the Go-native Lua modules "kong.db.schema" (define) and
// "kong.db.schema.typedefs" (callable typedef tables whose custom
// validators are Go functions), the conversion of the table a plugin's
// schema.lua returns into a Schema (Load), and the validation of a plugin
// config with Kong's messages and nested error shape, followed by Kong's
// default filling (Schema.Validate). It mirrors kong/db/schema/init.lua,
// kong/db/schema/typedefs.lua and kong/db/schema/entities/plugins.lua.
//
// Imports: the standard library, github.com/yuin/gopher-lua (with its pm
// pattern matcher, for Lua 5.1 patterns) and github.com/gong-proxy/gong/lua.
//
// Values on the Go side are decoded JSON/YAML: map[string]any (records and
// maps), []any (arrays and sets), string, float64 (other Go numbers are
// converted), bool and nil. A key present with a nil value is Kong's
// ngx.null; an absent key is Lua's nil. In Lua, null is the VM's ngx.null
// when the "ngx" global has one when the typedefs module is loaded, and a
// sentinel of this package otherwise.
//
// Not covered: json fields (json_schema), transformations, the schema-level
// check function, auto fields in plugin schemas, vault references (referenceable values are
// validated as plain strings), and the select-time output of deprecated
// shorthand fields. is_regex compiles with Go's regexp, not PCRE.
package schema
