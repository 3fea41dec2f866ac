package schema

import (
	"fmt"
	"sort"

	glua "github.com/yuin/gopher-lua"

	"github.com/gong-proxy/gong/lua"
)

// Schema is a loaded plugin schema: the plugins entity specialised by the
// plugin's schema.lua. It holds Lua functions of the VM it was loaded on
// (custom validators, entity checks, shorthand funcs), so Validate must be
// given that VM.
type Schema struct {
	name string
	root *Field // a record: the plugin's top-level fields
	def  map[string]any
}

// patErr is one entry of match_all or match_none.
type patErr struct {
	pattern, err string
}

// Field is one field definition (kong/db/schema/metaschema.lua attributes):
// read from a plugin's schema.lua by Load, or built in Go with the
// constructors of build.go for the core entities.
type Field struct {
	name     string
	typ      string
	required bool
	explicit bool // required was written in the definition

	def    any
	hasDef bool

	eq, ne         any
	hasEq, hasNe   bool
	eqNull, neNull bool

	oneOf, notOneOf       []any
	hasOneOf, hasNotOneOf bool
	gt                    *float64
	timestamp, uuid       bool
	isRegex               bool
	between               *[2]float64
	lenEq, lenMin, lenMax *int
	startsWith            *string
	notMatch, match       *string
	matchNone, matchAll   []patErr
	matchAny              *matchAny
	contains              any
	hasContains           bool
	custom                glua.LValue // custom_validator: a Lua or Go function
	mutexSubsets          [][]any
	err                   string // overrides every validator message

	elements, keys, values *Field

	fields     []*Field
	byName     map[string]*Field
	checks     []*entityCheck
	shorthands []*shorthand

	abstract      bool
	referenceable bool
	reference     string

	raw *glua.LTable // the definition, for entity-check overlays

	// Go-built entities only (build.go).
	auto        bool                // id and timestamps: left absent, filled by the loader
	goCustom    func(string) string // a custom validator of string values
	goChecks    []Check             // entity checks, after the Lua ones
	goShorthand func(map[string]any) Errors
	subs        *subschemas
}

type matchAny struct {
	patterns []string
	err      string
}

// shorthand is one shorthand_fields entry.
type shorthand struct {
	name        string
	def         *Field
	fn          glua.LValue
	deprecation bool
	replaced    [][]string // deprecation.replaced_with[i].path
}

// types are Kong's valid field types (Schema.valid_types), plus "any".
var types = map[string]bool{
	"array": true, "set": true, "string": true, "number": true, "boolean": true,
	"integer": true, "foreign": true, "map": true, "record": true,
	"function": true, "any": true,
}

// restricted lists the attributes allowed only on some types
// (kong/db/schema/metaschema.lua attribute_types).
var restricted = map[string][]string{
	"between":     {"integer", "number"},
	"len_eq":      {"array", "set", "string", "map"},
	"match":       {"string"},
	"one_of":      {"string", "number", "integer"},
	"contains":    {"array", "set"},
	"is_regex":    {"string"},
	"uuid":        {"string"},
	"timestamp":   {"number", "integer"},
	"unique":      {"string", "number", "integer", "foreign"},
	"abstract":    {"string", "number", "integer", "record", "array", "set", "map"},
	"json_schema": {"json"},
	"transient":   {"string", "number", "integer", "array", "set", "boolean"},
}

// attributes are the keys a field definition may hold.
var attributes = map[string]bool{
	"type": true, "required": true, "reference": true, "description": true,
	"examples": true, "auto": true, "unique": true, "unique_across_ws": true,
	"on_delete": true, "default": true, "abstract": true,
	"generate_admin_api": true, "immutable": true, "err": true,
	"encrypted": true, "referenceable": true, "json_schema": true,
	"transient": true, "deprecation": true,
	"between": true, "eq": true, "ne": true, "gt": true, "len_eq": true,
	"len_min": true, "len_max": true, "match": true, "not_match": true,
	"match_all": true, "match_none": true, "match_any": true,
	"starts_with": true, "one_of": true, "not_one_of": true, "contains": true,
	"is_regex": true, "timestamp": true, "uuid": true, "custom_validator": true,
	"mutually_exclusive_subsets": true,
	"elements":                   true, "keys": true, "values": true, "fields": true,
	"entity_checks": true, "shorthand_fields": true,
	// Set by the engine on definitions it has seen (Kong's own mutation).
	"nilable": true, "translate_backwards": true,
}

