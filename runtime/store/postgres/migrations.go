package postgres

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// schemaSQL creates Kong 3.10's core schema in an empty database schema.
//
//go:embed schema.sql
var schemaSQL string

// CoreMigrations are the names of Kong 3.10's core migrations, in order
// (kong/db/migrations/core/init.lua). schema.sql is the state they leave;
// Bootstrap records them all as executed.
var CoreMigrations = []string{
	"000_base", "003_100_to_110", "004_110_to_120", "005_120_to_130", "006_130_to_140",
	"007_140_to_150", "008_150_to_200", "009_200_to_210", "010_210_to_211", "011_212_to_213",
	"012_213_to_220", "013_220_to_230", "014_230_to_270", "015_270_to_280", "016_280_to_300",
	"017_300_to_310", "018_310_to_320", "019_320_to_330", "020_330_to_340", "021_340_to_350",
	"022_350_to_360", "023_360_to_370", "024_380_to_390", "025_390_to_3100",
}

// NeedsBootstrapMsg is Kong's message for a database without schema_meta.
const NeedsBootstrapMsg = "Database needs bootstrapping or is older than Kong 1.0.\n\n" +
	"To start a new installation from scratch, run 'gong migrations bootstrap'.\n\n" +
	"To migrate from a version older than 1.0, migrated to Kong 1.5.0 first. \n" +
	"If you still have 'apis' entities, you can convert them to Routes and Services\n" +
	"using the 'kong migrations migrate-apis' command in Kong 1.5.0.\n\n"

// ErrNewMigrations is what Check returns for a core older than Kong 3.10.
var ErrNewMigrations = errors.New("New migrations available; run 'gong migrations up' to proceed")

// Subsystem is one subsystem's migration names: "core", or a plugin's
// (by plugin name), as Kong's schema_meta keys them.
type Subsystem struct {
	Name       string
	Migrations []string
}

// namespace is the Lua module path Kong gives the subsystem's migrations.
func (s Subsystem) namespace() string {
	if s.Name == "core" {
		return "kong.db.migrations.core"
	}
	return "kong.plugins." + s.Name + ".migrations"
}

// State is the migration state of the core and of the enabled plugins
// that have migrations, as Kong's schema_state has it. Rows of other
// subsystems (plugins gong does not enable) are left alone.
type State struct {
	NeedsBootstrap bool
	// Executed, Pending, Missing and New are migration names by subsystem
	// (core first, then plugins by name): run, run up but not finished,
	// skipped before the last one executed, and not run yet.
	Executed, Pending, Missing, New []Subsystem
}

// CoreNew are the core's migrations not run yet.
func (st *State) CoreNew() []string { return namesOf(st.New, "core") }

// CorePending are the core's migrations run up but not finished.
func (st *State) CorePending() []string { return namesOf(st.Pending, "core") }

func namesOf(list []Subsystem, name string) []string {
	for _, s := range list {
		if s.Name == name {
			return s.Migrations
		}
	}
	return nil
}

// migrationList is one subsystem's migrations in Kong's status JSON.
type migrationList struct {
	Subsystem  string   `json:"subsystem"`
	Namespace  string   `json:"namespace"`
	Migrations []string `json:"migrations"`
}

// StatusJSON is the object "migrations status" prints, in Kong's shape:
// only the non-empty lists appear.
func (st *State) StatusJSON() map[string]any {
	out := map[string]any{"needs_bootstrap": st.NeedsBootstrap}
	for key, list := range map[string][]Subsystem{"executed_migrations": st.Executed, "pending_migrations": st.Pending,
		"missing_migrations": st.Missing, "new_migrations": st.New} {
		if len(list) > 0 {
			var ms []migrationList
			for _, s := range list {
				ms = append(ms, migrationList{Subsystem: s.Name, Namespace: s.namespace(), Migrations: s.Migrations})
			}
			out[key] = ms
		}
	}
	return out
}

// FormatList renders subsystems as Kong's CLI lists them: one line each,
// the names right-aligned.
func FormatList(list []Subsystem) string {
	width := 0
	for _, s := range list {
		width = max(width, len(s.Name))
	}
	lines := make([]string, len(list))
	for i, s := range list {
		lines[i] = fmt.Sprintf("%*s: %s", width, s.Name, strings.Join(s.Migrations, ", "))
	}
	return strings.Join(lines, "\n")
}

// State reads the migration state from schema_meta; plugins are the
// enabled ones (kong.conf's plugins).
func (s *Store) State(ctx context.Context, plugins []string) (*State, error) {
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	return readState(ctx, s.write, plugins)
}

