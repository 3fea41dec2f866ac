package declarative

import (
	"encoding/json"
	"maps"
	"slices"
)

// Document is a declarative configuration before validation, with its
// entities flat (foreign keys as ids) by type, for sources that edit the
// entities one at a time (the database's Admin API writes). It records
// which entities an edit put or removed, so the source writes only those.
type Document struct {
	Entities map[string][]map[string]any
	// Put and Removed are the entities an edit changed.
	Put, Removed []EntityRef
	// positions indexes Entities by type and id for Set; nil until needed.
	positions map[EntityRef]int
}

// EntityRef names one entity.
type EntityRef struct{ Type, ID string }

// NewDocument decodes a flat document (JSON) as a source produces it.
func NewDocument(data []byte) (*Document, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	d := &Document{Entities: map[string][]map[string]any{}}
	for _, typ := range entityTypes {
		if r, ok := raw[typ]; ok {
			var list []map[string]any
			if err := json.Unmarshal(r, &list); err != nil {
				return nil, err
			}
			d.Entities[typ] = list
		}
	}
	return d, nil
}

// Types are the entity types a document holds, in Kong's load order.
func Types() []string { return slices.Clone(entityTypes) }

// EndpointKey is the unique field besides the id by which an entity type
// is referenced ("" when none).
func EndpointKey(typ string) string { return endpointKey[typ] }

// Find returns the entity of a type with that id, else with that
// endpoint key (a service's name...), or nil.
func (d *Document) Find(typ, key string) map[string]any {
	for _, e := range d.Entities[typ] {
		if e["id"] == key {
			return e
		}
	}
	if ek := endpointKey[typ]; ek != "" {
		for _, e := range d.Entities[typ] {
			if e[ek] == key {
				return e
			}
		}
	}
	return nil
}

// Set adds an entity, or replaces the one with the same id, and records
// it as put. The entity must have an id.
func (d *Document) Set(typ string, e map[string]any) {
	id, _ := e["id"].(string)
	ref := EntityRef{typ, id}
	if d.positions == nil {
		d.positions = map[EntityRef]int{}
		for t, list := range d.Entities {
			for i, x := range list {
				xid, _ := x["id"].(string)
				d.positions[EntityRef{t, xid}] = i
			}
		}
	}
	if i, ok := d.positions[ref]; ok {
		d.Entities[typ][i] = e
	} else {
		d.positions[ref] = len(d.Entities[typ])
		d.Entities[typ] = append(d.Entities[typ], e)
	}
	d.Put = append(d.Put, ref)
}

// Remove deletes an entity and, as the database's ON DELETE CASCADE
// does, the targets of a removed upstream and the plugins of a removed
// route, service or consumer. It records only the entity asked for: the
// database removes the rest.
func (d *Document) Remove(typ, id string) {
	d.drop(typ, id)
	d.Removed = append(d.Removed, EntityRef{typ, id})
}

func (d *Document) drop(typ, id string) {
	d.positions = nil // rebuilt by the next Set
	d.Entities[typ] = slices.DeleteFunc(d.Entities[typ], func(e map[string]any) bool { return e["id"] == id })
	cascades := map[string][]foreignKey{"upstreams": {{"upstream", "targets"}},
		"routes": {{"route", "plugins"}}, "services": {{"service", "plugins"}}, "consumers": {{"consumer", "plugins"}}}
	for _, c := range cascades[typ] {
		for _, e := range slices.Clone(d.Entities[c.ref]) {
			if e[c.field] == id {
				d.drop(c.ref, e["id"].(string))
			}
		}
	}
}

// Marshal is the document as a declarative configuration (format 3.0).
func (d *Document) Marshal() ([]byte, error) {
	doc := map[string]any{"_format_version": "3.0"}
	for typ, list := range d.Entities {
		if len(list) > 0 {
			doc[typ] = list
		}
	}
	return json.Marshal(doc)
}

// Entity returns the validated entity of a type with that id in cfg, as
// JSON values, or nil.
func (cfg *Config) Entity(typ, id string) map[string]any {
	switch typ {
	case "services":
		return entityJSON(cfg.Services, id, func(e *Service) string { return e.ID })
	case "routes":
		return entityJSON(cfg.Routes, id, func(e *Route) string { return e.ID })
	case "upstreams":
		return entityJSON(cfg.Upstreams, id, func(e *Upstream) string { return e.ID })
	case "targets":
		return entityJSON(cfg.Targets, id, func(e *Target) string { return e.ID })
	case "certificates":
		return entityJSON(cfg.Certificates, id, func(e *Certificate) string { return e.ID })
	case "snis":
		return entityJSON(cfg.SNIs, id, func(e *SNI) string { return e.ID })
	case "ca_certificates":
		return entityJSON(cfg.CACertificates, id, func(e *CACertificate) string { return e.ID })
	case "plugins":
		return entityJSON(cfg.Plugins, id, func(e *Plugin) string { return e.ID })
	case "consumers":
		return entityJSON(cfg.Consumers, id, func(e *Consumer) string { return e.ID })
	case "vaults":
		return entityJSON(cfg.Vaults, id, func(e *Vault) string { return e.ID })
	}
	return nil
}

func entityJSON[T any](list []*T, id string, idOf func(*T) string) map[string]any {
	for _, e := range list {
		if idOf(e) == id {
			data, _ := json.Marshal(e)
			var m map[string]any
			json.Unmarshal(data, &m)
			return m
		}
	}
	return nil
}

// Entities lists cfg's entities of a type as JSON objects, unset fields
// as nulls.
func (cfg *Config) Entities(typ string) []map[string]any {
	var list any
	switch typ {
	case "services":
		list = cfg.Services
	case "routes":
		list = cfg.Routes
	case "upstreams":
		list = cfg.Upstreams
	case "targets":
		list = cfg.Targets
	case "certificates":
		list = cfg.Certificates
	case "snis":
		list = cfg.SNIs
	case "ca_certificates":
		list = cfg.CACertificates
	case "plugins":
		list = cfg.Plugins
	case "consumers":
		list = cfg.Consumers
	case "vaults":
		list = cfg.Vaults
	}
	data, _ := json.Marshal(list)
	var items []map[string]any
	json.Unmarshal(data, &items)
	return items
}

// Document lists cfg's entities as a flat document.
func (cfg *Config) Document() *Document {
	d := &Document{Entities: map[string][]map[string]any{}}
	for _, typ := range entityTypes {
		items := cfg.Entities(typ)
		for _, e := range items {
			// Unset fields, some of which only exist with another
			// router flavor, stay unset.
			maps.DeleteFunc(e, func(_ string, v any) bool { return v == nil })
		}
		if len(items) > 0 {
			d.Entities[typ] = items
		}
	}
	return d
}
