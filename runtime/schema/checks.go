package schema

import (
	"fmt"
	"strings"
)

// entityCheck is one entity_checks entry (Schema.entity_checkers in
// kong/db/schema/init.lua).
type entityCheck struct {
	name     string
	fields   []string        // the fields the check reads, in order
	required map[string]bool // fields whose absence is "field required for entity check"
	missing  bool            // run_with_missing_fields
	invalid  bool            // run_with_invalid_fields

	list []string // list checkers

	ifField, thenField     string
	ifMatch, thenMatch     *Field
	elseMatch              *Field
	thenRequired           bool
	thenErr, elseThenErr   string
	hasThenErr, hasElseErr bool
	thenList, elseList     []string

	set1, set2 []string
	fn         Func
}

// checkerFlags are each checker's run_with_missing_fields and
// run_with_invalid_fields.
var checkerFlags = map[string][2]bool{
	"at_least_one_of":             {true, true},
	"conditional_at_least_one_of": {true, true},
	"only_one_of":                 {false, true},
	"distinct":                    {false, true},
	"conditional":                 {false, true},
	"custom_entity_check":         {false, false},
	"mutually_required":           {true, false},
	"mutually_exclusive":          {true, false},
	"mutually_exclusive_sets":     {true, false},
}

func entityChecks(t map[string]any, rec *Field, prefix string) ([]*entityCheck, error) {
	ct, ok := asList(t["entity_checks"])
	if !ok || t["entity_checks"] == nil {
		return nil, nil
	}
	var out []*entityCheck
	for i, item := range ct {
		if _, ok := item.(map[string]any); !ok {
			return nil, fmt.Errorf("field '%sentity_checks[%d]': expected a table", prefix, i+1)
		}
		name, arg, _ := onlyKey(item)
		switch arg.(type) {
		case map[string]any, []any:
		default:
			continue
		}
		flags, known := checkerFlags[name]
		if !known {
			return nil, fmt.Errorf("field '%sentity_checks[%d]': unknown entity check '%s'", prefix, i+1, name)
		}
		c, err := check(name, arg, rec)
		if err != nil {
			return nil, fmt.Errorf("field '%sentity_checks[%d]': %s: %w", prefix, i+1, name, err)
		}
		at, _ := arg.(map[string]any)
		c.missing = flags[0] || truthy(at["run_with_missing_fields"])
		c.invalid = flags[1] || truthy(at["run_with_invalid_fields"])
		out = append(out, c)
	}
	return out, nil
}

func strList(v any) []string {
	t, _ := asList(v)
	var out []string
	for _, e := range t {
		out = append(out, Tostring(e))
	}
	return out
}

func check(name string, arg any, rec *Field) (*entityCheck, error) {
	c := &entityCheck{name: name, required: map[string]bool{}}
	at, _ := arg.(map[string]any)
	str := func(k string) (string, bool) {
		s, ok := at[k].(string)
		return s, ok
	}
	var err error
	switch name {
	case "conditional":
		c.ifField, _ = str("if_field")
		c.thenField, _ = str("then_field")
		c.thenErr, c.hasThenErr = str("then_err")
		if c.ifMatch, err = overlay(rec, c.ifField, at["if_match"]); err != nil {
			return nil, err
		}
		if c.thenMatch, err = overlay(rec, c.thenField, at["then_match"]); err != nil {
			return nil, err
		}
		c.thenRequired = c.thenMatch.required
		c.fields = []string{c.ifField, c.thenField}
		c.required[c.ifField] = true
	case "conditional_at_least_one_of":
		c.ifField, _ = str("if_field")
		c.thenErr, c.hasThenErr = str("then_err")
		c.elseThenErr, c.hasElseErr = str("else_then_err")
		c.thenList = strList(at["then_at_least_one_of"])
		c.elseList = strList(at["else_then_at_least_one_of"])
		if c.ifMatch, err = overlay(rec, c.ifField, at["if_match"]); err != nil {
			return nil, err
		}
		if em, ok := at["else_match"]; ok && em != nil {
			if c.elseMatch, err = overlay(rec, c.ifField, em); err != nil {
				return nil, err
			}
		}
		c.fields = append(append([]string{c.ifField}, c.thenList...), c.elseList...)
	case "custom_entity_check":
		c.fields = strList(at["field_sources"])
		for _, f := range c.fields {
			c.required[f] = true
		}
		if c.fn, _ = at["fn"].(Func); c.fn == nil {
			return nil, fmt.Errorf("fn: expected a function")
		}
	case "mutually_exclusive_sets":
		c.set1 = strList(at["set1"])
		c.set2 = strList(at["set2"])
		c.fields = append(append([]string{}, c.set1...), c.set2...)
	default:
		c.list = strList(arg)
		c.fields = c.list
		for _, f := range c.list {
			c.required[f] = true
		}
	}
	for _, f := range c.fields {
		if schemaField(rec, f) == nil {
			return nil, fmt.Errorf("unknown field '%s'", f)
		}
	}
	return c, nil
}

