package postgres

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/vault"
)

// mirror is a node's copy of the entities it serves, with their validated
// configuration, kept up to date change by change: other nodes' events
// name the entities they changed, and only those rows are read again and
// only their neighbourhood validated (declarative.Patch). Everything is
// read again when the copy is stale: at first use, after an outage, when
// a poll may have lost events, on an event whose key is not an entity's,
// or when the plugins enabled change.
type mirror struct {
	mu      sync.Mutex // guards everything below; held across a write
	doc     *declarative.Document
	cfg     *declarative.Config // doc validated
	hash    string
	plugins []string // the plugins doc was read with (opts.Plugins)
	ws      string   // the default workspace's id
	stale   bool
	pending []event  // other nodes' events not applied yet
	health  []string // other nodes' health marks not handed to Watch's OnHealth yet
	loads   int      // how many times everything was read

	// The polls' position in cluster_events (see Store.poll).
	since time.Time
	seen  map[string]time.Time // event id -> at, for events inside the lookback
}

// event is a row of cluster_events.
type event struct {
	id, channel, data string
	at                time.Time
}

// Config is the validated configuration of the entities in the database,
// brought up to date with the changes other nodes announced since the
// last call: the rows they name are read again and validated with their
// neighbourhood, the rest is kept. The hash changes with the
// configuration.
func (s *Store) Config(ctx context.Context, opts declarative.Options) (*declarative.Config, string, error) {
	m := s.mirror
	m.mu.Lock()
	defer m.mu.Unlock()
	err := s.inReadTx(ctx, func(tx pgx.Tx) error { return s.catchUp(ctx, tx, opts) })
	if err != nil {
		return nil, "", describeDB(err)
	}
	return m.cfg, m.hash, nil
}

// Hash is the hash Config would return now, without reading the
// database: it moves when a write or a catch-up changed the entities.
func (s *Store) Hash() string {
	s.mirror.mu.Lock()
	defer s.mirror.mu.Unlock()
	return s.mirror.hash
}

// Invalidate makes the next Config or write read every entity again.
func (s *Store) Invalidate() {
	s.mirror.mu.Lock()
	s.mirror.stale = true
	s.mirror.mu.Unlock()
}

// catchUp brings the mirror up to date in tx: everything read again when
// it is stale, else the pending events applied. m.mu is held.
func (s *Store) catchUp(ctx context.Context, tx pgx.Tx, opts declarative.Options) error {
	m := s.mirror
	if m.doc == nil || m.stale || !slices.Equal(m.plugins, opts.Plugins) {
		return s.loadAll(ctx, tx, opts)
	}
	if len(m.pending) == 0 {
		return nil
	}
	ids, upstreams, ok := m.changedRows()
	if !ok {
		return s.loadAll(ctx, tx, opts)
	}
	d := m.doc.Clone()
	for _, t := range tables {
		if len(ids[t.name]) > 0 {
			rows, err := readRows(ctx, tx, t, m.ws, "id", ids[t.name])
			if err != nil {
				return err
			}
			m.replace(d, t.name, ids[t.name], rows, opts.Plugins, "")
		}
	}
	for _, u := range upstreams {
		rows, err := readRows(ctx, tx, tables[slices.IndexFunc(tables, func(t table) bool { return t.name == "targets" })], m.ws, "upstream_id", []string{u})
		if err != nil {
			return err
		}
		var present []string
		for _, e := range d.Entities["targets"] {
			if e["upstream"] == u {
				present = append(present, e["id"].(string))
			}
		}
		m.replace(d, "targets", present, rows, nil, u)
	}
	return m.patch(d, opts)
}