// topKeys are the keys a plugin schema table may hold (MetaSubSchema).
var topKeys = map[string]bool{
	"name": true, "fields": true, "entity_checks": true,
	"shorthand_fields": true, "transformations": true, "check": true,
}

// loader carries the VM while a schema table is read.
type loader struct {
	L    *glua.LState
	null func(glua.LValue) bool
}

// Load turns the table a plugin's schema.lua returns into a Schema. Errors
// name the plugin and the offending field ("plugin 'x' schema: field
// 'config.y': unknown type 'z'").
func Load(vm *lua.VM, name string, tbl *glua.LTable) (*Schema, error) {
	if tbl == nil {
		return nil, fmt.Errorf("plugin '%s' schema: expected a table", name)
	}
	ld := &loader{L: vm.L, null: nullTest(vm.L)}
	root, err := ld.top(tbl)
	if err != nil {
		return nil, fmt.Errorf("plugin '%s' schema: %w", name, err)
	}
	def, _ := jsonable(tbl, ld.null, 0).(map[string]any)
	return &Schema{name: name, root: root, def: def}, nil
}

// Name is the plugin name the schema was loaded for.
func (s *Schema) Name() string { return s.name }

// Definition is the table schema.lua returned, as JSON values: what
// Kong's Admin API shows as the plugin's schema. Functions (custom
// validators, entity checks) are left out.
func (s *Schema) Definition() map[string]any { return s.def }

// httpProtocols is typedefs.protocols' default: the http subsystem
// protocols, sorted.
var httpProtocols = []string{"grpc", "grpcs", "http", "https"}

// Protocols is the plugin's default protocols: its protocols field's
// default, or the plugins entity's (typedefs.protocols) when the schema
// does not declare one.
func (s *Schema) Protocols() []string {
	f := s.root.byName["protocols"]
	if f == nil || !f.hasDef {
		return append([]string(nil), httpProtocols...)
	}
	var out []string
	if l, ok := f.def.([]any); ok {
		for _, v := range l {
			if str, ok := v.(string); ok {
				out = append(out, str)
			}
		}
	}
	return out
}

// AllowedProtocols is the one_of of the plugin's protocols field's
// elements (typedefs.protocols_http gives the http ones), nil when the
// schema declares none and every protocol the plugins entity knows is
// allowed. Kong validates a plugin entity's protocols against it.
func (s *Schema) AllowedProtocols() []string {
	f := s.root.byName["protocols"]
	if f == nil || f.elements == nil || !f.elements.hasOneOf {
		return nil
	}
	var out []string
	for _, v := range f.elements.oneOf {
		if str, ok := v.(string); ok {
			out = append(out, str)
		}
	}
	return out
}

// NoConsumer reports whether the schema forbids scoping to a consumer
// (typedefs.no_consumer: eq = null); the loader then sets
// handler.no_consumer.
func (s *Schema) NoConsumer() bool { return s.forbids("consumer") }

// NoRoute reports whether the schema forbids scoping to a route.
func (s *Schema) NoRoute() bool { return s.forbids("route") }

// NoService reports whether the schema forbids scoping to a service.
func (s *Schema) NoService() bool { return s.forbids("service") }

func (s *Schema) forbids(name string) bool {
	f := s.root.byName[name]
	return f != nil && f.eqNull
}

// parentFields are the plugins entity fields and their types
// (kong/db/schema/entities/plugins.lua); a plugin schema may only
// specialise them.
var parentFields = map[string]string{
	"id": "string", "name": "string", "instance_name": "string",
	"created_at": "integer", "updated_at": "integer", "route": "foreign",
	"service": "foreign", "consumer": "foreign", "config": "record",
	"protocols": "set", "enabled": "boolean", "tags": "set",
}

