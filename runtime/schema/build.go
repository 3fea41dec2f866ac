package schema

import (
	"slices"
	"strings"
)

// This file builds schemas in Go: the core entities (services, routes,
// upstreams, ...) are defined with these constructors by
// runtime/declarative and validated by the same engine as plugin
// schemas. A Go-built schema holds no Lua function, so it is validated
// without a VM.

// Errors is a record's validation errors as Kong nests them: a field's
// name maps to its message (string) or to its nested errors
// (map[string]any, array positions as 1-based decimal keys), and
// "@entity" to the entity checks' messages ([]string).
type Errors = map[string]any

// Check is an entity check written in Go. It runs after the field
// validation of a record, reads the processed record and the errors found
// so far, and adds its own.
type Check func(rec map[string]any, errs Errors)

// AddEntityError appends an entity check's message to errs["@entity"].
func AddEntityError(errs Errors, msg string) { entityError(errs, msg) }

// SetError puts err at a dotted path of errs ("healthchecks.active.send"),
// creating the nested levels.
func SetError(errs Errors, path string, err any) { setField(errs, path, err) }

// HasError reports whether any of the named fields already has an error.
func HasError(errs Errors, names ...string) bool {
	for _, n := range names {
		if _, ok := errs[n]; ok {
			return true
		}
	}
	return false
}

// Subschema specialises a record for one value of its subschema key
// (Kong's subschema_key): fields it redefines and checks it adds.
type Subschema struct {
	byName map[string]*Field
	checks []Check
}

// NewSubschema returns a subschema redefining fields and adding checks.
func NewSubschema(fields []*Field, checks ...Check) *Subschema {
	s := &Subschema{byName: map[string]*Field{}, checks: checks}
	for _, f := range fields {
		s.byName[f.name] = f
	}
	return s
}

type subschemas struct {
	key     string
	pick    func(v any) *Subschema
	unknown func(v any) string
}

// choose picks the subschema for the record's key value; a set key (a
// route's protocols) picks by its first element that has one.
func (s *subschemas) choose(m map[string]any) *Subschema {
	switch k := m[s.key].(type) {
	case string:
		return s.pick(k)
	case []any:
		for _, e := range k {
			if sub := s.pick(e); sub != nil {
				return sub
			}
		}
	}
	return nil
}

func newField(name, typ string) *Field { return &Field{name: name, typ: typ} }

// String, Integer, Number, Boolean and Any start a field definition of
// that type; the methods below add attributes and return the field.
func String(name string) *Field  { return newField(name, "string") }
func Integer(name string) *Field { return newField(name, "integer") }
func Number(name string) *Field  { return newField(name, "number") }
func Boolean(name string) *Field { return newField(name, "boolean") }
func Any(name string) *Field     { return newField(name, "any") }

// Array and Set are lists of elements.
func Array(name string, elements *Field) *Field { return listField(name, "array", elements) }
func Set(name string, elements *Field) *Field   { return listField(name, "set", elements) }

func listField(name, typ string, elements *Field) *Field {
	f := newField(name, typ)
	if elements != nil {
		elements.required = true // validate_elements requires each element
	}
	f.elements = elements
	return f
}

// Map is a map of keys to values.
func Map(name string, keys, values *Field) *Field {
	f := newField(name, "map")
	if keys != nil && values != nil {
		keys.required, values.required = true, true
	}
	f.keys, f.values = keys, values
	return f
}

// Record is a record of fields, validated in order.
func Record(name string, fields ...*Field) *Field {
	f := newField(name, "record")
	f.fields = fields
	f.byName = map[string]*Field{}
	for _, sub := range fields {
		f.byName[sub.name] = sub
	}
	return f
}

// Required marks the field required.
func (f *Field) Required() *Field { f.required, f.explicit = true, true; return f }

// Default sets the default given to a missing field.
func (f *Field) Default(v any) *Field { f.def, f.hasDef = v, true; return f }

// Auto marks a field the loader fills (id, timestamps): it is left absent
// when missing.
func (f *Field) Auto() *Field { f.auto = true; return f }

// MustBeNull is eq = null; MustNotBe is ne.
func (f *Field) MustBeNull() *Field         { f.hasEq, f.eqNull = true, true; return f }
func (f *Field) MustNotBe(v any) *Field     { f.hasNe, f.ne = true, v; return f }
func (f *Field) Err(msg string) *Field      { f.err = msg; return f }
func (f *Field) Timestamp() *Field          { f.timestamp = true; return f }
func (f *Field) UUID() *Field               { f.uuid = true; return f }
func (f *Field) LenMin(n int) *Field        { f.lenMin = &n; return f }
func (f *Field) LenMax(n int) *Field        { f.lenMax = &n; return f }
func (f *Field) StartsWith(p string) *Field { f.startsWith = &p; return f }

// Between is the inclusive range of a number.
func (f *Field) Between(lo, hi float64) *Field { f.between = &[2]float64{lo, hi}; return f }

// OneOf lists the accepted values (strings or float64 numbers).
func (f *Field) OneOf(values ...any) *Field { f.oneOf, f.hasOneOf = values, true; return f }

// MatchNone refuses strings matching a Lua pattern, with err.
func (f *Field) MatchNone(pattern, err string) *Field {
	f.matchNone = append(f.matchNone, patErr{pattern: pattern, err: err})
	return f
}