// loadAll reads every entity in tx and validates them. m.mu is held.
func (s *Store) loadAll(ctx context.Context, tx pgx.Tx, opts declarative.Options) error {
	m := s.mirror
	now, err := serverTime(ctx, tx)
	if err != nil {
		return err
	}
	ws, err := defaultWorkspace(ctx, tx)
	if err != nil {
		return err
	}
	raw, err := readDocument(ctx, tx, ws, opts.Plugins)
	if err != nil {
		return err
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	cfg, err := declarative.Parse(data, "", opts)
	if err != nil {
		m.stale = true
		return err
	}
	d := &declarative.Document{Entities: map[string][]map[string]any{}}
	for typ, list := range raw {
		if list, ok := list.([]map[string]any); ok {
			d.Entities[typ] = list
		}
	}
	m.doc, m.cfg, m.hash, m.ws = d, cfg, fmt.Sprintf("%x", md5.Sum(data)), ws
	m.plugins, m.stale, m.pending = slices.Clone(opts.Plugins), false, nil
	m.loads++
	if m.since.IsZero() {
		m.since = now
	}
	return nil
}

// patch validates the edit d records against the mirror's configuration
// and makes it the mirror's. A failure leaves the mirror stale, so that
// the next use reads everything again.
func (m *mirror) patch(d *declarative.Document, opts declarative.Options) error {
	cfg, err := declarative.Patch(m.cfg, d, opts)
	if err != nil {
		m.stale = true
		return err
	}
	// The hash follows the changes: the previous one and what changed.
	h := md5.New()
	h.Write([]byte(m.hash))
	changed := map[declarative.EntityRef]bool{}
	for _, r := range append(slices.Clone(d.Put), d.Removed...) {
		changed[r] = true
		fmt.Fprintf(h, "%s %s\n", r.Type, r.ID)
	}
	for typ, list := range d.Entities {
		for _, e := range list {
			if id, _ := e["id"].(string); changed[declarative.EntityRef{Type: typ, ID: id}] {
				data, _ := json.Marshal(e)
				h.Write(data)
			}
		}
	}
	m.doc, m.cfg, m.hash, m.pending = d, cfg, fmt.Sprintf("%x", h.Sum(nil)), nil
	m.doc.Put, m.doc.Removed = nil, nil
	return nil
}

// replace puts the rows read again for the entities of a type named by
// ids into d, and removes those of ids no row came back for. Plugins not
// in plugins (nil: all) count as removed. upstream, for targets read by
// upstream, is the upstream they must belong to.
func (m *mirror) replace(d *declarative.Document, typ string, ids []string, rows []map[string]any, plugins []string, upstream string) {
	found := map[string]bool{}
	for _, r := range rows {
		if typ == "plugins" && plugins != nil && !slices.Contains(plugins, fmt.Sprint(r["name"])) {
			continue
		}
		if typ == "vaults" && plugins != nil && !slices.Contains(vault.Bundled, fmt.Sprint(r["name"])) {
			continue // as readDocument: Kong's cloud vaults are not gong's
		}
		id, _ := r["id"].(string)
		found[id] = true
		d.Set(typ, r)
	}
	for _, id := range ids {
		if !found[id] && slices.ContainsFunc(d.Entities[typ], func(e map[string]any) bool { return e["id"] == id }) {
			d.Remove(typ, id)
		}
	}
}

// changedRows reads the pending events: the ids of the entities they
// name, by type, and the upstreams whose targets changed. ok is false
// when an event is not understood: everything must be read again.
//
// gong's nodes write, for each changed entity, its invalidation key
// "<type>:<id>:::::<workspace>" (Kong's cache key of an entity by id),
// with router:version, plugins_iterator:version or balancer events beside
// it. Other keys (Kong's cache keys by other fields, type-wide events of
// large writes) cannot be mapped to rows.
func (m *mirror) changedRows() (ids map[string][]string, upstreams []string, ok bool) {
	ids = map[string][]string{}
	versions := false // router:version or plugins_iterator:version seen
	for _, ev := range m.pending {
		switch {
		case ev.channel == InvalidationsChannel && (ev.data == "router:version" || ev.data == "plugins_iterator:version"):
			versions = true
		case ev.channel == InvalidationsChannel:
			parts := strings.Split(ev.data, ":")
			t, known := tableNamed(parts[0])
			if !known || len(parts) != 7 || uuid.Validate(parts[1]) != nil || strings.Join(parts[2:6], "") != "" {
				return nil, nil, false
			}
			if ws := parts[6]; t.workspaced && ws != m.ws {
				continue // another workspace's entity: not served
			}
			if !slices.Contains(ids[t.name], parts[1]) {
				ids[t.name] = append(ids[t.name], parts[1])
			}
		case ev.channel == "balancer:upstreams":
			// "<op>:<workspace>:<upstream id>:<name>"
			parts := strings.Split(ev.data, ":")
			if len(parts) != 4 || uuid.Validate(parts[2]) != nil {
				return nil, nil, false
			}
			if parts[1] == m.ws && !slices.Contains(ids["upstreams"], parts[2]) {
				ids["upstreams"] = append(ids["upstreams"], parts[2])
			}
		case ev.channel == "balancer:targets":
			// "<op>:<upstream id>"
			parts := strings.Split(ev.data, ":")
			if len(parts) != 2 || uuid.Validate(parts[1]) != nil {
				return nil, nil, false
			}
			if !slices.Contains(upstreams, parts[1]) {
				upstreams = append(upstreams, parts[1])
			}
		default:
			return nil, nil, false
		}
	}
	if versions && len(ids) == 0 && len(upstreams) == 0 {
		return nil, nil, false // a version bump without the entities it is for
	}
	return ids, upstreams, true
}

// Snapshot is the mirror's entities as a declarative document (JSON), for
// the configuration cache a node starts from while its database is down;
// nil before the first Config.
func (s *Store) Snapshot() ([]byte, error) {
	m := s.mirror
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.doc == nil {
		return nil, nil
	}
	return m.doc.Marshal()
}
