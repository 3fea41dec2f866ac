package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/gong-proxy/gong/runtime/declarative"
)

// writersLock makes writers one at a time across nodes: each validates
// the whole result of its change, which another writer must not change
// meanwhile.
const writersLock = 0x676f6e68

// Modify changes entities in one transaction. edit gets the entities as
// they are (plugins opts does not enable left out) and changes them
// through the Document's Set and Remove; the result is validated with
// opts, as a kong.yml is (declarative.Patch: the entities changed with
// their neighbourhood); the rows of the entities edit changed are
// written, with the cluster_events rows that tell every node and a
// NOTIFY on NotifyChannel; and the transaction commits. When the result
// is invalid, or edit fails, nothing is written and the error (a
// *declarative.Error for an invalid result) is returned. It returns the
// whole validated result, which Config returns from then on.
//
// The entities come from the node's mirror, brought up to date in the
// transaction first: other nodes' events committed before the writers'
// lock are applied, so no other write is missed.
func (s *Store) Modify(ctx context.Context, opts declarative.Options, edit func(*declarative.Document) error) (*declarative.Config, error) {
	m := s.mirror
	m.mu.Lock()
	defer m.mu.Unlock()
	var cfg *declarative.Config
	var written *declarative.Document
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := s.lockWriters(ctx, tx); err != nil {
			return err
		}
		if m.doc != nil && !m.stale {
			if _, err := s.poll(ctx, tx); err != nil {
				return err
			}
		}
		if err := s.catchUp(ctx, tx, opts); err != nil {
			return err
		}
		d := m.doc.Clone()
		if err := edit(d); err != nil {
			return err
		}
		var err error
		if cfg, err = declarative.Patch(m.cfg, d, opts); err != nil {
			return err
		}
		events, err := s.writeChanges(ctx, tx, m.ws, cfg, d)
		if err != nil {
			return err
		}
		// The rows as they were written, as another node reads them.
		written = m.doc.Clone()
		put := map[string][]string{}
		for _, r := range d.Put {
			if !slices.Contains(put[r.Type], r.ID) {
				put[r.Type] = append(put[r.Type], r.ID)
			}
		}
		for _, t := range tables {
			if len(put[t.name]) > 0 {
				rows, err := readRows(ctx, tx, t, m.ws, "id", put[t.name])
				if err != nil {
					return err
				}
				m.replace(written, t.name, put[t.name], rows, opts.Plugins, "")
			}
		}
		for _, r := range d.Removed {
			written.Remove(r.Type, r.ID)
		}
		// The events last: their time is taken at the insert, and a poll
		// looks only a second further back than its previous one.
		return tx.SendBatch(ctx, events).Close()
	})
	if err != nil {
		return nil, err
	}
	if m.patch(written, opts) == nil {
		cfg = m.cfg
	}
	return cfg, nil
}

// lockWriters waits for the other writers (writersLock) for at most
// pg_semaphore_timeout, as a query waits for its turn, rather than
// pg_timeout, which bounds each statement: under many concurrent writes
// the wait is the sum of theirs, and a write that waited its turn must
// not fail for it.
func (s *Store) lockWriters(ctx context.Context, tx pgx.Tx) error {
	wait := s.db.Postgres.SemaphoreTimeout
	if wait <= 0 {
		wait = time.Minute
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", wait.Milliseconds())); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", writersLock); err != nil {
		return fmt.Errorf("waiting for the other writers (pg_semaphore_timeout): %w", err)
	}
	_, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", timeoutOr(s.db.Postgres.Timeout).Milliseconds()))
	return err
}

// maxEntityEvents is the most changes a write announces one by one;
// a larger one (an import) announces one change per entity type.
const maxEntityEvents = 100

