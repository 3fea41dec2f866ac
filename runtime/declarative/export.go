package declarative

import (
	"slices"

	"github.com/gong-proxy/gong/runtime/schema"
)

// EntitySchema describes an entity type's schema as Kong's Admin API
// shows it (GET /schemas/{entity}): its fields in order, each with its
// type, default and constraints; foreign keys have type "foreign" and the
// referenced type. ok is false for an unknown type.
func EntitySchema(typ string, opts Options) (s map[string]any, ok bool) {
	if !slices.Contains(entityTypes, typ) {
		return nil, false
	}
	b := &builder{opts: opts, cache: map[string]*schema.Field{}}
	fields := schema.DescribeFields(b.base(typ).Fields())
	for _, fk := range foreignKeys[typ] {
		for _, f := range fields {
			if d, ok := f[fk.field].(map[string]any); ok {
				f[fk.field] = map[string]any{"type": "foreign", "reference": fk.ref, "required": d["required"] == true}
			}
		}
	}
	return map[string]any{"fields": fields}, true
}
