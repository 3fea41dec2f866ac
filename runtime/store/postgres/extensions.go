package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// gong's entity fields that Kong's schema has no column for (the tables'
// extensions, and health checks' active send, expect and type udp) live
// in a table of gong's own, one row per entity that sets any, so that
// Kong's tables and columns stay exactly Kong's: Kong's nodes never read
// it. Rows go with their entity when gong deletes it; a row whose entity
// Kong deleted is never read (rows are looked up by the entities read).
const extensionsSQL = `CREATE TABLE IF NOT EXISTS gong_entity_extensions (
    entity_name text NOT NULL,
    entity_id uuid NOT NULL,
    ws_id uuid,
    fields jsonb NOT NULL,
    PRIMARY KEY (entity_name, entity_id)
)`

// GongMigrations are gong's own migrations, recorded in schema_meta under
// the subsystem "gong", which Kong's migrations ignore.
var GongMigrations = []string{"000_gong_entity_extensions"}

// hasExtensions reports whether the database has gong's table (a database
// Kong bootstrapped lacks it until "gong migrations up").
func hasExtensions(ctx context.Context, q rowQuerier) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, "SELECT to_regclass('gong_entity_extensions') IS NOT NULL").Scan(&ok)
	return ok, err
}

// createExtensions creates gong's table and records its migration, in tx.
func createExtensions(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, extensionsSQL); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO schema_meta (key, subsystem, last_executed, executed)
		VALUES ('schema_meta', 'gong', $1, $2) ON CONFLICT (key, subsystem) DO NOTHING`, GongMigrations[len(GongMigrations)-1], GongMigrations)
	return err
}

// UpExtensions creates gong's table when the database lacks it (one
// bootstrapped by Kong); created is false when it was there.
func (s *Store) UpExtensions(ctx context.Context) (created bool, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationsLock); err != nil {
			return err
		}
		ok, err := hasExtensions(ctx, tx)
		if err != nil || ok {
			return err
		}
		created = true
		return createExtensions(ctx, tx)
	})
	if err != nil {
		return false, fmt.Errorf("[postgres error] %s", describe(err))
	}
	return created, nil
}

// readExtensions returns the extension fields of a workspace's entities
// by type and id; nil without gong's table.
func readExtensions(ctx context.Context, q querier, ws string) (map[string]map[string]map[string]any, error) {
	ok, err := hasExtensions(ctx, q)
	if err != nil || !ok {
		return nil, err
	}
	rows, err := q.Query(ctx, "SELECT entity_name, entity_id::text, fields FROM gong_entity_extensions WHERE ws_id = $1 OR ws_id IS NULL", ws)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]map[string]map[string]any{}
	for rows.Next() {
		var name, id string
		var fields map[string]any
		if err := rows.Scan(&name, &id, &fields); err != nil {
			return nil, err
		}
		if out[name] == nil {
			out[name] = map[string]map[string]any{}
		}
		out[name][id] = fields
	}
	return out, rows.Err()
}

// splitExtensions takes gong's fields out of a validated entity of t and
// returns them (nil when none is set: a zero number is unset). An active
// health check of type udp stays in Kong's column as tcp, the nearest
// type Kong knows.
func splitExtensions(t table, e map[string]any) map[string]any {
	ext := map[string]any{}
	for _, f := range t.extensions {
		switch v := e[f].(type) {
		case nil:
		case float64:
			if v != 0 {
				ext[f] = v
			}
		default:
			ext[f] = v
		}
		delete(e, f)
	}
	if t.name == "upstreams" {
		if hc, ok := e["healthchecks"].(map[string]any); ok {
			if active, ok := hc["active"].(map[string]any); ok {
				gongActive := map[string]any{}
				for _, f := range []string{"send", "expect"} {
					if active[f] != nil {
						gongActive[f] = active[f]
					}
					delete(active, f)
				}
				if active["type"] == "udp" {
					gongActive["type"] = "udp"
					active["type"] = "tcp"
				}
				if len(gongActive) > 0 {
					ext["healthchecks"] = map[string]any{"active": gongActive}
				}
			}
		}
	}
	if len(ext) == 0 {
		return nil
	}
	return ext
}

// mergeExtensions lays fields read from gong's table over an entity,
// objects field by field.
func mergeExtensions(e, ext map[string]any) {
	for k, v := range ext {
		sub, isObj := v.(map[string]any)
		into, hasObj := e[k].(map[string]any)
		if isObj && hasObj {
			mergeExtensions(into, sub)
			continue
		}
		e[k] = v
	}
}

// queueExtensions queues the write of an entity's extension fields: the
// row replaced, or deleted when ext is nil.
func queueExtensions(batch *pgx.Batch, typ, id, ws string, ext map[string]any) error {
	if ext == nil {
		batch.Queue("DELETE FROM gong_entity_extensions WHERE entity_name = $1 AND entity_id = $2", typ, id)
		return nil
	}
	data, err := json.Marshal(ext)
	if err != nil {
		return err
	}
	var wsID any
	if ws != "" {
		wsID = ws
	}
	batch.Queue(`INSERT INTO gong_entity_extensions (entity_name, entity_id, ws_id, fields) VALUES ($1, $2, $3, $4::jsonb)
		ON CONFLICT (entity_name, entity_id) DO UPDATE SET ws_id = EXCLUDED.ws_id, fields = EXCLUDED.fields`, typ, id, wsID, data)
	return nil
}
