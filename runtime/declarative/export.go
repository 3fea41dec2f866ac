package declarative

import "slices"

// kindNames are the schema DSL's type names.
var kindNames = map[kind]string{tString: "string", tInteger: "integer", tNumber: "number", tBoolean: "boolean",
	tArray: "array", tSet: "set", tRecord: "record", tMap: "map", tAny: "any"}

// EntitySchema describes an entity type's schema as Kong's Admin API
// shows it (GET /schemas/{entity}): its fields in order, each with its
// type, default and constraints; foreign keys have type "foreign" and the
// referenced type. ok is false for an unknown type.
func EntitySchema(typ string, opts Options) (s map[string]any, ok bool) {
	if !slices.Contains(entityTypes, typ) {
		return nil, false
	}
	b := &builder{opts: opts, cache: map[string]*schema{}}
	sc := b.base(typ)
	fields := recordFields(sc)
	for _, fk := range foreignKeys[typ] {
		for _, f := range fields {
			if d, ok := f[fk.field].(map[string]any); ok {
				f[fk.field] = map[string]any{"type": "foreign", "reference": fk.ref, "required": d["required"] == true}
			}
		}
	}
	return map[string]any{"fields": fields}, true
}

func recordFields(s *schema) []map[string]any {
	out := make([]map[string]any, 0, len(s.fields))
	for _, f := range s.fields {
		out = append(out, map[string]any{f.name: fieldSchema(f)})
	}
	return out
}

func fieldSchema(f *field) map[string]any {
	m := map[string]any{"type": kindNames[f.kind]}
	if f.required {
		m["required"] = true
	}
	if f.auto {
		m["auto"] = true
	}
	if f.def != nil {
		m["default"] = f.def
	}
	if f.oneOf != nil {
		m["one_of"] = f.oneOf
	}
	if f.oneOfNum != nil {
		m["one_of"] = f.oneOfNum
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
	if f.hasLenMin {
		m["len_min"] = f.lenMin
	}
	if f.elements != nil {
		m["elements"] = fieldSchema(f.elements)
	}
	if f.keys != nil {
		m["keys"] = fieldSchema(f.keys)
	}
	if f.values != nil {
		m["values"] = fieldSchema(f.values)
	}
	if f.record != nil {
		m["fields"] = recordFields(f.record)
	}
	return m
}
