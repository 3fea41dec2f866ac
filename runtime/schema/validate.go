package schema

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/yuin/gopher-lua/pm"
)

// Messages of kong/db/schema/init.lua validation_errors.
const (
	msgRequired         = "required field missing"
	msgUnknown          = "unknown field"
	msgRequiredForCheck = "field required for entity check"
)

// Validate checks a plugin entity's config and returns it with Kong's
// defaults filled as a handler sees it (select-processed: optional fields
// without a value are absent, sets de-duplicated), or the field errors
// nested as Kong nests them: field -> message, or a nested map for records
// and for arrays (keyed by the 1-based index as a string), and "@entity" ->
// []string. Entity checks declared at the top of the plugin schema (on
// "config.x" paths) report their "@entity" messages in the returned map's
// "@entity". It may call Lua functions of the schema, which run on
// the VM the schema's definition was read on.
func (s *Schema) Validate(config map[string]any) (filled map[string]any, errs map[string]any) {
	cfgField := s.root.byName["config"]
	if cfgField == nil {
		if len(config) > 0 {
			return nil, map[string]any{"@entity": []string{"plugin '" + s.name + "' has no config field"}}
		}
		return map[string]any{}, nil
	}
	entity := map[string]any{"config": normalize(config)}
	processed, perrs := processRecord(s.root, entity)
	if len(perrs) > 0 {
		return nil, lift(perrs)
	}
	top := map[string]any{}
	if err := validateField(cfgField, processed["config"], true); err != nil {
		top["config"] = err
	}
	runChecks(s.root, processed, top)
	if len(top) > 0 {
		return nil, lift(top)
	}
	cfg, _ := processed["config"].(map[string]any)
	return selectRecord(cfgField, cfg), nil
}

// lift returns the errors under "config", with the plugin-level "@entity"
// messages added to them.
func lift(top map[string]any) map[string]any {
	out := map[string]any{}
	switch c := top["config"].(type) {
	case map[string]any:
		for k, v := range c {
			out[k] = v
		}
	case string:
		out["@entity"] = []string{c}
	}
	if l, ok := top["@entity"].([]string); ok {
		prev, _ := out["@entity"].([]string)
		out["@entity"] = append(prev, l...)
	}
	return out
}

// typeError is the type check of Schema:validate_field.
func typeError(f *Field, v any) string {
	switch f.typ {
	case "array", "set":
		if _, ok := asList(v); !ok {
			return "expected " + article(f.typ)
		}
	case "map":
		switch v.(type) {
		case map[string]any, []any:
		default:
			return "expected a map"
		}
	case "record", "foreign":
		if _, ok := asRecord(v); !ok {
			return "expected a record"
		}
	case "integer":
		n, ok := v.(float64)
		if !ok || n != math.Floor(n) || math.IsInf(n, 0) {
			return "expected an integer"
		}
	case "number":
		if _, ok := v.(float64); !ok {
			return "expected a number"
		}
	case "string":
		if _, ok := v.(string); !ok {
			return "expected a string"
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return "expected a boolean"
		}
	case "function":
		return "expected a function"
	}
	return ""
}

func article(typ string) string {
	if typ == "array" {
		return "an array"
	}
	return "a " + typ
}

// asList accepts a sequence; an empty table is one in Lua.
func asList(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case map[string]any:
		if len(x) == 0 {
			return []any{}, true
		}
	}
	return nil, false
}

// asRecord accepts a table with string keys; an empty table is one in Lua.
func asRecord(v any) (map[string]any, bool) {
	switch x := v.(type) {
	case map[string]any:
		return x, true
	case []any:
		if len(x) == 0 {
			return map[string]any{}, true
		}
	}
	return nil, false
}

