package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/vault"
)

// Document reads every entity gong serves into a declarative
// configuration document (JSON, format 3.0, entities flat with foreign
// keys by id), the text a kong.yml with the same entities would be.
// Plugins whose name is not in plugins, and then vaults gong does not
// have (Kong's cloud vaults), are left out (nil keeps all), so a database
// shared with Kong's HTTP nodes loads. Reads go to the replica
// when one is configured.
func (s *Store) Document(ctx context.Context, plugins []string) ([]byte, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	var doc map[string]any
	// One read-only snapshot: a write between two tables' reads cannot
	// leave a route without its service.
	err = pgx.BeginTxFunc(ctx, s.read, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		ws, err := defaultWorkspace(ctx, tx)
		if err != nil {
			return err
		}
		doc, err = readDocument(ctx, tx, ws, plugins)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("[postgres error] %s", describe(err))
	}
	return json.Marshal(doc)
}

// readDocument reads the tables of the default workspace (ws).
func readDocument(ctx context.Context, tx querier, ws string, plugins []string) (map[string]any, error) {
	doc := map[string]any{"_format_version": "3.0"}
	for _, t := range tables {
		rows, err := readTable(ctx, tx, t, ws)
		if err != nil {
			return nil, err
		}
		if t.name == "plugins" && plugins != nil {
			rows = slices.DeleteFunc(rows, func(r map[string]any) bool {
				name, _ := r["name"].(string)
				return !slices.Contains(plugins, name)
			})
		}
		if t.name == "vaults" && plugins != nil {
			// Kong's cloud vaults (aws, hcv, ...) are not gong's: their
			// references fail to resolve, naming the reference.
			rows = slices.DeleteFunc(rows, func(r map[string]any) bool {
				name, _ := r["name"].(string)
				return !slices.Contains(vault.Bundled, name)
			})
		}
		if len(rows) > 0 {
			doc[t.name] = rows
		}
	}
	return doc, nil
}

// Load reads the entities into a validated snapshot, through the same
// schema code as a kong.yml.
func (s *Store) Load(ctx context.Context, opts declarative.Options) (*declarative.Config, error) {
	doc, err := s.Document(ctx, opts.Plugins)
	if err != nil {
		return nil, err
	}
	return declarative.Parse(doc, "", opts)
}

// defaultWorkspace is the id of the workspace gong serves.
func defaultWorkspace(ctx context.Context, q rowQuerier) (string, error) {
	var id string
	err := q.QueryRow(ctx, "SELECT id::text FROM workspaces WHERE name = 'default'").Scan(&id)
	if err != nil {
		return "", fmt.Errorf("reading the default workspace: %w", err)
	}
	return id, nil
}

// readTable reads a table's rows as declarative entities, oldest first.
func readTable(ctx context.Context, q querier, t table, ws string) ([]map[string]any, error) {
	return readRows(ctx, q, t, ws, "", nil)
}

// readRows reads the rows of a table whose column (id, upstream_id...)
// is one of values, or every row when column is "", as declarative
// entities, oldest first.
func readRows(ctx context.Context, q querier, t table, ws, column string, values []string) ([]map[string]any, error) {
	sql := "SELECT to_jsonb(e), extract(epoch FROM e.created_at)::float8, extract(epoch FROM e.updated_at)::float8 FROM " +
		t.sql() + " e WHERE true"
	var args []any
	if t.workspaced {
		args = append(args, ws)
		sql += " AND e.ws_id = $1"
	}
	if column != "" {
		args = append(args, values)
		sql += fmt.Sprintf(" AND e.%s = ANY($%d::uuid[])", pgx.Identifier{column}.Sanitize(), len(args))
	}
	sql += " ORDER BY e.created_at, e.id"
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for rows.Next() {
		var rec map[string]any
		var created, updated *float64
		if err := rows.Scan(&rec, &created, &updated); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, entityFromRow(t, rec, created, updated))
	}
	if err := rows.Err(); err != nil || len(t.extensions) == 0 || len(out) == 0 {
		return out, err
	}
	// gong's extension fields, from its own table.
	ext, err := readExtensions(ctx, q, ws)
	if err != nil {
		return nil, err
	}
	for _, r := range out {
		if id, _ := r["id"].(string); ext[t.name][id] != nil {
			mergeExtensions(r, ext[t.name][id])
		}
	}
	return out, nil
}

// entityFromRow turns a row into the entity kong.yml would declare:
// foreign key columns become fields, timestamps Unix seconds, and the
// columns only the database has (ws_id, cache_key) and nulls go.
func entityFromRow(t table, rec map[string]any, created, updated *float64) map[string]any {
	delete(rec, "ws_id")
	delete(rec, "cache_key")
	for field, col := range t.foreign {
		if v, ok := rec[col]; ok {
			rec[field] = v
			delete(rec, col)
		}
	}
	stamp := func(v *float64) any {
		if v == nil {
			return nil
		}
		if t.millis {
			return math.Round(*v*1000) / 1000
		}
		return math.Floor(*v)
	}
	rec["created_at"], rec["updated_at"] = stamp(created), stamp(updated)
	for k, v := range rec {
		if v == nil {
			delete(rec, k)
		}
	}
	return rec
}

// ExportYAML is every entity gong serves as a kong.yml (format 3.0,
// _transform false, entities flat with foreign keys by id), as "kong
// config db_export" writes it.
func (s *Store) ExportYAML(ctx context.Context) ([]byte, error) {
	doc, err := s.Document(ctx, nil)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, err
	}
	m["_transform"] = false
	return yaml.Marshal(wholeNumbers(m))
}

// wholeNumbers turns JSON numbers without a fraction into integers, so
// YAML writes 1765000000 rather than 1.765e+09.
func wholeNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = wholeNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = wholeNumbers(e)
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
	}
	return v
}
