package schema

import (
	"fmt"
	"reflect"
	"strings"
)

// processRecord is Schema:process_auto_fields(data, "insert") on a record: a
// copy of data with shorthand fields translated and every missing field
// given its default, null, or an expanded required record. The errors are
// those of shorthand fields (kong/db/schema/init.lua).
func processRecord(f *Field, data map[string]any) (map[string]any, map[string]any) {
	data, _ = deepCopy(data).(map[string]any)
	if f.goShorthand != nil {
		if errs := f.goShorthand(data); len(errs) > 0 {
			return nil, errs
		}
	}
	if errs := applyShorthands(f, data); len(errs) > 0 {
		return nil, errs
	}
	var chosen *Subschema
	if f.subs != nil {
		chosen = f.subs.choose(data)
	}
	for _, fd := range f.fields {
		fd = f.lookup(fd.name, chosen)
		v, present := data[fd.name]
		if !present && fd.auto {
			continue
		}
		v, present = adjust(fd, v, present)
		if present {
			data[fd.name] = v
		} else {
			delete(data, fd.name)
		}
	}
	return data, nil
}

// applyShorthands translates shorthand fields in place.
func applyShorthands(f *Field, data map[string]any) map[string]any {
	errs := map[string]any{}
	for _, sh := range f.shorthands {
		v, ok := data[sh.name]
		if !ok {
			continue
		}
		if err := validateField(sh.def, v, true); err != nil {
			errs[sh.name] = err
			continue
		}
		if msg := deprecationMismatch(data, v, sh); msg != "" {
			errs[sh.name] = msg
			continue
		}
		delete(data, sh.name)
		res, err := sh.fn(v)
		if err != nil {
			errs[sh.name] = "failed validating: " + err.Error()
			continue
		}
		if len(res) == 0 {
			continue
		}
		newValues, ok := asRecord(res[0]) // a table of new values, else nothing
		if !ok {
			continue
		}
		for k, val := range newValues {
			switch val.(type) {
			case map[string]any, []any:
				source := map[string]any{}
				if cur, ok := data[k].(map[string]any); ok {
					source = cur
				}
				vm, _ := asRecord(val)
				if sh.deprecation {
					data[k] = nullAwareMerge(vm, source)
				} else {
					data[k] = merge(source, vm)
				}
			default:
				if cur, ok := data[k]; !sh.deprecation || !ok || cur == nil {
					data[k] = val
				}
			}
		}
	}
	return errs
}

// merge is kong.tools.table merge: a deep merge where t2 wins.
func merge(t1, t2 map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range t1 {
		out[k] = v
	}
	for k, v := range t2 {
		a, aok := out[k].(map[string]any)
		b, bok := v.(map[string]any)
		if aok && bok {
			out[k] = merge(a, b)
		} else {
			out[k] = v
		}
	}
	return out
}

// nullAwareMerge is null_aware_table_merge: t2's non-null values win.
func nullAwareMerge(t1, t2 map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range t1 {
		out[k] = v
	}
	for k, v := range t2 {
		if v == nil {
			continue
		}
		a, aok := out[k].(map[string]any)
		b, bok := v.(map[string]any)
		if aok && bok {
			out[k] = nullAwareMerge(a, b)
		} else {
			out[k] = v
		}
	}
	return out
}

// deprecationMismatch is validate_deprecation_exclusiveness.
func deprecationMismatch(data map[string]any, v any, sh *shorthand) string {
	if v == nil || !sh.deprecation {
		return ""
	}
	for _, path := range sh.replaced {
		cur, ok := getPath(data, path)
		if !ok || cur == nil || reflect.DeepEqual(cur, v) {
			continue
		}
		return fmt.Sprintf("both deprecated and new field are used but their values mismatch: %s = %s vs %s = %s",
			sh.name, Tostring(v), strings.Join(path, "."), Tostring(cur))
	}
	return ""
}

func getPath(m map[string]any, path []string) (any, bool) {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// adjust is adjust_field_for_context for "insert": records recurse when
// present or required, arrays keep their order, sets are de-duplicated,
// elements and map values are adjusted, and a missing value is handled by
// missing.
func adjust(f *Field, v any, present bool) (any, bool) {
	if f.abstract {
		return v, present
	}
	if f.typ == "record" {
		if !(present && v == nil) && (present || f.required) {
			if !present {
				v, present = missingValue(f)
			}
			if m, ok := asRecord(v); ok && present {
				if out, errs := processRecord(f, m); len(errs) == 0 {
					return out, true
				}
			}
		}
	} else if present && v != nil {
		switch f.typ {
		case "array", "set":
			// A list or map that must be null may have no element definition.
			if list, ok := asList(v); ok && f.elements != nil {
				if f.typ == "set" {
					list = dedup(list)
				}
				out := make([]any, len(list))
				for i, e := range list {
					out[i], _ = adjust(f.elements, e, true)
				}
				return out, true
			}
		case "map":
			if m, ok := v.(map[string]any); ok && f.values != nil {
				out := make(map[string]any, len(m))
				for k, e := range m {
					out[k], _ = adjust(f.values, e, true)
				}
				return out, true
			}
		}
	}
	if !present {
		return missingValue(f)
	}
	return v, present
}

// missingValue is handle_missing_field: a copy of the default, null for an
// optional field, an expanded record for a required one, else absent (the
// required check reports it).
func missingValue(f *Field) (any, bool) {
	if f.hasDef {
		return deepCopy(f.def), true
	}
	if !f.required {
		return nil, true
	}
	if f.abstract {
		return nil, false
	}
	if f.typ == "record" {
		out, _ := processRecord(f, map[string]any{})
		return out, true
	}
	return nil, false
}

// dedup is make_set: the first occurrence of each value, in order.
func dedup(list []any) []any {
	out := make([]any, 0, len(list))
	for _, e := range list {
		if !inList(e, out) {
			out = append(out, e)
		}
	}
	return out
}

// selectRecord is process_auto_fields(data, "select") as the plugins
// iterator reads a config: defaults for missing fields, nulls and empty
// strings removed, keys outside the schema dropped.
func selectRecord(f *Field, data map[string]any) map[string]any {
	out := map[string]any{}
	for _, sub := range f.fields {
		v, present := data[sub.name]
		if present && v == nil && sub.required {
			v, present = missingValue(sub)
		}
		v, present = adjust(sub, v, present)
		v = selectValue(sub, v)
		if !present || v == nil {
			continue
		}
		if s, ok := v.(string); ok && s == "" && sub.typ == "string" {
			continue
		}
		out[sub.name] = v
	}
	return out
}

// selectValue applies select processing below a field.
func selectValue(f *Field, v any) any {
	switch f.typ {
	case "record":
		if m, ok := v.(map[string]any); ok && f.fields != nil {
			return selectRecord(f, m)
		}
	case "array", "set":
		if list, ok := v.([]any); ok {
			out := make([]any, len(list))
			for i, e := range list {
				out[i] = selectValue(f.elements, e)
			}
			return out
		}
	case "map":
		if m, ok := v.(map[string]any); ok {
			out := make(map[string]any, len(m))
			for k, e := range m {
				out[k] = selectValue(f.values, e)
			}
			return out
		}
	}
	return v
}