// validateField is Schema:validate_field: nil when v is valid, else a message
// (string) or nested errors (map[string]any). v == nil is null.
func validateField(f *Field, v any, present bool) any {
	if !present {
		return nil
	}
	if v == nil {
		switch {
		case f.neNull:
			return orErr(f, "value must not be null")
		case f.hasEq && !f.eqNull:
			return "value must be " + Tostring(f.eq)
		case f.required:
			return msgRequired
		}
		return nil
	}
	if f.eqNull {
		return orErr(f, "value must be null")
	}
	if f.abstract {
		return "error in schema definition: abstract field was not specialized"
	}
	if msg := typeError(f, v); msg != "" {
		return msg
	}
	switch f.typ {
	case "array", "set":
		list, _ := asList(v)
		errs := map[string]any{}
		for i, e := range list {
			if err := validateField(f.elements, e, true); err != nil {
				errs[strconv.Itoa(i+1)] = err
			}
		}
		if len(errs) > 0 {
			return errs
		}
	case "map":
		for _, kv := range mapPairs(v) {
			if err := validateField(f.keys, kv.k, true); err != nil {
				return err
			}
			if err := validateField(f.values, kv.v, true); err != nil {
				return err
			}
		}
	case "record":
		m, _ := asRecord(v)
		copied, perrs := processRecord(f, m)
		if len(perrs) > 0 {
			return perrs
		}
		errs := validateRecord(f, copied)
		if len(errs) > 0 {
			return errs
		}
		v = copied
	case "string":
		if f.referenceable && isReference(v.(string)) {
			return nil
		}
	}
	if msg := runValidators(f, v); msg != "" {
		return orErr(f, msg)
	}
	return nil
}

func orErr(f *Field, msg string) string {
	if f.err != "" {
		return f.err
	}
	return msg
}

// isReference is kong.tools.vault is_reference: "{vault://...}".
func isReference(s string) bool {
	return strings.HasPrefix(s, "{vault://") && strings.HasSuffix(s, "}")
}

type pair struct {
	k, v any
}

// mapPairs lists a map's pairs in key order; a sequence used as a map has
// number keys.
func mapPairs(v any) []pair {
	var out []pair
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, pair{k, x[k]})
		}
	case []any:
		for i, e := range x {
			out = append(out, pair{float64(i + 1), e})
		}
	}
	return out
}