func (ld *loader) top(tbl *glua.LTable) (*Field, error) {
	var err error
	tbl.ForEach(func(k, _ glua.LValue) {
		if err == nil && !topKeys[k.String()] {
			err = fmt.Errorf("unknown field '%s'", k.String())
		}
	})
	if err != nil {
		return nil, err
	}
	if _, ok := tbl.RawGetString("name").(glua.LString); !ok {
		return nil, fmt.Errorf("field 'name': required field missing")
	}
	fieldsTbl, ok := tbl.RawGetString("fields").(*glua.LTable)
	if !ok {
		return nil, fmt.Errorf("field 'fields': required field missing")
	}
	root := &Field{typ: "record", raw: tbl}
	if root.fields, root.byName, err = ld.fieldList(fieldsTbl, ""); err != nil {
		return nil, err
	}
	for _, f := range root.fields {
		want, ok := parentFields[f.name]
		if !ok {
			return nil, fmt.Errorf("field '%s': cannot create a new field", f.name)
		}
		if !compatible(want, f) {
			return nil, fmt.Errorf("field '%s': cannot change type in a specialized field", f.name)
		}
		if f.typ == "record" {
			// entity.lua make_records_required, below the root
			requireRecords(f.fields)
			f.required = true
		}
	}
	if root.checks, err = ld.entityChecks(tbl, root, ""); err != nil {
		return nil, err
	}
	if root.shorthands, err = ld.shorthands(tbl, ""); err != nil {
		return nil, err
	}
	return root, nil
}

// compatible mirrors compatible_fields in kong/db/schema/init.lua, for the
// parent types plugins uses.
func compatible(parent string, f *Field) bool {
	if parent == f.typ {
		return true
	}
	return parent == "set" && f.typ == "array"
}

// requireRecords makes every record field required unless it says
// required = false (kong/db/schema/entity.lua make_records_required).
func requireRecords(fields []*Field) {
	for _, f := range fields {
		if f.typ == "record" {
			if !f.explicit {
				f.required = true
			}
			requireRecords(f.fields)
		}
	}
}

func (ld *loader) fieldList(tbl *glua.LTable, prefix string) ([]*Field, map[string]*Field, error) {
	var out []*Field
	byName := map[string]*Field{}
	n := tbl.Len()
	for i := 1; i <= n; i++ {
		item, ok := tbl.RawGetInt(i).(*glua.LTable)
		if !ok {
			return nil, nil, fmt.Errorf("field '%sfields[%d]': expected a table", prefix, i)
		}
		var name string
		var def glua.LValue
		count := 0
		item.ForEach(func(k, v glua.LValue) {
			count++
			name, def = k.String(), v
		})
		if count != 1 {
			return nil, nil, fmt.Errorf("field '%sfields[%d]': expected a one-key table", prefix, i)
		}
		dt, ok := def.(*glua.LTable)
		if !ok {
			return nil, nil, fmt.Errorf("field '%s%s': expected a definition table", prefix, name)
		}
		f, err := ld.field(name, prefix+name, dt)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, f)
		byName[name] = f
	}
	return out, byName, nil
}

