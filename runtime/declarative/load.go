package declarative

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/gong-proxy/gong/runtime/schema"
)

// LoadFile reads and validates a declarative config file. Its type comes
// from the name's ending: json, yml/yaml, or toml.
func LoadFile(path string, opts Options) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path, opts)
}

// Parse validates a declarative config. filename chooses the decoder as in
// LoadFile; when it is empty JSON is tried, then YAML, as Kong does for
// strings and POST /config. Errors are *Error.
func Parse(data []byte, filename string, opts Options) (*Config, error) {
	v, err := decode(data, filename)
	if err != nil {
		return nil, err
	}
	return load(v, opts, time.Now())
}

// uuidNamespace is Kong's namespace for declarative ids
// (kong/db/schema/others/declarative_config.lua).
var uuidNamespace = uuid.MustParse("fd02801f-0957-4a15-a55a-c8d9606f30b5")

// entityUUID is Kong's generate_uuid: UUIDv5 of key in the namespace that
// is itself the UUIDv5 of the entity type.
func entityUUID(typ, key string) string {
	return uuid.NewSHA1(uuid.NewSHA1(uuidNamespace, []byte(typ)), []byte(key)).String()
}

// cacheKeys are the cache_key fields of the entities that have one.
var cacheKeys = map[string][]string{
	"plugins": {"name", "route", "service", "consumer"},
	"targets": {"upstream", "target"},
}

// item is one entity of the config with its place in the input.
type item struct {
	typ    string
	raw    map[string]any // as written, for ids and error reports
	rec    map[string]any // processed
	index  int            // 1-based position in its array
	parent *item
	fk     string // the field pointing to parent
	kids   []*item
}

func (it *item) id() string { s, _ := it.rec["id"].(string); return s }

// errNode returns the error node of the item, mirroring its nesting.
func (it *item) errNode(root *ErrorNode) *ErrorNode {
	if it.parent == nil {
		return root.field(it.typ).entry(it.index)
	}
	return it.parent.errNode(root).field(it.typ).entry(it.index)
}

func load(v any, opts Options, now time.Time) (*Config, error) {
	root, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{Message: "failed parsing declarative configuration: expected an object"}
	}
	migrateRoutePaths(root)
	b := &builder{opts: opts, now: now.Unix(), cache: map[string]*schema.Field{}}
	errs := &ErrorNode{}
	processed := map[string][]map[string]any{}
	keys := make([]string, 0, len(root))
	for k := range root {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := root[k]
		switch {
		case k == "_format_version":
			errs.setErr(k, oneOf(str(k), "1.1", "2.1", "3.0").Validate(v))
		case k == "_transform":
			errs.setErr(k, schema.Boolean(k).Validate(v))
		case k == "_comment":
			errs.setErr(k, str(k).Validate(v))
		case k == "_ignore":
			errs.setErr(k, schema.Array(k, schema.Any("")).Validate(v))
		case slices.Contains(entityTypes, k):
			processed[k] = b.validateList(k, v, errs)
		default:
			errs.setMsg(k, "unknown field")
		}
	}
	if root["_format_version"] == nil {
		errs.setMsg("_format_version", "required field missing")
	}
	if !errs.empty() {
		return nil, &Error{Tree: errs, Flattened: flattenErrors(root, errs)}
	}
	cfg := &Config{Transform: true}
	cfg.FormatVersion, _ = root["_format_version"].(string)
	if t, ok := root["_transform"].(bool); ok {
		cfg.Transform = t
	}

	var items []*item
	for _, typ := range entityTypes {
		rawList, _ := schema.AsList(root[typ])
		for i, rec := range processed[typ] {
			raw, _ := schema.AsRecord(rawList[i])
			items = append(items, newItem(typ, raw, rec, i+1, nil, ""))
		}
	}
	for _, it := range items {
		generateIDs(it)
	}
	if err := resolve(items, cfg); err != nil {
		return nil, err
	}
	stamp(items, now)
	if err := build(items, cfg); err != nil {
		return nil, err
	}
	if err := resolveSecrets(cfg, opts); err != nil {
		return nil, err
	}
	return cfg, nil
}