// writeChanges writes the rows of the entities doc changed, as validated
// in cfg, in one batch, and returns the batch of their cluster events and
// the NOTIFY, for the caller to send last.
func (s *Store) writeChanges(ctx context.Context, tx pgx.Tx, ws string, cfg *declarative.Config, doc *declarative.Document) (*pgx.Batch, error) {
	withExtensions, err := hasExtensions(ctx, tx)
	if err != nil {
		return nil, err
	}
	batch, events := &pgx.Batch{}, &pgx.Batch{}
	perEntity := len(doc.Removed)+len(doc.Put) <= maxEntityEvents
	changed := map[string]bool{}
	for _, ref := range doc.Removed {
		t, _ := tableNamed(ref.Type)
		batch.Queue("DELETE FROM "+t.sql()+" WHERE id = $1", ref.ID)
		if withExtensions && len(t.extensions) > 0 {
			queueExtensions(batch, t.name, ref.ID, ws, nil)
		}
		if perEntity {
			s.queueEvents(events, ws, t, ref.ID, nil)
		}
		changed[t.name] = true
	}
	// Parents first, so foreign keys hold at every insert.
	put := slices.Clone(doc.Put)
	slices.SortStableFunc(put, func(a, b declarative.EntityRef) int {
		return slices.IndexFunc(tables, func(t table) bool { return t.name == a.Type }) -
			slices.IndexFunc(tables, func(t table) bool { return t.name == b.Type })
	})
	validated := validatedEntities(cfg, put)
	for _, ref := range put {
		t, _ := tableNamed(ref.Type)
		e := validated[ref]
		if e == nil {
			continue // removed again by a later edit
		}
		row, ext, err := rowFromEntity(t, e, ws)
		if err != nil {
			return nil, err
		}
		if err := queueUpsert(batch, t, row); err != nil {
			return nil, err
		}
		if ext != nil && !withExtensions {
			return nil, &ExtensionError{t.name, extensionName(ext)}
		}
		if withExtensions && len(t.extensions) > 0 {
			if err := queueExtensions(batch, t.name, ref.ID, ws, ext); err != nil {
				return nil, err
			}
		}
		if perEntity {
			s.queueEvents(events, ws, t, ref.ID, row)
		}
		changed[t.name] = true
	}
	if !perEntity {
		for _, t := range tables {
			if changed[t.name] {
				s.queueEvents(events, ws, t, "", nil)
			}
		}
	}
	if len(changed) > 0 {
		events.Queue("SELECT pg_notify($1, $2)", NotifyChannel, s.nodeID)
	}
	return events, tx.SendBatch(ctx, batch).Close()
}

// validatedEntities are the entities of refs as validated in cfg, as JSON
// values; an entity put then removed again is missing.
func validatedEntities(cfg *declarative.Config, refs []declarative.EntityRef) map[declarative.EntityRef]map[string]any {
	perType := map[string]int{}
	for _, r := range refs {
		perType[r.Type]++
	}
	out := map[declarative.EntityRef]map[string]any{}
	for typ, n := range perType {
		if n <= maxEntityEvents { // a few: find them one by one
			for _, r := range refs {
				if r.Type == typ {
					if e := cfg.Entity(typ, r.ID); e != nil {
						out[r] = e
					}
				}
			}
			continue
		}
		for _, e := range cfg.Entities(typ) { // many: convert the list once
			id, _ := e["id"].(string)
			out[declarative.EntityRef{Type: typ, ID: id}] = e
		}
	}
	return out
}

// ExtensionError is a gong extension field set on an entity written to a
// database without gong's table for them (one Kong bootstrapped, before
// "gong migrations up").
type ExtensionError struct{ Type, Field string }

func (e *ExtensionError) Error() string {
	return fmt.Sprintf("%s.%s is a gong extension: storing it needs gong's table gong_entity_extensions, which this database lacks; run 'gong migrations up'", e.Type, e.Field)
}

// extensionName names one of the fields in ext, for ExtensionError.
func extensionName(ext map[string]any) string {
	for k, v := range ext {
		if sub, ok := v.(map[string]any); ok {
			return k + "." + extensionName(sub)
		}
		return k
	}
	return ""
}

// rowFromEntity is the row of a validated entity (the inverse of
// entityFromRow) and gong's extension fields it sets, which have no
// column (nil when none is set).
func rowFromEntity(t table, e map[string]any, ws string) (map[string]any, map[string]any, error) {
	ext := splitExtensions(t, e)
	for field, col := range t.foreign {
		e[col] = e[field]
		delete(e, field)
	}
	for _, f := range []string{"created_at", "updated_at"} {
		if v, ok := e[f].(float64); ok {
			e[f] = time.UnixMilli(int64(v * 1000)).UTC().Format(time.RFC3339Nano)
		}
	}
	if t.workspaced {
		e["ws_id"] = ws
	}
	if t.cacheKey != nil {
		// Kong's cache_key: the type, five key parts and the workspace.
		parts := []string{t.name}
		for _, f := range t.cacheKey {
			v := e[f]
			if col, ok := t.foreign[f]; ok {
				v = e[col]
			}
			s, _ := v.(string)
			parts = append(parts, s)
		}
		for len(parts) < 6 {
			parts = append(parts, "")
		}
		e["cache_key"] = strings.Join(append(parts, ws), ":")
	}
	return e, ext, nil
}

