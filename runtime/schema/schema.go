package schema

import (
	"fmt"
	"sort"
)

// Schema is a plugin schema: the plugins entity specialised by the
// plugin's schema.lua (Define). Its functions (custom validators, entity
// checks, shorthand funcs) may run Lua on the VM the definition was read
// on.
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
	custom                Func // custom_validator
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

	raw map[string]any // the definition, for entity-check overlays

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
	fn          Func
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

// Func is a function of a schema definition (a custom validator, a
// shorthand's func, a custom entity check's fn): it takes values of the
// Go value domain and returns the function's results in it. The Lua side
// (runtime/schema/luaschema) makes one of each Lua function.
type Func func(args ...any) ([]any, error)

// Define turns a plugin schema definition, the table a schema.lua returns
// as Go values (records as map[string]any, sequences as []any, null as
// nil, functions as Func), into a Schema. Errors name the plugin and the
// offending field ("plugin 'x' schema: field 'config.y': unknown type
// 'z'").
func Define(name string, def map[string]any) (*Schema, error) {
	root, err := top(def)
	if err != nil {
		return nil, fmt.Errorf("plugin '%s' schema: %w", name, err)
	}
	doc, _ := withoutFuncs(def).(map[string]any)
	return &Schema{name: name, root: root, def: doc}, nil
}

// withoutFuncs copies a definition leaving its functions out, as JSON can
// hold it.
func withoutFuncs(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if _, fn := e.(Func); !fn {
				out[k] = withoutFuncs(e)
			}
		}
		return out
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			if _, fn := e.(Func); !fn {
				out = append(out, withoutFuncs(e))
			}
		}
		return out
	}
	return v
}

// truthy is Lua's truth: everything but nil (and null) and false.
func truthy(v any) bool { return v != nil && v != false }

// Name is the plugin name the schema was loaded for.
func (s *Schema) Name() string { return s.name }

// Definition is the table schema.lua returned, as JSON values: what
// Kong's Admin API shows as the plugin's schema. Functions (custom
// validators, entity checks) are left out.
func (s *Schema) Definition() map[string]any { return s.def }

// httpProtocols is typedefs.protocols' default: the http subsystem
// protocols, sorted.
var httpProtocols = []string{"grpc", "grpcs", "http", "https"}

// HTTPProtocols is typedefs.protocols' default: the http subsystem
// protocols, sorted.
func HTTPProtocols() []string { return append([]string(nil), httpProtocols...) }

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

func top(tbl map[string]any) (*Field, error) {
	for _, k := range sortedKeys(tbl) {
		if !topKeys[k] {
			return nil, fmt.Errorf("unknown field '%s'", k)
		}
	}
	if _, ok := tbl["name"].(string); !ok {
		return nil, fmt.Errorf("field 'name': required field missing")
	}
	fieldsTbl, ok := tbl["fields"]
	if !ok || fieldsTbl == nil {
		return nil, fmt.Errorf("field 'fields': required field missing")
	}
	root := &Field{typ: "record", raw: tbl}
	var err error
	if root.fields, root.byName, err = fieldList(fieldsTbl, ""); err != nil {
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
	if root.checks, err = entityChecks(tbl, root, ""); err != nil {
		return nil, err
	}
	if root.shorthands, err = shorthands(tbl, ""); err != nil {
		return nil, err
	}
	return root, nil
}

// sortedKeys lists a table's keys in order.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// onlyKey returns the key and value of a one-key table.
func onlyKey(v any) (string, any, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", nil, false
	}
	for k, e := range m {
		return k, e, true
	}
	return "", nil, false
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

func fieldList(tbl any, prefix string) ([]*Field, map[string]*Field, error) {
	items, ok := asList(tbl)
	if !ok {
		return nil, nil, fmt.Errorf("field '%sfields': expected an array", prefix)
	}
	var out []*Field
	byName := map[string]*Field{}
	for i, item := range items {
		if _, ok := item.(map[string]any); !ok {
			return nil, nil, fmt.Errorf("field '%sfields[%d]': expected a table", prefix, i+1)
		}
		name, def, ok := onlyKey(item)
		if !ok {
			return nil, nil, fmt.Errorf("field '%sfields[%d]': expected a one-key table", prefix, i+1)
		}
		dt, ok := def.(map[string]any)
		if !ok {
			return nil, nil, fmt.Errorf("field '%s%s': expected a definition table", prefix, name)
		}
		f, err := defineField(name, prefix+name, dt)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, f)
		byName[name] = f
	}
	return out, byName, nil
}

