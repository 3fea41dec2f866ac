package declarative

import (
	"math"
	"slices"
	"strings"
)

// kind is a Kong schema field type.
type kind uint8

const (
	tString kind = iota
	tInteger
	tNumber
	tBoolean
	tArray
	tSet
	tRecord
	tMap
	tAny
)

// field is the subset of Kong's schema field DSL (kong/db/schema/init.lua)
// that the stream entities use. Validators run in Kong's validators_order.
type field struct {
	name       string
	kind       kind
	required   bool
	auto       bool // id and timestamps: filled after validation
	def        any  // default, deep-copied on use
	mustBeNull bool // eq = null
	mustNotBe  any  // ne
	err        string
	oneOf      []string
	oneOfNum   []float64
	timestamp  bool
	uuid       bool
	between    *[2]float64
	lenMin     int
	hasLenMin  bool
	str        []func(string) string // starts_with, match*, custom_validator
	mutex      [][]string
	elements   *field
	record     *schema
	keys       *field
	values     *field
}

// schema is a record: its fields in declaration order, the entity checks,
// and optional shorthands and subschemas.
type schema struct {
	fields    []*field
	shorthand func(m map[string]any) *ErrorNode
	checks    []check
	subKey    string
	subschema func(key any) *subschema
	subErr    func(key any) string
}

// subschema overrides fields and adds checks, selected by subKey's value.
type subschema struct {
	fields map[string]*field
	checks []check
}

// check is an entity check; it reads the record and the errors of its
// fields so far, and adds to them.
type check func(m map[string]any, errs *ErrorNode)

func (s *schema) lookup(name string, sub *subschema) *field {
	if sub != nil {
		if f := sub.fields[name]; f != nil {
			return f
		}
	}
	for _, f := range s.fields {
		if f.name == name {
			return f
		}
	}
	return nil
}

func (s *schema) selectSub(m map[string]any) *subschema {
	if s.subschema == nil {
		return nil
	}
	switch k := m[s.subKey].(type) {
	case string:
		return s.subschema(k)
	case []any:
		for _, e := range k {
			if sub := s.subschema(e); sub != nil {
				return sub
			}
		}
	}
	return nil
}

// asArray accepts what Lua's is_sequence accepts: arrays, and empty
// objects (an empty Lua table is both).
func asArray(v any) ([]any, bool) {
	switch a := v.(type) {
	case []any:
		return a, true
	case map[string]any:
		if len(a) == 0 {
			return []any{}, true
		}
	}
	return nil, false
}

func asRecord(v any) (map[string]any, bool) {
	switch r := v.(type) {
	case map[string]any:
		return r, true
	case []any:
		if len(r) == 0 {
			return map[string]any{}, true
		}
	}
	return nil, false
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = deepCopy(e)
		}
		return a
	}
	return v
}

// dedupe removes repeated scalars, keeping the first; records and arrays
// are distinct Lua tables and are never merged.
func dedupe(a []any) []any {
	out := make([]any, 0, len(a))
	seen := map[any]bool{}
	for _, v := range a {
		switch v.(type) {
		case string, float64, bool:
			if seen[v] {
				continue
			}
			seen[v] = true
		}
		out = append(out, v)
	}
	return out
}

// process fills defaults and applies shorthands, as Kong's
// process_auto_fields does on insert; it never changes the input.
func (s *schema) process(in map[string]any) (map[string]any, *ErrorNode) {
	m := make(map[string]any, len(in))
	for k, v := range in {
		m[k] = v
	}
	if s.shorthand != nil {
		if errs := s.shorthand(m); !errs.empty() {
			return m, errs
		}
	}
	sub := s.selectSub(m)
	for _, f := range s.fields {
		if sf := s.lookup(f.name, sub); sf != nil {
			f = sf
		}
		v, ok := m[f.name]
		if !ok {
			switch {
			case f.auto:
			case f.def != nil:
				m[f.name] = deepCopy(f.def)
			case !f.required:
				m[f.name] = nil
			case f.kind == tRecord:
				m[f.name], _ = f.record.process(map[string]any{})
			}
			continue
		}
		m[f.name] = processValue(f, v)
	}
	return m, nil
}