// queueUpsert queues a row's write: inserted, or updated in place when
// its id exists (an update keeps the rows that reference it).
func queueUpsert(batch *pgx.Batch, t table, row map[string]any) error {
	cols := make([]string, 0, len(row))
	for c := range row {
		cols = append(cols, pgx.Identifier{c}.Sanitize())
	}
	slices.Sort(cols)
	name := t.sql()
	list := strings.Join(cols, ", ")
	excluded := make([]string, len(cols))
	for i, c := range cols {
		excluded[i] = "EXCLUDED." + c
	}
	data, err := json.Marshal(row)
	if err != nil {
		return err
	}
	batch.Queue("INSERT INTO "+name+" ("+list+") SELECT "+list+" FROM jsonb_populate_record(NULL::"+name+", $1::jsonb)"+
		" ON CONFLICT (id) DO UPDATE SET ("+list+") = ROW("+strings.Join(excluded, ", ")+")", data)
	return nil
}

// eventTTL is how long a cluster event stays in the table: Kong's
// max(db_update_propagation * 10, one hour).
func (s *Store) eventTTL() time.Duration {
	return max(10*s.db.UpdatePropagation, time.Hour)
}

// queueEvents queues the cluster events Kong's nodes expect for a
// changed entity (id "" for changes to many of a type): the invalidation
// of its cache key, and of the router, plugins iterator or balancer state
// it feeds. row is the entity's row when it was written. gong's nodes
// read again the entity a key names (mirror.changedRows).
func (s *Store) queueEvents(batch *pgx.Batch, ws string, t table, id string, row map[string]any) {
	type event struct{ channel, data string }
	var events []event
	if id != "" {
		wsPart := ""
		if t.workspaced {
			wsPart = ws
		}
		key := id
		if prefix, ok := row["prefix"].(string); ok && t.name == "vaults" {
			key = prefix // Kong's vaults cache key is the prefix
		}
		events = append(events, event{InvalidationsChannel, t.name + ":" + key + ":::::" + wsPart})
	}
	switch t.name {
	case "services", "routes":
		events = append(events, event{InvalidationsChannel, "router:version"})
	case "plugins":
		events = append(events, event{InvalidationsChannel, "plugins_iterator:version"})
	case "upstreams":
		events = append(events, event{"balancer:upstreams", "update:" + ws + ":" + id + ":"})
	case "targets":
		upstream, _ := row["upstream_id"].(string)
		events = append(events, event{"balancer:targets", "update:" + upstream})
	}
	if id == "" {
		// A change to many entities of the type: gong's nodes read
		// everything again on this key, which names no entity.
		events = append(events, event{InvalidationsChannel, t.name})
	}
	for _, ev := range events {
		batch.Queue(insertEvent, uuid.NewString(), s.nodeID, s.eventTTL().Seconds(), ev.channel, ev.data)
	}
}

// insertEvent writes one cluster event as Kong's nodes do: stamped with
// the database's UTC time, expiring after $3 seconds.
const insertEvent = `INSERT INTO cluster_events (id, node_id, at, nbf, expire_at, channel, data)
	VALUES ($1, $2, clock_timestamp() AT TIME ZONE 'UTC', NULL, clock_timestamp() AT TIME ZONE 'UTC' + make_interval(secs => $3), $4, $5)`

// Broadcast tells every other node something that changes no entity (a
// health mark on HealthChannel), as Kong's cluster_events:broadcast.
func (s *Store) Broadcast(ctx context.Context, channel, data string) error {
	release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	batch := &pgx.Batch{}
	batch.Queue(insertEvent, uuid.NewString(), s.nodeID, s.eventTTL().Seconds(), channel, data)
	batch.Queue("SELECT pg_notify($1, $2)", NotifyChannel, s.nodeID)
	return s.write.SendBatch(ctx, batch).Close()
}

// Import writes the entities of a validated declarative configuration,
// inserting new ones and replacing those with the same id, in one
// transaction, as "kong config db_import" does. Entities the file does not
// name are kept.
func (s *Store) Import(ctx context.Context, opts declarative.Options, cfg *declarative.Config) error {
	file := cfg.Document()
	_, err := s.Modify(ctx, opts, func(d *declarative.Document) error {
		for _, typ := range declarative.Types() {
			for _, e := range file.Entities[typ] {
				d.Set(typ, e)
			}
		}
		return nil
	})
	return err
}