// validateList validates one entity array and returns the processed
// records (nil where an entry is not a record).
func (b *builder) validateList(typ string, v any, errs *ErrorNode) []map[string]any {
	list, ok := schema.AsList(v)
	if !ok {
		errs.setMsg(typ, "expected an array")
		return nil
	}
	s := b.entity(typ, false)
	out := make([]map[string]any, len(list))
	node := &ErrorNode{}
	for i, e := range list {
		rec, ok := schema.AsRecord(e)
		if !ok {
			node.Entries = setEntry(node.Entries, i+1, leaf("expected a record"))
			continue
		}
		p, perr := s.Process(rec)
		if perr == nil {
			perr = s.ValidateRecord(p)
		}
		if perr != nil {
			node.Entries = setEntry(node.Entries, i+1, errorTree(perr))
		}
		out[i] = p
	}
	errs.set(typ, node)
	return out
}

func newItem(typ string, raw, rec map[string]any, index int, parent *item, fk string) *item {
	it := &item{typ: typ, raw: raw, rec: rec, index: index, parent: parent, fk: fk}
	for _, c := range children(typ) {
		procList, _ := rec[c.ref].([]any)
		rawList, _ := schema.AsList(raw[c.ref])
		for j, e := range procList {
			childRec, _ := e.(map[string]any)
			var childRaw map[string]any
			if j < len(rawList) {
				childRaw, _ = schema.AsRecord(rawList[j])
			}
			it.kids = append(it.kids, newItem(c.ref, childRaw, childRec, j+1, it, c.field))
		}
		delete(rec, c.ref)
	}
	delete(rec, "_comment")
	delete(rec, "_ignore")
	return it
}

// generateIDs gives ids as Kong's generate_ids does: from the cache key
// (plugins, targets) or the unique endpoint key. Where Kong would pick a
// random id, gong derives one from the type, the parent and the position
// so that ids stay the same across reloads.
func generateIDs(it *item) {
	if it.id() == "" {
		key, ok := "", false
		if ck := cacheKeys[it.typ]; ck != nil {
			key, ok = cacheKey(it, ck)
		} else if ek := endpointKey[it.typ]; ek != "" {
			key, ok = it.rec[ek].(string)
		}
		if !ok {
			parent := ""
			if it.parent != nil {
				parent = it.parent.id()
			}
			key = "gong:" + parent + ":" + strconv.Itoa(it.index)
		}
		it.rec["id"] = entityUUID(it.typ, key)
	}
	for _, k := range it.kids {
		generateIDs(k)
	}
}

// cacheKey is Kong's build_cache_key, computed from the fields as written:
// an explicit null adds nothing, an absent optional field adds "".
func cacheKey(it *item, fields []string) (string, bool) {
	key := it.typ + ":*"
	for _, f := range fields {
		v, present := it.raw[f]
		switch x := v.(type) {
		case string:
			key += ":" + x
		case nil:
			if present {
				continue
			}
			switch {
			case f == it.fk:
				key += ":" + it.parent.id()
			case f == "name" || f == "upstream" || f == "target":
				return "", false
			default:
				key += ":"
			}
		}
	}
	return key, true
}

// walk visits items children first, as Kong's populate_references does.
func walk(items []*item, fn func(*item)) {
	for _, it := range items {
		walk(it.kids, fn)
		fn(it)
	}
}

// walkParentFirst visits items in Kong's load order, parents first.
func walkParentFirst(items []*item, fn func(*item)) {
	for _, it := range items {
		fn(it)
		walkParentFirst(it.kids, fn)
	}
}

func uniquenessMsg(typ, key, value string) string {
	return "uniqueness violation: '" + typ + "' entity with " + key + " set to '" + value + "' already declared"
}