func processValue(f *field, v any) any {
	switch f.kind {
	case tRecord:
		if r, ok := v.(map[string]any); ok {
			p, errs := f.record.process(r)
			if errs.empty() {
				return p
			}
		}
	case tArray, tSet:
		a, ok := v.([]any)
		// A field that must be null (a route's destinations under http)
		// has no element schema; validation reports the value.
		if !ok || f.elements == nil {
			return v
		}
		if f.kind == tSet {
			a = dedupe(a)
		} else {
			a = slices.Clone(a)
		}
		for i, e := range a {
			a[i] = processValue(f.elements, e)
		}
		return a
	}
	return v
}

// validate checks a processed record and returns its errors, or nil.
func (s *schema) validate(m map[string]any) *ErrorNode {
	errs := &ErrorNode{}
	var sub *subschema
	if s.subKey != "" {
		key := m[s.subKey]
		if key == nil {
			errs.setMsg(s.subKey, "required field missing")
			return errs
		}
		if sub = s.selectSub(m); sub == nil {
			errs.setMsg(s.subKey, s.subErr(key))
			return errs
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		f := s.lookup(k, sub)
		if f == nil {
			errs.setMsg(k, "unknown field")
			continue
		}
		if e := validateField(f, m[k]); e != nil {
			errs.set(k, e)
		}
	}
	for _, f := range s.fields {
		if f.required && m[f.name] == nil {
			errs.setMsg(f.name, "required field missing")
		}
	}
	for _, c := range s.checks {
		c(m, errs)
	}
	if sub != nil {
		for _, c := range sub.checks {
			c(m, errs)
		}
	}
	if errs.empty() {
		return nil
	}
	return errs
}

func isFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// validateField is Kong's Schema:validate_field.
func validateField(f *field, v any) *ErrorNode {
	fail := func(msg string) *ErrorNode {
		if f.err != "" {
			return leaf(f.err)
		}
		return leaf(msg)
	}
	if v == nil {
		if f.required {
			return leaf("required field missing")
		}
		return nil
	}
	if f.mustBeNull {
		return fail("value must be null")
	}
	switch f.kind {
	case tArray, tSet:
		a, ok := asArray(v)
		if !ok {
			if f.kind == tSet {
				return leaf("expected a set")
			}
			return leaf("expected an array")
		}
		el := *f.elements
		el.required = true
		var errs *ErrorNode
		for i, e := range a {
			if ee := validateField(&el, e); ee != nil {
				if errs == nil {
					errs = &ErrorNode{}
				}
				errs.Entries = setEntry(errs.Entries, i+1, ee)
			}
		}
		if errs != nil {
			return errs
		}
		if f.hasLenMin && len(a) < f.lenMin {
			return fail("length must be at least " + formatNumber(float64(f.lenMin)))
		}
		if f.mutex != nil {
			if msg := mutuallyExclusiveSubsets(a, f.mutex); msg != "" {
				return fail(msg)
			}
		}
		return nil
	case tMap:
		r, ok := asRecord(v)
		if !ok {
			return leaf("expected a map")
		}
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		kf, vf := *f.keys, *f.values
		kf.required, vf.required = true, true
		for _, k := range keys {
			if e := validateField(&kf, k); e != nil {
				return e
			}
			if e := validateField(&vf, r[k]); e != nil {
				return e
			}
		}
		return nil
	case tRecord:
		r, ok := asRecord(v)
		if !ok {
			return leaf("expected a record")
		}
		p, errs := f.record.process(r)
		if errs != nil {
			return errs
		}
		return f.record.validate(p)
	case tInteger:
		n, ok := v.(float64)
		if !ok || !isFinite(n) || n != math.Floor(n) {
			return leaf("expected an integer")
		}
	case tNumber:
		if _, ok := v.(float64); !ok {
			return leaf("expected a number")
		}
	case tBoolean:
		if _, ok := v.(bool); !ok {
			return leaf("expected a boolean")
		}
	case tString:
		if _, ok := v.(string); !ok {
			return leaf("expected a string")
		}
	}
	if f.mustNotBe != nil && v == f.mustNotBe {
		return fail("value must not be " + toString(v))
	}
	if f.oneOf != nil {
		if s, _ := v.(string); !slices.Contains(f.oneOf, s) {
			return fail("expected one of: " + strings.Join(f.oneOf, ", "))
		}
	}
	if f.oneOfNum != nil {
		if n, _ := v.(float64); !slices.Contains(f.oneOfNum, n) {
			parts := make([]string, len(f.oneOfNum))
			for i, o := range f.oneOfNum {
				parts[i] = formatNumber(o)
			}
			return fail("expected one of: " + strings.Join(parts, ", "))
		}
	}
	if n, ok := v.(float64); ok {
		if f.timestamp && !(n > 0) {
			return fail("expected a valid timestamp")
		}
		// NaN fails the range, unlike in Lua, so it never reaches a balancer.
		if f.between != nil && !(n >= f.between[0] && n <= f.between[1]) {
			return fail("value should be between " + formatNumber(f.between[0]) + " and " + formatNumber(f.between[1]))
		}
	}
	if s, ok := v.(string); ok {
		if f.uuid && !isUUID(s) {
			return fail("expected a valid UUID")
		}
		lenMin := 1
		if f.hasLenMin {
			lenMin = f.lenMin
		}
		if len(s) < lenMin {
			return fail("length must be at least " + formatNumber(float64(lenMin)))
		}
		for _, fn := range f.str {
			if msg := fn(s); msg != "" {
				return fail(msg)
			}
		}
	}
	return nil
}

func setEntry(m map[int]*ErrorNode, i int, n *ErrorNode) map[int]*ErrorNode {
	if m == nil {
		m = map[int]*ErrorNode{}
	}
	m[i] = n
	return m
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return formatNumber(x)
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	return ""
}

// quotedList renders Kong's quoted_list: 'a', 'b'.
func quotedList(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + w + "'"
	}
	return strings.Join(q, ", ")
}