// rowQuerier is what both a pool and a transaction offer.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// querier is a pool or a transaction, for reads of many rows.
type querier interface {
	rowQuerier
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func readState(ctx context.Context, q rowQuerier, plugins []string) (*State, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('schema_meta') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("[postgres error] failed to check schema state: %s", describe(err))
	}
	if !exists {
		return &State{NeedsBootstrap: true}, nil
	}
	st := &State{}
	for _, sub := range append([]Subsystem{{"core", CoreMigrations}}, enabledSubsystems(plugins)...) {
		var last *string
		var executed, pending []string
		err := q.QueryRow(ctx, "SELECT last_executed, executed, pending FROM schema_meta WHERE key = 'schema_meta' AND subsystem = $1", sub.Name).
			Scan(&last, &executed, &pending)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("[postgres error] failed to check schema state: %s", describe(err))
		}
		var ex, pe, mi, ne []string
		after := last == nil // migrations after the last executed one are new, earlier ones missing
		for _, m := range sub.Migrations {
			switch {
			case slices.Contains(executed, m):
				ex = append(ex, m)
			case slices.Contains(pending, m):
				pe = append(pe, m)
			case after:
				ne = append(ne, m)
			default:
				mi = append(mi, m)
			}
			if last != nil && m == *last {
				after = true
			}
		}
		add := func(list *[]Subsystem, names []string) {
			if len(names) > 0 {
				*list = append(*list, Subsystem{sub.Name, names})
			}
		}
		add(&st.Executed, ex)
		add(&st.Pending, pe)
		add(&st.Missing, mi)
		add(&st.New, ne)
	}
	return st, nil
}

// enabledSubsystems are the subsystems of the enabled plugins that have
// migrations, by name.
func enabledSubsystems(plugins []string) []Subsystem {
	var out []Subsystem
	for _, name := range pluginsWithSchemas(plugins) {
		out = append(out, Subsystem{name, pluginSchemas[name].migrations})
	}
	return out
}

// migrationsLock serialises schema changes between nodes, as Kong's
// "migrations" cluster mutex does.
const migrationsLock = 0x676f6e67 // "gong"

// Bootstrap creates the schema in a database that needs it, with the
// tables of the enabled plugins that have migrations, in one transaction;
// ok is false, and nothing is changed, when it is already bootstrapped.
func (s *Store) Bootstrap(ctx context.Context, plugins []string) (ok bool, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationsLock); err != nil {
			return err
		}
		st, err := readState(ctx, tx, nil)
		if err != nil || !st.NeedsBootstrap {
			return err
		}
		if _, err := tx.Exec(ctx, schemaSQL); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO schema_meta (key, subsystem, last_executed, executed)
			VALUES ('schema_meta', 'core', $1, $2)`, CoreMigrations[len(CoreMigrations)-1], CoreMigrations)
		if err != nil {
			return err
		}
		err = createExtensions(ctx, tx)
		if err == nil {
			err = runPluginMigrations(ctx, tx, pluginsWithSchemas(plugins))
		}
		ok = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("[postgres error] %s", describe(err))
	}
	return ok, nil
}

// Up runs the new and pending migrations of the enabled plugins, in one
// transaction, and returns the subsystems it ran. The core cannot be upgraded here
// (see ErrNewMigrations); the caller refuses a core with new migrations.
func (s *Store) Up(ctx context.Context, plugins []string) (ran []Subsystem, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationsLock); err != nil {
			return err
		}
		st, err := readState(ctx, tx, plugins)
		if err != nil {
			return err
		}
		var names []string
		for _, sub := range append(st.New, st.Pending...) {
			if sub.Name != "core" && !slices.Contains(names, sub.Name) {
				names = append(names, sub.Name)
				ran = append(ran, sub)
			}
		}
		return runPluginMigrations(ctx, tx, names)
	})
	if err != nil {
		return nil, fmt.Errorf("[postgres error] %s", describe(err))
	}
	return ran, nil
}

// Reset drops every table and function of the schema: Kong's and
// anything else in it, as "kong migrations reset" does.
func (s *Store) Reset(ctx context.Context) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationsLock); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DO $$
DECLARE t record;
BEGIN
  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP
    EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', t.tablename);
  END LOOP;
  DROP FUNCTION IF EXISTS sync_tags() CASCADE;
  DROP FUNCTION IF EXISTS batch_delete_expired_rows() CASCADE;
END $$`)
		return err
	})
	if err != nil {
		return fmt.Errorf("[postgres error] %s", describe(err))
	}
	return nil
}

// Check is what start requires of the schema: bootstrapped, with no
// new migrations for the core or the enabled plugins; the errors are
// Kong's.
func (s *Store) Check(ctx context.Context, plugins []string) error {
	st, err := s.State(ctx, plugins)
	if err != nil {
		return err
	}
	if st.NeedsBootstrap {
		return errors.New(NeedsBootstrapMsg)
	}
	if len(st.New) > 0 {
		return ErrNewMigrations
	}
	return nil
}