// resolve checks uniqueness and references and replaces references by ids,
// as Kong's validate_references and flatten do.
func resolve(items []*item, cfg *Config) error {
	byKey := map[string]map[string]*item{}
	byID := map[string]map[string]*item{}
	errs := &ErrorNode{}
	var flat []FlatError
	report := func(it *item, msg string) {
		flat = append(flat, flatFor(it.typ, it.raw, []FieldError{{Type: "entity", Message: msg}}))
	}
	type ref struct {
		it         *item
		field, typ string
		value, at  string
		inSet      bool // an element of a set of ids, left as written
	}
	var refs []ref
	walk(items, func(it *item) {
		if byID[it.typ] == nil {
			byID[it.typ], byKey[it.typ] = map[string]*item{}, map[string]*item{}
		}
		failed := false
		ek := endpointKey[it.typ]
		key, hasKey := it.rec[ek].(string)
		if hasKey {
			if byKey[it.typ][key] != nil {
				msg := uniquenessMsg(it.typ, ek, key)
				it.errNode(errs).Message = msg
				report(it, msg)
				failed = true
			} else {
				byKey[it.typ][key] = it
			}
		}
		id := it.id()
		if byID[it.typ][id] != nil {
			if !failed {
				msg := uniquenessMsg(it.typ, "primary key", id)
				it.errNode(errs).Message = msg
				report(it, msg)
			}
		} else {
			byID[it.typ][id] = it
		}
		at := id
		if hasKey {
			at = key
		}
		for _, fk := range foreignKeys[it.typ] {
			if v, ok := it.rec[fk.field].(string); ok && it.parent == nil {
				refs = append(refs, ref{it, fk.field, fk.ref, v, at, false})
			}
		}
		for _, sr := range setReferences[it.typ] {
			ids, _ := it.rec[sr.field].([]any)
			for _, v := range ids {
				if v, ok := v.(string); ok {
					refs = append(refs, ref{it, sr.field, sr.ref, v, at, true})
				}
			}
		}
		if it.parent != nil {
			it.rec[it.fk] = it.parent.id()
		}
	})
	for _, r := range refs {
		var found *item
		if !r.inSet {
			found = byKey[r.typ][r.value]
		}
		if found == nil {
			found = byID[r.typ][r.value]
		}
		if found == nil {
			msg := "invalid reference '" + r.field + ": " + r.value + "' (no such entry in '" + r.typ + "')"
			errs.field(r.it.typ).appendMsg(r.at, msg)
			report(r.it, msg)
			continue
		}
		if !r.inSet {
			r.it.rec[r.field] = found.id()
		}
	}
	if !errs.empty() {
		return &Error{Tree: errs, Flattened: flat}
	}
	// Other unique fields, checked after references as in Kong's flatten.
	walkParentFirst(items, func(it *item) {
		if it.typ == "ca_certificates" {
			// Kong computes the digest in the on_write transformation.
			if _, given := it.rec["cert_digest"].(string); !given || cfg.Transform {
				cert, _ := it.rec["cert"].(string)
				it.rec["cert_digest"] = certDigest(cert)
			}
		}
	})
	uniques := map[string][]string{"consumers": {"custom_id"}, "ca_certificates": {"cert_digest"}}
	seen := map[string]bool{}
	walkParentFirst(items, func(it *item) {
		for _, f := range uniques[it.typ] {
			v, ok := it.rec[f].(string)
			if !ok {
				continue
			}
			k := it.typ + "\x00" + f + "\x00" + v
			if !seen[k] {
				seen[k] = true
				continue
			}
			at := it.id()
			if ek, ok := it.rec[endpointKey[it.typ]].(string); ok {
				at = ek
			}
			msg := uniquenessMsg(it.typ, f, v)
			errs.field(it.typ).setMsg(at, msg)
			report(it, msg)
		}
	})
	if !errs.empty() {
		return &Error{Tree: errs, Flattened: flat}
	}
	return nil
}

// stamp fills created_at and updated_at as Kong does on insert.
func stamp(items []*item, now time.Time) {
	walkParentFirst(items, func(it *item) {
		var t any = float64(now.Unix())
		if it.typ == "targets" {
			t = float64(now.UnixMilli()) / 1000
		}
		for _, f := range []string{"created_at", "updated_at"} {
			if it.rec[f] == nil {
				it.rec[f] = t
			}
		}
	})
}

// build converts the processed records into the typed entities.
func build(items []*item, cfg *Config) error {
	var err error
	walkParentFirst(items, func(it *item) {
		if it.typ == "targets" {
			if t, ok := it.rec["target"].(string); ok {
				it.rec["target"] = normalizeTarget(t)
			}
		}
		var dst any
		switch it.typ {
		case "services":
			dst = appendNew(&cfg.Services)
		case "routes":
			dst = appendNew(&cfg.Routes)
		case "upstreams":
			dst = appendNew(&cfg.Upstreams)
		case "targets":
			dst = appendNew(&cfg.Targets)
		case "certificates":
			dst = appendNew(&cfg.Certificates)
		case "snis":
			dst = appendNew(&cfg.SNIs)
		case "ca_certificates":
			dst = appendNew(&cfg.CACertificates)
		case "plugins":
			dst = appendNew(&cfg.Plugins)
		case "consumers":
			dst = appendNew(&cfg.Consumers)
		case "vaults":
			dst = appendNew(&cfg.Vaults)
		}
		data, e := json.Marshal(it.rec)
		if e == nil {
			e = json.Unmarshal(data, dst)
		}
		if e != nil && err == nil {
			err = &Error{Message: it.typ + " " + it.id() + ": " + e.Error()}
		}
	})
	return err
}

