// Package schema is gong's one schema engine: Kong's schema DSL
// (typedefs, validators, entity checks, defaults) for the core entities
// and for plugin configs, with Kong's messages and nested error shape. It
// mirrors kong/db/schema/init.lua, kong/db/schema/typedefs.lua and
// kong/db/schema/entities/plugins.lua.
//
// The core entities' schemas are built in Go (build.go: String, Integer,
// Record, ... with Required, Default, Custom, Checks, Shorthand,
// Subschemas, Auto) by runtime/declarative and validated with
// Field.Process, Field.ValidateRecord and Field.Validate. A plugin's schema
// is read by Define from its definition as Go values, which
// runtime/schema/luaschema converts from the table schema.lua returns; its
// functions (custom validators, entity checks, shorthand funcs) are Funcs
// that run Lua on the VM the table came from. Schema.Validate checks a
// plugin config and fills Kong's defaults. The typedef validators (hosts.go:
// ValidateHost, ValidateSNI, NormalizeIP, ...) serve both the entity
// schemas and the kong.db.schema.typedefs Lua module.
//
// Imports: the standard library and github.com/yuin/gopher-lua/pm (Lua 5.1
// patterns); no Lua VM.
//
// Values are decoded JSON/YAML: map[string]any (records and maps), []any
// (arrays and sets), string, float64 (other Go numbers are converted),
// bool and nil. A key present with a nil value is Kong's ngx.null; an
// absent key is Lua's nil.
//
// Not covered: json fields (json_schema), transformations, the schema-level
// check function, auto fields in plugin schemas, vault references
// (referenceable values are validated as plain strings), and the
// select-time output of deprecated shorthand fields. is_regex compiles with
// Go's regexp, not PCRE.
package schema
