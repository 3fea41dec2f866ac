package declarative

import (
	"encoding/json"
	"slices"
)

// Patch validates an edit of a document whose entities, before the edit,
// validated into base, and returns base with the edit applied: the
// configuration Parse would give for the whole edited document, at the
// cost of the entities the edit touched.
//
// Only the neighbourhood of the edit is validated, which holds every rule
// that crosses entities (resolve): the entities put, the entities they
// reference (transitively), the entities sharing a unique value with them
// (endpoint key, consumers' custom_id, every CA certificate for the
// digest), and the entities still referencing a removed one. Every other
// entity is taken from base as it is. The errors are Parse's, for the
// neighbourhood's entities.
//
// d.Entities must be the whole document after the edit, and d.Put and
// d.Removed what the edit changed since base.
func Patch(base *Config, d *Document, opts Options) (*Config, error) {
	// A vault changes how references resolve anywhere: validate
	// everything.
	if slices.ContainsFunc(append(slices.Clone(d.Put), d.Removed...), func(r EntityRef) bool { return r.Type == "vaults" }) {
		data, err := d.Marshal()
		if err != nil {
			return nil, err
		}
		return Parse(data, "", opts)
	}
	put := map[EntityRef]bool{}
	for _, r := range d.Put {
		put[r] = true
	}
	sub, err := neighbourhood(d, put)
	if err != nil {
		return nil, err
	}
	changed, err := Parse(sub, "", opts)
	if err != nil {
		return nil, err
	}
	out := &Config{FormatVersion: base.FormatVersion, Transform: base.Transform, Vaults: base.Vaults, Secrets: base.Secrets}
	ids := func(typ string) []string {
		list := make([]string, 0, len(d.Entities[typ]))
		for _, e := range d.Entities[typ] {
			id, _ := e["id"].(string)
			list = append(list, id)
		}
		return list
	}
	ok := true
	patch := func(typ string) func(string) bool {
		return func(id string) bool { return put[EntityRef{typ, id}] }
	}
	out.Services, ok = patchList(base.Services, changed.Services, ids("services"), patch("services"), func(e *Service) string { return e.ID }, ok)
	out.Routes, ok = patchList(base.Routes, changed.Routes, ids("routes"), patch("routes"), func(e *Route) string { return e.ID }, ok)
	out.Upstreams, ok = patchList(base.Upstreams, changed.Upstreams, ids("upstreams"), patch("upstreams"), func(e *Upstream) string { return e.ID }, ok)
	out.Targets, ok = patchList(base.Targets, changed.Targets, ids("targets"), patch("targets"), func(e *Target) string { return e.ID }, ok)
	out.Certificates, ok = patchList(base.Certificates, changed.Certificates, ids("certificates"), patch("certificates"), func(e *Certificate) string { return e.ID }, ok)
	out.SNIs, ok = patchList(base.SNIs, changed.SNIs, ids("snis"), patch("snis"), func(e *SNI) string { return e.ID }, ok)
	out.CACertificates, ok = patchList(base.CACertificates, changed.CACertificates, ids("ca_certificates"), patch("ca_certificates"), func(e *CACertificate) string { return e.ID }, ok)
	out.Plugins, ok = patchList(base.Plugins, changed.Plugins, ids("plugins"), patch("plugins"), func(e *Plugin) string { return e.ID }, ok)
	out.Consumers, ok = patchList(base.Consumers, changed.Consumers, ids("consumers"), patch("consumers"), func(e *Consumer) string { return e.ID }, ok)
	if !ok {
		// An entity neither put nor in base: base was not the document
		// before the edit. Validate everything.
		data, err := d.Marshal()
		if err != nil {
			return nil, err
		}
		return Parse(data, "", opts)
	}
	return out, nil
}

// patchList is the list of one type after the edit, in the document's
// order (ids): the validated entity for those put, base's for the others.
// ok turns false when an entity is in neither.
func patchList[T any](base, changed []*T, ids []string, put func(string) bool, idOf func(*T) string, ok bool) ([]*T, bool) {
	if len(ids) == 0 {
		return nil, ok
	}
	index := func(list []*T, only func(string) bool) map[string]*T {
		m := make(map[string]*T, len(list))
		for _, e := range list {
			if only == nil || only(idOf(e)) {
				m[idOf(e)] = e
			}
		}
		return m
	}
	fresh := index(changed, put)
	if len(fresh) == 0 && len(base) == len(ids) && slices.EqualFunc(base, ids, func(e *T, id string) bool { return idOf(e) == id }) {
		return base, ok // untouched: shared with base
	}
	old := index(base, nil)
	out := make([]*T, 0, len(ids))
	for _, id := range ids {
		e := fresh[id]
		if e == nil {
			e = old[id]
		}
		if e == nil {
			return nil, false
		}
		out = append(out, e)
	}
	return out, ok
}