func appendNew[T any](s *[]*T) *T {
	v := new(T)
	*s = append(*s, v)
	return v
}

// notRegex matches paths that Kong's 2.x-to-3.0 migration leaves alone.
var notRegex = regexp.MustCompile(`^[a-zA-Z0-9.\-_~/%]*$`)

// migrateRoutePaths is Kong's on-the-fly migration for format versions 1.1
// and 2.1: route paths that look like regexes get the "~" prefix (without
// Kong's percent-decoding of regex paths).
func migrateRoutePaths(root map[string]any) {
	if v := root["_format_version"]; v != "1.1" && v != "2.1" {
		return
	}
	migrate := func(routes any) {
		list, _ := routes.([]any)
		for _, r := range list {
			rec, _ := r.(map[string]any)
			paths, _ := rec["paths"].([]any)
			for i, p := range paths {
				if s, ok := p.(string); ok && !notRegex.MatchString(s) {
					paths[i] = "~" + s
				}
			}
		}
	}
	migrate(root["routes"])
	services, _ := root["services"].([]any)
	for _, s := range services {
		rec, _ := s.(map[string]any)
		migrate(rec["routes"])
	}
}

func flatFor(typ string, raw map[string]any, errs []FieldError) FlatError {
	fe := FlatError{EntityType: singular(typ), Errors: errs}
	if n, ok := raw["name"].(string); ok {
		fe.EntityName = n
	}
	if id, ok := raw["id"].(string); ok && schema.IsUUID(id) {
		fe.EntityID = id
	}
	if tags, ok := raw["tags"].([]any); ok {
		for _, t := range tags {
			s, ok := t.(string)
			if !ok {
				fe.EntityTags = nil
				break
			}
			fe.EntityTags = append(fe.EntityTags, s)
		}
	}
	return fe
}

// flattenErrors lists validation errors per entity, nested entities
// separately, as Kong's flatten_errors does.
func flattenErrors(root map[string]any, errs *ErrorNode) []FlatError {
	var out []FlatError
	var entity func(typ string, raw map[string]any, n *ErrorNode)
	entity = func(typ string, raw map[string]any, n *ErrorNode) {
		own := &ErrorNode{Message: n.Message, Fields: map[string]*ErrorNode{}}
		for k, c := range n.Fields {
			own.Fields[k] = c
		}
		var nested []func()
		for _, c := range children(typ) {
			cn := n.Fields[c.ref]
			list, ok := schema.AsList(raw[c.ref])
			if cn == nil || !ok || cn.Message != "" {
				continue
			}
			delete(own.Fields, c.ref)
			for _, i := range sortedInts(cn.Entries) {
				if i-1 < len(list) {
					rec, _ := schema.AsRecord(list[i-1])
					ce := cn.Entries[i]
					nested = append(nested, func() { entity(c.ref, rec, ce) })
				}
			}
		}
		var list []FieldError
		if own.Message != "" {
			list = append(list, FieldError{Type: "entity", Message: own.Message})
		}
		list = categorize(own, "", list)
		if len(list) > 0 {
			out = append(out, flatFor(typ, raw, list))
		}
		for _, f := range nested {
			f()
		}
	}
	for _, typ := range entityTypes {
		n := errs.Fields[typ]
		list, ok := schema.AsList(root[typ])
		if n == nil || !ok {
			continue
		}
		for _, i := range sortedInts(n.Entries) {
			if rec, ok := schema.AsRecord(list[i-1]); ok {
				entity(typ, rec, n.Entries[i])
			}
		}
	}
	return out
}

func sortedInts(m map[int]*ErrorNode) []int {
	out := make([]int, 0, len(m))
	for i := range m {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}