func mutuallyExclusiveSubsets(values []any, subsets [][]string) string {
	var member [][]string
	for _, v := range values {
		s, _ := v.(string)
		for _, set := range subsets {
			if slices.Contains(set, s) {
				found := false
				for _, m := range member {
					if &m[0] == &set[0] {
						found = true
					}
				}
				if !found {
					member = append(member, set)
				}
			}
		}
	}
	if len(member) <= 1 {
		return ""
	}
	parts := make([]string, len(member))
	for i, m := range member {
		parts[i] = "(" + quotedList(m) + ")"
	}
	return "these sets are mutually exclusive: " + strings.Join(parts, ", ")
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !isHex(s[i : i+1]) {
			return false
		}
	}
	return true
}

// isNonEmpty is Kong's is_nonempty.
func isNonEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// atLeastOneOf is the at_least_one_of entity check.
func atLeastOneOf(names ...string) check {
	return func(m map[string]any, errs *ErrorNode) {
		for _, n := range names {
			if isNonEmpty(m[n]) {
				return
			}
		}
		errs.entityError("at least one of these fields must be non-empty: " + quotedList(names))
	}
}

// anyErr reports whether any of the named fields already has an error.
func anyErr(errs *ErrorNode, names ...string) bool {
	for _, n := range names {
		if errs.has(n) {
			return true
		}
	}
	return false
}

// conditional is Kong's conditional entity check. ifMatch decides on the
// if-field's value (already known valid for the field); then validates the
// then-field and returns its error.
type conditional struct {
	ifField   *field
	ifMatch   func(v any) bool
	thenField string
	required  bool
	then      func(v any) *ErrorNode
	thenErr   string
}

func (c conditional) check() check {
	return func(m map[string]any, errs *ErrorNode) {
		v := m[c.ifField.name]
		// The if-match inherits the field's own validators (Kong sets the
		// field as its metatable), and null matches unless required.
		if v == nil {
			if c.ifField.required {
				return
			}
		} else if validateField(c.ifField, v) != nil || !c.ifMatch(v) {
			return
		}
		tv := m[c.thenField]
		var e *ErrorNode
		if c.required {
			if tv == nil {
				e = leaf("required field missing")
			}
		} else {
			e = c.then(tv)
		}
		if e == nil {
			return
		}
		errs.set(c.thenField, e)
		if c.thenErr != "" {
			errs.entityError(c.thenErr)
			return
		}
		errs.entityError("failed conditional validation given value of field '" + c.ifField.name + "'")
	}
}