// field reads one definition; path names it in errors.
func (ld *loader) field(name, path string, t *glua.LTable) (*Field, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("field '%s': %s", path, fmt.Sprintf(format, a...))
	}
	f := &Field{name: name, raw: t}
	typ, ok := t.RawGetString("type").(glua.LString)
	if !ok {
		return nil, fail("missing type")
	}
	f.typ = string(typ)
	if f.typ == "json" {
		return nil, fail("json fields are not supported")
	}
	if !types[f.typ] {
		return nil, fail("unknown type '%s'", f.typ)
	}
	var keys []string
	t.ForEach(func(k, _ glua.LValue) { keys = append(keys, k.String()) })
	sort.Strings(keys)
	for _, k := range keys {
		if !attributes[k] {
			return nil, fail("unknown attribute '%s'", k)
		}
		if allowed, ok := restricted[k]; ok && !contains(allowed, f.typ) {
			return nil, fail("field of type '%s' cannot have attribute '%s'", f.typ, k)
		}
	}
	var err error
	get := t.RawGetString
	if v := get("required"); v != glua.LNil {
		f.explicit = true
		f.required = glua.LVAsBool(v)
	}
	f.abstract = glua.LVAsBool(get("abstract"))
	f.referenceable = glua.LVAsBool(get("referenceable"))
	f.timestamp = glua.LVAsBool(get("timestamp"))
	f.uuid = glua.LVAsBool(get("uuid"))
	f.isRegex = glua.LVAsBool(get("is_regex"))
	if s, ok := get("reference").(glua.LString); ok {
		f.reference = string(s)
	}
	if s, ok := get("err").(glua.LString); ok {
		f.err = string(s)
	}
	if v := get("default"); v != glua.LNil {
		f.hasDef = true
		if f.def, err = ld.toGo(v); err != nil {
			return nil, fail("default: %v", err)
		}
	}
	if v := get("eq"); v != glua.LNil {
		f.hasEq = true
		if ld.null(v) {
			f.eqNull = true
		} else if f.eq, err = ld.toGo(v); err != nil {
			return nil, fail("eq: %v", err)
		}
	}
	if v := get("ne"); v != glua.LNil {
		f.hasNe = true
		if ld.null(v) {
			f.neNull = true
		} else if f.ne, err = ld.toGo(v); err != nil {
			return nil, fail("ne: %v", err)
		}
	}
	if v := get("one_of"); v != glua.LNil {
		f.hasOneOf = true
		if f.oneOf, err = ld.list(v); err != nil {
			return nil, fail("one_of: %v", err)
		}
	}
	if v := get("not_one_of"); v != glua.LNil {
		f.hasNotOneOf = true
		if f.notOneOf, err = ld.list(v); err != nil {
			return nil, fail("not_one_of: %v", err)
		}
	}
	if v, ok := get("gt").(glua.LNumber); ok {
		n := float64(v)
		f.gt = &n
	}
	if v := get("between"); v != glua.LNil {
		bt, _ := v.(*glua.LTable)
		if bt == nil {
			return nil, fail("between: expected a table")
		}
		lo, ok1 := bt.RawGetInt(1).(glua.LNumber)
		hi, ok2 := bt.RawGetInt(2).(glua.LNumber)
		if !ok1 || !ok2 {
			return nil, fail("between: expected two numbers")
		}
		f.between = &[2]float64{float64(lo), float64(hi)}
	}
	for _, lk := range []struct {
		key string
		dst **int
	}{{"len_eq", &f.lenEq}, {"len_min", &f.lenMin}, {"len_max", &f.lenMax}} {
		if v, ok := get(lk.key).(glua.LNumber); ok {
			n := int(v)
			*lk.dst = &n
		}
	}
	for _, sk := range []struct {
		key string
		dst **string
	}{{"starts_with", &f.startsWith}, {"not_match", &f.notMatch}, {"match", &f.match}} {
		if v, ok := get(sk.key).(glua.LString); ok {
			s := string(v)
			*sk.dst = &s
		}
	}
	if f.matchNone, err = patErrs(get("match_none")); err != nil {
		return nil, fail("match_none: %v", err)
	}
	if f.matchAll, err = patErrs(get("match_all")); err != nil {
		return nil, fail("match_all: %v", err)
	}
	if mt, ok := get("match_any").(*glua.LTable); ok {
		ma := &matchAny{}
		if e, ok := mt.RawGetString("err").(glua.LString); ok {
			ma.err = string(e)
		}
		if pt, ok := mt.RawGetString("patterns").(*glua.LTable); ok {
			for i := 1; i <= pt.Len(); i++ {
				ma.patterns = append(ma.patterns, pt.RawGetInt(i).String())
			}
		}
		f.matchAny = ma
	}
	if v := get("contains"); v != glua.LNil {
		f.hasContains = true
		if f.contains, err = ld.toGo(v); err != nil {
			return nil, fail("contains: %v", err)
		}
	}
	if v := get("custom_validator"); v != glua.LNil {
		if _, ok := v.(*glua.LFunction); !ok {
			return nil, fail("custom_validator: expected a function")
		}
		f.custom = v
	}
	if st, ok := get("mutually_exclusive_subsets").(*glua.LTable); ok {
		for i := 1; i <= st.Len(); i++ {
			sub, err := ld.list(st.RawGetInt(i))
			if err != nil {
				return nil, fail("mutually_exclusive_subsets: %v", err)
			}
			f.mutexSubsets = append(f.mutexSubsets, sub)
		}
	}
	sub := func(key string) (*Field, error) {
		st, ok := get(key).(*glua.LTable)
		if !ok {
			return nil, fail("missing attribute %s", key)
		}
		return ld.field(key, path+"."+key, st)
	}
	switch f.typ {
	case "array", "set":
		if f.elements, err = sub("elements"); err != nil {
			return nil, err
		}
		f.elements.required = true // validate_elements forces it
	case "map":
		if f.keys, err = sub("keys"); err != nil {
			return nil, err
		}
		if f.values, err = sub("values"); err != nil {
			return nil, err
		}
		f.keys.required, f.values.required = true, true
	case "record":
		ft, ok := get("fields").(*glua.LTable)
		if !ok {
			if f.abstract {
				break
			}
			return nil, fail("missing attribute fields")
		}
		if f.fields, f.byName, err = ld.fieldList(ft, path+"."); err != nil {
			return nil, err
		}
		if f.checks, err = ld.entityChecks(t, f, path+"."); err != nil {
			return nil, err
		}
		if f.shorthands, err = ld.shorthands(t, path+"."); err != nil {
			return nil, err
		}
	}
	// Kong's metaschema checks a default's type against its field; custom
	// validators are left to validation.
	if f.hasDef && f.def != nil {
		if msg := typeError(f, f.def); msg != "" {
			return nil, fail("default: %s", msg)
		}
	}
	return f, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func patErrs(v glua.LValue) ([]patErr, error) {
	if v == glua.LNil {
		return nil, nil
	}
	t, ok := v.(*glua.LTable)
	if !ok {
		return nil, fmt.Errorf("expected a table")
	}
	var out []patErr
	for i := 1; i <= t.Len(); i++ {
		e, ok := t.RawGetInt(i).(*glua.LTable)
		if !ok {
			return nil, fmt.Errorf("expected {pattern=, err=} tables")
		}
		out = append(out, patErr{pattern: e.RawGetString("pattern").String(), err: luaString(e.RawGetString("err"))})
	}
	return out, nil
}