// defineField reads one definition; path names it in errors.
func defineField(name, path string, t map[string]any) (*Field, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("field '%s': %s", path, fmt.Sprintf(format, a...))
	}
	f := &Field{name: name, raw: t}
	typ, ok := t["type"].(string)
	if !ok {
		return nil, fail("missing type")
	}
	f.typ = typ
	if f.typ == "json" {
		return nil, fail("json fields are not supported")
	}
	if !types[f.typ] {
		return nil, fail("unknown type '%s'", f.typ)
	}
	for _, k := range sortedKeys(t) {
		if !attributes[k] {
			return nil, fail("unknown attribute '%s'", k)
		}
		if allowed, ok := restricted[k]; ok && !contains(allowed, f.typ) {
			return nil, fail("field of type '%s' cannot have attribute '%s'", f.typ, k)
		}
	}
	var err error
	if v, ok := t["required"]; ok {
		f.explicit = true
		f.required = truthy(v)
	}
	f.abstract = truthy(t["abstract"])
	f.referenceable = truthy(t["referenceable"])
	f.timestamp = truthy(t["timestamp"])
	f.uuid = truthy(t["uuid"])
	f.isRegex = truthy(t["is_regex"])
	if s, ok := t["reference"].(string); ok {
		f.reference = s
	}
	if s, ok := t["err"].(string); ok {
		f.err = s
	}
	if v, ok := t["default"]; ok {
		f.hasDef, f.def = true, v
	}
	if v, ok := t["eq"]; ok {
		f.hasEq = true
		f.eqNull = v == nil
		f.eq = v
	}
	if v, ok := t["ne"]; ok {
		f.hasNe = true
		f.neNull = v == nil
		f.ne = v
	}
	if v, ok := t["one_of"]; ok {
		f.hasOneOf = true
		if f.oneOf, err = list(v); err != nil {
			return nil, fail("one_of: %v", err)
		}
	}
	if v, ok := t["not_one_of"]; ok {
		f.hasNotOneOf = true
		if f.notOneOf, err = list(v); err != nil {
			return nil, fail("not_one_of: %v", err)
		}
	}
	if v, ok := t["gt"].(float64); ok {
		f.gt = &v
	}
	if v, ok := t["between"]; ok {
		bt, isList := asList(v)
		if !isList {
			return nil, fail("between: expected a table")
		}
		var lo, hi float64
		ok1, ok2 := false, false
		if len(bt) > 0 {
			lo, ok1 = bt[0].(float64)
		}
		if len(bt) > 1 {
			hi, ok2 = bt[1].(float64)
		}
		if !ok1 || !ok2 {
			return nil, fail("between: expected two numbers")
		}
		f.between = &[2]float64{lo, hi}
	}
	for _, lk := range []struct {
		key string
		dst **int
	}{{"len_eq", &f.lenEq}, {"len_min", &f.lenMin}, {"len_max", &f.lenMax}} {
		if v, ok := t[lk.key].(float64); ok {
			n := int(v)
			*lk.dst = &n
		}
	}
	for _, sk := range []struct {
		key string
		dst **string
	}{{"starts_with", &f.startsWith}, {"not_match", &f.notMatch}, {"match", &f.match}} {
		if v, ok := t[sk.key].(string); ok {
			*sk.dst = &v
		}
	}
	if f.matchNone, err = patErrs(t["match_none"]); err != nil {
		return nil, fail("match_none: %v", err)
	}
	if f.matchAll, err = patErrs(t["match_all"]); err != nil {
		return nil, fail("match_all: %v", err)
	}
	if mt, ok := t["match_any"].(map[string]any); ok {
		ma := &matchAny{}
		if e, ok := mt["err"].(string); ok {
			ma.err = e
		}
		if pt, ok := asList(mt["patterns"]); ok {
			for _, p := range pt {
				ma.patterns = append(ma.patterns, Tostring(p))
			}
		}
		f.matchAny = ma
	}
	if v, ok := t["contains"]; ok {
		f.hasContains, f.contains = true, v
	}
	if v, ok := t["custom_validator"]; ok {
		fn, isFn := v.(Func)
		if !isFn {
			return nil, fail("custom_validator: expected a function")
		}
		f.custom = fn
	}
	if st, ok := asList(t["mutually_exclusive_subsets"]); ok && t["mutually_exclusive_subsets"] != nil {
		for _, e := range st {
			sub, err := list(e)
			if err != nil {
				return nil, fail("mutually_exclusive_subsets: %v", err)
			}
			f.mutexSubsets = append(f.mutexSubsets, sub)
		}
	}
	sub := func(key string) (*Field, error) {
		st, ok := t[key].(map[string]any)
		if !ok {
			return nil, fail("missing attribute %s", key)
		}
		return defineField(key, path+"."+key, st)
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
		ft, ok := t["fields"]
		if !ok || ft == nil {
			if f.abstract {
				break
			}
			return nil, fail("missing attribute fields")
		}
		if f.fields, f.byName, err = fieldList(ft, path+"."); err != nil {
			return nil, err
		}
		if f.checks, err = entityChecks(t, f, path+"."); err != nil {
			return nil, err
		}
		if f.shorthands, err = shorthands(t, path+"."); err != nil {
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

func patErrs(v any) ([]patErr, error) {
	if v == nil {
		return nil, nil
	}
	t, ok := asList(v)
	if !ok {
		return nil, fmt.Errorf("expected a table")
	}
	var out []patErr
	for _, e := range t {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("expected {pattern=, err=} tables")
		}
		pe := patErr{pattern: Tostring(m["pattern"])}
		if m["err"] != nil {
			pe.err = Tostring(m["err"])
		}
		out = append(out, pe)
	}
	return out, nil
}

func list(v any) ([]any, error) {
	t, ok := asList(v)
	if !ok {
		return nil, fmt.Errorf("expected an array")
	}
	return t, nil
}

func shorthands(t map[string]any, prefix string) ([]*shorthand, error) {
	st, ok := asList(t["shorthand_fields"])
	if !ok || t["shorthand_fields"] == nil {
		return nil, nil
	}
	var out []*shorthand
	for i, item := range st {
		if _, ok := item.(map[string]any); !ok {
			return nil, fmt.Errorf("field '%sshorthand_fields[%d]': expected a table", prefix, i+1)
		}
		name, def, _ := onlyKey(item)
		dt, ok := def.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("field '%s%s': expected a definition table", prefix, name)
		}
		fn, ok := dt["func"].(Func)
		if !ok {
			return nil, fmt.Errorf("field '%s%s': shorthand without func", prefix, name)
		}
		// func is not a field attribute: read the definition without it.
		clean := make(map[string]any, len(dt))
		for k, v := range dt {
			if k != "func" {
				clean[k] = v
			}
		}
		f, err := defineField(name, prefix+name, clean)
		if err != nil {
			return nil, err
		}
		sh := &shorthand{name: name, def: f, fn: fn}
		if dep, ok := dt["deprecation"].(map[string]any); ok {
			sh.deprecation = true
			rw, _ := asList(dep["replaced_with"])
			for _, e := range rw {
				em, _ := e.(map[string]any)
				pt, ok := asList(em["path"])
				if em == nil || !ok || em["path"] == nil {
					continue
				}
				var p []string
				for _, x := range pt {
					p = append(p, Tostring(x))
				}
				sh.replaced = append(sh.replaced, p)
			}
		}
		out = append(out, sh)
	}
	return out, nil
}