var uuidRE = regexp.MustCompile(`(?i)^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// runValidators runs Schema.validators_order on a non-null value of the
// right type and returns the first failure's message.
func runValidators(f *Field, v any) string {
	str, isStr := v.(string)
	num, isNum := v.(float64)
	if f.hasEq && !f.eqNull && !equal(v, f.eq) {
		return "value must be " + Tostring(f.eq)
	}
	if f.hasNe && !f.neNull && equal(v, f.ne) {
		return "value must not be " + Tostring(v)
	}
	if f.hasNotOneOf && inList(v, f.notOneOf) {
		return "must not be one of: " + joinValues(f.notOneOf)
	}
	if f.hasOneOf && !inList(v, f.oneOf) {
		return "expected one of: " + joinValues(f.oneOf)
	}
	if f.gt != nil && isNum && !(num > *f.gt) {
		return "value must be greater than " + Tostring(*f.gt)
	}
	if f.timestamp && isNum && !(num > 0) {
		return "expected a valid timestamp"
	}
	if f.uuid && isStr && (len(str) != 36 || !uuidRE.MatchString(str)) {
		return "expected a valid UUID"
	}
	if f.isRegex && isStr {
		if _, err := regexp.Compile(str); err != nil {
			return "not a valid regex: " + str
		}
	}
	// NaN fails the range, unlike in Lua, so it never reaches a balancer.
	if f.between != nil && isNum && !(num >= f.between[0] && num <= f.between[1]) {
		return fmt.Sprintf("value should be between %d and %d", int64(f.between[0]), int64(f.between[1]))
	}
	lenMin := f.lenMin
	if lenMin == nil && f.typ == "string" {
		one := 1 // empty strings are not accepted by default
		lenMin = &one
	}
	if n, ok := length(f, v); ok {
		if f.lenEq != nil && n != *f.lenEq {
			return fmt.Sprintf("length must be %d", *f.lenEq)
		}
		if lenMin != nil && n < *lenMin {
			return fmt.Sprintf("length must be at least %d", *lenMin)
		}
		if f.lenMax != nil && n > *f.lenMax {
			return fmt.Sprintf("length must be at most %d", *f.lenMax)
		}
	}
	if isStr {
		if f.startsWith != nil && !strings.HasPrefix(str, *f.startsWith) {
			return "should start with: " + *f.startsWith
		}
		if f.notMatch != nil && luaMatch(str, *f.notMatch) {
			return "invalid value: " + str
		}
		for _, pe := range f.matchNone {
			if luaMatch(str, pe.pattern) {
				return defaultMsg(pe.err, "invalid value: "+str)
			}
		}
		if f.match != nil && !luaMatch(str, *f.match) {
			return "invalid value: " + str
		}
		for _, pe := range f.matchAll {
			if !luaMatch(str, pe.pattern) {
				return defaultMsg(pe.err, "invalid value: "+str)
			}
		}
		if f.matchAny != nil {
			ok := false
			for _, p := range f.matchAny.patterns {
				if luaMatch(str, p) {
					ok = true
					break
				}
			}
			if !ok {
				return defaultMsg(f.matchAny.err, "invalid value: "+str)
			}
		}
	}
	if f.hasContains {
		list, _ := asList(v)
		if !inList(f.contains, list) {
			return "expected to contain: " + Tostring(f.contains)
		}
	}
	if f.custom != nil {
		if msg := callCustom(f.custom, v); msg != "" {
			return msg
		}
	}
	if f.goCustom != nil && isStr {
		if msg := f.goCustom(str); msg != "" {
			return msg
		}
	}
	if len(f.mutexSubsets) > 0 {
		if msg := mutexSubsets(v, f.mutexSubsets); msg != "" {
			return msg
		}
	}
	return ""
}

func defaultMsg(msg, def string) string {
	if msg == "" {
		return def
	}
	return msg
}

// callCustom calls a custom_validator with the value alone.
func callCustom(fn Func, v any) string {
	res, err := fn(v)
	if err != nil {
		return "failed validating: " + err.Error()
	}
	if len(res) > 0 && truthy(res[0]) {
		return ""
	}
	if len(res) > 1 && res[1] != nil {
		return Tostring(res[1])
	}
	return "failed validating: " + Tostring(v)
}

// mutexSubsets is the mutually_exclusive_subsets validator.
func mutexSubsets(v any, subsets [][]any) string {
	list, _ := asList(v)
	var member []int
	seen := map[int]bool{}
	for _, e := range list {
		for i, sub := range subsets {
			if inList(e, sub) && !seen[i] {
				seen[i] = true
				member = append(member, i)
			}
		}
	}
	if len(member) <= 1 {
		return ""
	}
	parts := make([]string, len(member))
	for i, m := range member {
		parts[i] = "(" + joinQuoted(subsets[m]) + ")"
	}
	return "these sets are mutually exclusive: " + strings.Join(parts, ", ")
}

// length is Lua's # as make_length_validator uses it: bytes of a string,
// elements of an array, and for maps # plus the number of pairs.
func length(f *Field, v any) (int, bool) {
	switch x := v.(type) {
	case string:
		return len(x), true
	case []any:
		if f.typ == "map" {
			return 2 * len(x), true
		}
		return len(x), true
	case map[string]any:
		return len(x), true
	}
	return 0, false
}

// luaMatch is string.match(s, pattern) ~= nil with Lua 5.1 patterns.
func luaMatch(s, pattern string) bool {
	mds, err := pm.Find(pattern, []byte(s), 0, 1)
	return err == nil && len(mds) > 0
}

// equal is Lua's == on the value domain: tables are never equal to a
// schema constant.
func equal(a, b any) bool {
	switch a.(type) {
	case map[string]any, []any:
		return false
	}
	switch b.(type) {
	case map[string]any, []any:
		return false
	}
	return a == b
}

func inList(v any, list []any) bool {
	for _, e := range list {
		if equal(v, e) {
			return true
		}
	}
	return false
}

func joinValues(list []any) string {
	parts := make([]string, len(list))
	for i, e := range list {
		parts[i] = Tostring(e)
	}
	return strings.Join(parts, ", ")
}

// validateRecord is Schema:validate on a record value with full_check: unknown
// fields, field errors, required fields, then entity checks.
func validateRecord(f *Field, m map[string]any) map[string]any {
	errs := map[string]any{}
	var sub *Subschema
	if f.subs != nil {
		key := m[f.subs.key]
		if key == nil {
			errs[f.subs.key] = msgRequired
			return errs
		}
		if sub = f.subs.choose(m); sub == nil {
			errs[f.subs.key] = f.subs.unknown(key)
			return errs
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fd := f.lookup(k, sub)
		if fd == nil {
			errs[k] = msgUnknown
			continue
		}
		if err := validateField(fd, m[k], true); err != nil {
			errs[k] = err
		}
	}
	for _, fd := range f.fields {
		if v, ok := m[fd.name]; fd.required && (!ok || v == nil) {
			errs[fd.name] = msgRequired
		}
	}
	runChecks(f, m, errs)
	for _, c := range f.goChecks {
		c(m, errs)
	}
	if sub != nil {
		for _, c := range sub.checks {
			c(m, errs)
		}
	}
	return errs
}

// lookup is a record's field called name, as the subschema redefines it.
func (f *Field) lookup(name string, sub *Subschema) *Field {
	if sub != nil {
		if fd := sub.byName[name]; fd != nil {
			return fd
		}
	}
	return f.byName[name]
}