// Custom adds a custom validator of string values: it returns "" when
// the value is valid, else the message.
func (f *Field) Custom(fn func(string) string) *Field { f.goCustom = fn; return f }

// MutuallyExclusiveSubsets refuses a list with members of more than one
// subset.
func (f *Field) MutuallyExclusiveSubsets(subsets ...[]any) *Field {
	f.mutexSubsets = subsets
	return f
}

// Checks adds Go entity checks to a record.
func (f *Field) Checks(checks ...Check) *Field { f.goChecks = append(f.goChecks, checks...); return f }

// Shorthand sets a function run on a copy of a record before its fields
// are processed (Kong's shorthand_fields and entity-level process hooks);
// it rewrites the record in place and returns errors that stop the
// validation, or nil.
func (f *Field) Shorthand(fn func(map[string]any) Errors) *Field { f.goShorthand = fn; return f }

// Subschemas specialises the record by the value of its key field: pick
// returns the subschema for a value or nil, unknown the message for a
// value without one.
func (f *Field) Subschemas(key string, pick func(any) *Subschema, unknown func(any) string) *Field {
	f.subs = &subschemas{key: key, pick: pick, unknown: unknown}
	return f
}

// AddFields appends fields to a record.
func (f *Field) AddFields(fields ...*Field) *Field {
	for _, sub := range fields {
		f.fields = append(f.fields, sub)
		f.byName[sub.name] = sub
	}
	return f
}

// Replace swaps the record's field of the same name for sub.
func (f *Field) Replace(sub *Field) {
	i := slices.IndexFunc(f.fields, func(x *Field) bool { return x.name == sub.name })
	f.fields[i] = sub
	f.byName[sub.name] = sub
}

// Name is the field's name.
func (f *Field) Name() string { return f.name }

// Fields lists the record's fields in order.
func (f *Field) Fields() []*Field { return f.fields }

// DefaultValue is the field's default, nil when it has none.
func (f *Field) DefaultValue() any { return f.def }

// Validate is Kong's validate_field on a value of a Go-built field: nil
// when valid, else the message or the nested errors.
func (f *Field) Validate(v any) any { return validateField(f, v, true) }

// Process is process_auto_fields on insert for a Go-built record: a copy
// of data with shorthands applied and defaults filled, or the shorthand's
// errors.
func (f *Field) Process(data map[string]any) (map[string]any, Errors) {
	return processRecord(f, data)
}

// ValidateRecord validates a record Process returned: unknown fields,
// field errors, required fields, then entity checks. It returns nil when
// the record is valid.
func (f *Field) ValidateRecord(m map[string]any) Errors {
	if errs := validateRecord(f, m); len(errs) > 0 {
		return errs
	}
	return nil
}

// Describe renders a Go-built field as Kong's Admin API shows a schema
// (GET /schemas/{entity}): type, required, auto, default and the
// constraints, nested for elements, keys, values and record fields.
func (f *Field) Describe() map[string]any {
	m := map[string]any{"type": f.typ}
	if f.required {
		m["required"] = true
	}
	if f.auto {
		m["auto"] = true
	}
	if f.hasDef && f.def != nil {
		m["default"] = f.def
	}
	if f.hasOneOf {
		m["one_of"] = f.oneOf
	}
	if f.timestamp {
		m["timestamp"] = true
	}
	if f.uuid {
		m["uuid"] = true
	}
	if f.between != nil {
		m["between"] = f.between[:]
	}
	if f.lenMin != nil {
		m["len_min"] = *f.lenMin
	}
	describeElement := func(key string, e *Field) {
		if e != nil {
			d := e.Describe()
			delete(d, "required") // validation requires elements, keys and values
			m[key] = d
		}
	}
	describeElement("elements", f.elements)
	describeElement("keys", f.keys)
	describeElement("values", f.values)
	if f.typ == "record" {
		m["fields"] = DescribeFields(f.fields)
	}
	return m
}

// DescribeFields renders a record's fields as Kong lists them: one
// single-key map per field, in order.
func DescribeFields(fields []*Field) []map[string]any {
	out := make([]map[string]any, 0, len(fields))
	for _, f := range fields {
		out = append(out, map[string]any{f.name: f.Describe()})
	}
	return out
}

// QuotedList renders Kong's quoted_list: 'a', 'b'.
func QuotedList(names []string) string { return quotedList(names) }

// joinQuoted renders a subset of values as quoted_list does.
func joinQuoted(values []any) string {
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = "'" + Tostring(v) + "'"
	}
	return strings.Join(parts, ", ")
}

// AsList accepts what Lua's is_sequence accepts: arrays, and empty
// objects (an empty Lua table is both).
func AsList(v any) ([]any, bool) { return asList(v) }

// AsRecord accepts a table with string keys; an empty array is one too.
func AsRecord(v any) (map[string]any, bool) { return asRecord(v) }

// IsNonEmpty is Kong's is_nonempty: not null, "", or an empty table.
func IsNonEmpty(v any) bool { return nonEmpty(v, true) }

// IsUUID reports whether s is a UUID in its 36-character text form.
func IsUUID(s string) bool { return len(s) == 36 && uuidRE.MatchString(s) }

// IsRequired reports whether the field is required.
func (f *Field) IsRequired() bool { return f.required }

// Type is the field's type name ("string", "record", ...).
func (f *Field) Type() string { return f.typ }
