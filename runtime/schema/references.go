package schema

import (
	"fmt"
	"maps"
)

// Dereference returns config with the vault references of its
// referenceable fields resolved by get, as Kong's plugins iterator does
// before a handler sees its config: strings, and the strings of arrays,
// sets and map values whose elements are referenceable. config is not
// modified; a config without references is returned as it is.
func (s *Schema) Dereference(config map[string]any, get func(ref string) (string, error)) (map[string]any, error) {
	cfgField := s.root.byName["config"]
	if cfgField == nil || config == nil {
		return config, nil
	}
	out, _, err := dereferenceRecord(cfgField, config, "config", get)
	return out, err
}

// dereferenceRecord resolves a record's fields; changed says whether the
// result is a new map.
func dereferenceRecord(rec *Field, m map[string]any, path string, get func(string) (string, error)) (map[string]any, bool, error) {
	var out map[string]any
	for _, f := range rec.fields {
		v, ok := m[f.name]
		if !ok || v == nil {
			continue
		}
		nv, changed, err := dereferenceValue(f, v, path+"."+f.name, get)
		if err != nil {
			return nil, false, err
		}
		if changed {
			if out == nil {
				out = maps.Clone(m)
			}
			out[f.name] = nv
		}
	}
	if out == nil {
		return m, false, nil
	}
	return out, true, nil
}

func dereferenceValue(f *Field, v any, path string, get func(string) (string, error)) (any, bool, error) {
	switch v := v.(type) {
	case string:
		if !f.referenceable || !isReference(v) {
			return v, false, nil
		}
		secret, err := get(v)
		if err != nil {
			return nil, false, fmt.Errorf("failed to dereference '%s': %v for field '%s'", v, err, path)
		}
		return secret, true, nil
	case map[string]any:
		if f.typ == "record" {
			return dereferenceRecord(f, v, path, get)
		}
		if f.values == nil {
			return v, false, nil
		}
		var out map[string]any
		for k, e := range v {
			ne, changed, err := dereferenceValue(f.values, e, path+"."+k, get)
			if err != nil {
				return nil, false, err
			}
			if changed {
				if out == nil {
					out = maps.Clone(v)
				}
				out[k] = ne
			}
		}
		if out != nil {
			return out, true, nil
		}
	case []any:
		if f.elements == nil {
			return v, false, nil
		}
		var out []any
		for i, e := range v {
			ne, changed, err := dereferenceValue(f.elements, e, fmt.Sprintf("%s[%d]", path, i+1), get)
			if err != nil {
				return nil, false, err
			}
			if changed {
				if out == nil {
					out = append([]any(nil), v...)
				}
				out[i] = ne
			}
		}
		if out != nil {
			return out, true, nil
		}
	}
	return v, false, nil
}