// neighbourhood is the document (JSON) of the entities that validate an
// edit (see Patch), each type in d's order.
func neighbourhood(d *Document, put map[EntityRef]bool) ([]byte, error) {
	byID := map[EntityRef]map[string]any{}
	byKey := map[EntityRef]map[string]any{} // by endpoint key
	for typ, list := range d.Entities {
		ek := endpointKey[typ]
		for _, e := range list {
			id, _ := e["id"].(string)
			byID[EntityRef{typ, id}] = e
			if k, ok := e[ek].(string); ok && ek != "" {
				byKey[EntityRef{typ, k}] = e
			}
		}
	}
	in := map[EntityRef]bool{}
	var add func(typ string, e map[string]any)
	add = func(typ string, e map[string]any) {
		id, _ := e["id"].(string)
		if in[EntityRef{typ, id}] {
			return
		}
		in[EntityRef{typ, id}] = true
		for _, r := range references(typ, e) {
			if target := byID[r]; target != nil {
				add(r.Type, target)
			} else if target := byKey[r]; target != nil {
				add(r.Type, target)
			}
		}
	}
	// Entities by unique value: the endpoint key, and consumers' custom_id.
	unique := map[string][]string{"consumers": {"custom_id"}}
	for typ, ek := range endpointKey {
		unique[typ] = append(unique[typ], ek)
	}
	byValue := map[string][]map[string]any{} // "type field value"
	for typ, list := range d.Entities {
		for _, f := range unique[typ] {
			for _, e := range list {
				if v, ok := e[f].(string); ok {
					k := typ + "\x00" + f + "\x00" + v
					byValue[k] = append(byValue[k], e)
				}
			}
		}
	}
	for ref := range put {
		e := byID[ref]
		if e == nil {
			continue // put, then removed by the same edit
		}
		add(ref.Type, e)
		if ref.Type == "ca_certificates" {
			for _, other := range d.Entities[ref.Type] {
				add(ref.Type, other) // the digest is computed while validating
			}
		}
		for _, f := range unique[ref.Type] {
			if v, ok := e[f].(string); ok {
				for _, other := range byValue[ref.Type+"\x00"+f+"\x00"+v] {
					add(ref.Type, other)
				}
			}
		}
	}
	// Every vault: a reference in any entity put resolves through them.
	for _, e := range d.Entities["vaults"] {
		add("vaults", e)
	}
	if len(d.Removed) > 0 {
		removed := map[EntityRef]bool{}
		for _, r := range d.Removed {
			removed[r] = true
		}
		for typ, list := range d.Entities {
			for _, e := range list {
				if slices.ContainsFunc(references(typ, e), func(r EntityRef) bool { return removed[r] }) {
					add(typ, e)
				}
			}
		}
	}
	doc := map[string]any{"_format_version": "3.0"}
	for typ, list := range d.Entities {
		var keep []map[string]any
		for _, e := range list {
			if id, _ := e["id"].(string); in[EntityRef{typ, id}] {
				keep = append(keep, e)
			}
		}
		if len(keep) > 0 {
			doc[typ] = keep
		}
	}
	return json.Marshal(doc)
}

// references are the entities e (of type typ) names through its foreign
// keys and sets of ids, as written (an id, or an endpoint key).
func references(typ string, e map[string]any) []EntityRef {
	var out []EntityRef
	for _, fk := range append(slices.Clone(foreignKeys[typ]), setReferences[typ]...) {
		switch v := e[fk.field].(type) {
		case string:
			out = append(out, EntityRef{fk.ref, v})
		case map[string]any: // {"id": ...} as Kong's flat form may give
			if id, ok := v["id"].(string); ok {
				out = append(out, EntityRef{fk.ref, id})
			}
		case []any:
			for _, x := range v {
				if x, ok := x.(string); ok {
					out = append(out, EntityRef{fk.ref, x})
				}
			}
		}
	}
	return out
}

// Clone is a copy of d to edit, with nothing put or removed yet. Its
// lists are copied; the entities are shared, since an edit replaces an
// entity (Set) rather than changing it.
func (d *Document) Clone() *Document {
	c := &Document{Entities: make(map[string][]map[string]any, len(d.Entities))}
	for typ, list := range d.Entities {
		c.Entities[typ] = slices.Clone(list)
	}
	return c
}