// luaString is tostring without metamethods, and "" for nil.
func luaString(v glua.LValue) string {
	if v == glua.LNil {
		return ""
	}
	if n, ok := v.(glua.LNumber); ok {
		return lua.FormatNumber(float64(n))
	}
	return v.String()
}

func (ld *loader) list(v glua.LValue) ([]any, error) {
	t, ok := v.(*glua.LTable)
	if !ok {
		return nil, fmt.Errorf("expected an array")
	}
	out := make([]any, 0, t.Len())
	for i := 1; i <= t.Len(); i++ {
		x, err := ld.toGo(t.RawGetInt(i))
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

func (ld *loader) shorthands(t *glua.LTable, prefix string) ([]*shorthand, error) {
	st, ok := t.RawGetString("shorthand_fields").(*glua.LTable)
	if !ok {
		return nil, nil
	}
	var out []*shorthand
	for i := 1; i <= st.Len(); i++ {
		item, ok := st.RawGetInt(i).(*glua.LTable)
		if !ok {
			return nil, fmt.Errorf("field '%sshorthand_fields[%d]': expected a table", prefix, i)
		}
		var name string
		var def glua.LValue
		item.ForEach(func(k, v glua.LValue) { name, def = k.String(), v })
		dt, ok := def.(*glua.LTable)
		if !ok {
			return nil, fmt.Errorf("field '%s%s': expected a definition table", prefix, name)
		}
		fn, ok := dt.RawGetString("func").(*glua.LFunction)
		if !ok {
			return nil, fmt.Errorf("field '%s%s': shorthand without func", prefix, name)
		}
		// func is not a field attribute: read the definition without it.
		clean := ld.L.NewTable()
		dt.ForEach(func(k, v glua.LValue) {
			if k.String() != "func" {
				clean.RawSet(k, v)
			}
		})
		f, err := ld.field(name, prefix+name, clean)
		if err != nil {
			return nil, err
		}
		sh := &shorthand{name: name, def: f, fn: fn}
		if dep, ok := dt.RawGetString("deprecation").(*glua.LTable); ok {
			sh.deprecation = true
			if rw, ok := dep.RawGetString("replaced_with").(*glua.LTable); ok {
				for j := 1; j <= rw.Len(); j++ {
					e, _ := rw.RawGetInt(j).(*glua.LTable)
					if e == nil {
						continue
					}
					pt, _ := e.RawGetString("path").(*glua.LTable)
					if pt == nil {
						continue
					}
					var p []string
					for k := 1; k <= pt.Len(); k++ {
						p = append(p, pt.RawGetInt(k).String())
					}
					sh.replaced = append(sh.replaced, p)
				}
			}
		}
		out = append(out, sh)
	}
	return out, nil
}