// overlay reads a conditional's if_match/then_match/else_match: its
// validators over the named field's definition (the __index metatable Kong
// sets).
func overlay(rec *Field, path string, match any) (*Field, error) {
	base := schemaField(rec, path)
	if base == nil {
		return nil, fmt.Errorf("unknown field '%s'", path)
	}
	merged := make(map[string]any, len(base.raw))
	for k, v := range base.raw {
		merged[k] = v
	}
	if mt, ok := match.(map[string]any); ok {
		for k, v := range mt {
			merged[k] = v
		}
	}
	f, err := defineField(base.name, path, merged)
	if err != nil {
		return nil, err
	}
	if f.typ == "record" {
		requireRecords(f.fields)
	}
	return f, nil
}

// schemaField is get_schema_field: a dotted path through record fields.
func schemaField(rec *Field, path string) *Field {
	cur := rec
	for _, p := range strings.Split(path, ".") {
		if cur == nil || cur.byName == nil {
			return nil
		}
		cur = cur.byName[p]
	}
	return cur
}

// getField is get_field: a dotted path through records; present is false
// when the value is Lua nil.
func getField(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
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

// setField is set_field: a dotted path, creating records on the way.
func setField(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

// nonEmpty is is_nonempty: not nil, null, an empty table or "".
func nonEmpty(v any, present bool) bool {
	if !present || v == nil {
		return false
	}
	switch x := v.(type) {
	case string:
		return x != ""
	case map[string]any:
		return len(x) > 0
	case []any:
		return len(x) > 0
	}
	return true
}

func quotedList(names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = "'" + n + "'"
	}
	return strings.Join(parts, ", ")
}

func entityError(errs map[string]any, msg string) {
	l, _ := errs["@entity"].([]string)
	errs["@entity"] = append(l, msg)
}

// runChecks is run_entity_checks on a full check.
func runChecks(rec *Field, input map[string]any, errs map[string]any) {
	for _, c := range rec.checks {
		runCheck(c, input, errs)
	}
}

// runCheck is run_entity_check.
func runCheck(c *entityCheck, input map[string]any, errs map[string]any) {
	var missing []string
	allOK := true
	proj := map[string]any{}
	for _, name := range c.fields {
		v, present := getField(input, name)
		if !present {
			if !c.missing && c.required[name] {
				missing = append(missing, name)
			}
		} else {
			setField(proj, name, v)
		}
		if _, bad := errs[name]; bad {
			allOK = false
		}
	}
	if !allOK && !c.invalid {
		return
	}
	if len(missing) > 0 {
		for _, name := range missing {
			setField(errs, name, msgRequiredForCheck)
		}
		return
	}
	nonEmptyField := func(name string) bool {
		v, ok := getField(proj, name)
		return nonEmpty(v, ok)
	}
	countNonEmpty := func(names []string) (n int, which []string) {
		for _, name := range names {
			if nonEmptyField(name) {
				n++
				which = append(which, name)
			}
		}
		return n, which
	}
	switch c.name {
	case "at_least_one_of":
		if n, _ := countNonEmpty(c.list); n == 0 {
			entityError(errs, "at least one of these fields must be non-empty: "+quotedList(c.list))
		}
	case "only_one_of":
		if n, _ := countNonEmpty(c.list); n != 1 {
			entityError(errs, "exactly one of these fields must be non-empty: "+quotedList(c.list))
		}
	case "distinct":
		var seen []any
		for _, name := range c.list {
			v, ok := getField(proj, name)
			if !nonEmpty(v, ok) {
				continue
			}
			if inList(v, seen) {
				entityError(errs, "values of these fields must be distinct: "+quotedList(c.list))
				return
			}
			seen = append(seen, v)
		}
	case "mutually_required":
		if n, _ := countNonEmpty(c.list); n != 0 && n != len(c.list) {
			entityError(errs, "all or none of these fields must be set: "+quotedList(c.list))
		}
	case "mutually_exclusive":
		if n, _ := countNonEmpty(c.list); n > 1 {
			entityError(errs, "only one or none of these fields must be set: "+quotedList(c.list))
		}
	case "mutually_exclusive_sets":
		n1, w1 := countNonEmpty(c.set1)
		n2, w2 := countNonEmpty(c.set2)
		if n1 > 0 && n2 > 0 {
			entityError(errs, fmt.Sprintf("these sets are mutually exclusive: (%s), (%s)", quotedList(w1), quotedList(w2)))
		}
	case "conditional":
		runConditional(c, proj, errs)
	case "conditional_at_least_one_of":
		runConditionalAtLeastOneOf(c, proj, errs, countNonEmpty)
	case "custom_entity_check":
		res, err := c.fn(proj)
		switch {
		case err != nil:
			entityError(errs, err.Error())
		case len(res) > 0 && truthy(res[0]):
		case len(res) > 1 && res[1] != nil:
			entityError(errs, Tostring(res[1]))
		default:
			entityError(errs, "failed entity check: custom_entity_check")
		}
	}
}

// runConditional: when if_field passes if_match, then_field must pass
// then_match; the field error goes on then_field.
func runConditional(c *entityCheck, proj, errs map[string]any) {
	ifV, ok := getField(proj, c.ifField)
	if !ok || validateField(c.ifMatch, ifV, true) != nil {
		return
	}
	thenV, _ := getField(proj, c.thenField)
	if c.thenRequired && thenV == nil {
		setField(errs, c.thenField, msgRequired)
		entityError(errs, fmt.Sprintf("failed conditional validation given value of field '%s'", c.ifField))
		return
	}
	if err := validateField(c.thenMatch, thenV, true); err != nil {
		setField(errs, c.thenField, err)
		if c.hasThenErr {
			entityError(errs, strings.ReplaceAll(c.thenErr, "%s", c.ifField))
		} else {
			entityError(errs, fmt.Sprintf("failed conditional validation given value of field '%s'", c.ifField))
		}
	}
}

func runConditionalAtLeastOneOf(c *entityCheck, proj, errs map[string]any, count func([]string) (int, []string)) {
	ifV, ok := getField(proj, c.ifField)
	if !ok {
		return
	}
	list, custom, hasCustom := c.thenList, c.thenErr, c.hasThenErr
	if validateField(c.ifMatch, ifV, true) != nil {
		if c.elseMatch == nil || validateField(c.elseMatch, ifV, true) != nil {
			return
		}
		list, custom, hasCustom = c.elseList, c.elseThenErr, c.hasElseErr
	}
	if n, _ := count(list); n > 0 {
		return
	}
	if hasCustom {
		entityError(errs, strings.ReplaceAll(custom, "%s", quotedList(list)))
		return
	}
	entityError(errs, "at least one of these fields must be non-empty: "+quotedList(list))
}
