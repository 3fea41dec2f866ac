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

// State is the core subsystem's migration state, as Kong's schema_state
// has it. Other subsystems' rows (Kong's plugins) are left alone.
type State struct {
	NeedsBootstrap bool
	// Executed, Pending, Missing and New are core migration names: run,
	// run up but not finished, skipped before the last one executed, and
	// not run yet.
	Executed, Pending, Missing, New []string
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
	for key, names := range map[string][]string{"executed_migrations": st.Executed, "pending_migrations": st.Pending,
		"missing_migrations": st.Missing, "new_migrations": st.New} {
		if len(names) > 0 {
			out[key] = []migrationList{{Subsystem: "core", Namespace: "kong.db.migrations.core", Migrations: names}}
		}
	}
	return out
}

// FormatList renders names as Kong's CLI lists a subsystem's migrations.
func FormatList(names []string) string { return "core: " + strings.Join(names, ", ") }

// State reads the migration state from schema_meta.
func (s *Store) State(ctx context.Context) (*State, error) {
	ctx, cancel := s.queryCtx(ctx)
	defer cancel()
	return readState(ctx, s.write)
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

func readState(ctx context.Context, q rowQuerier) (*State, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('schema_meta') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("[postgres error] failed to check schema state: %s", describe(err))
	}
	if !exists {
		return &State{NeedsBootstrap: true}, nil
	}
	var last *string
	var executed, pending []string
	err := q.QueryRow(ctx, "SELECT last_executed, executed, pending FROM schema_meta WHERE key = 'schema_meta' AND subsystem = 'core'").
		Scan(&last, &executed, &pending)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("[postgres error] failed to check schema state: %s", describe(err))
	}
	st := &State{}
	after := last == nil // migrations after the last executed one are new, earlier ones missing
	for _, m := range CoreMigrations {
		switch {
		case slices.Contains(executed, m):
			st.Executed = append(st.Executed, m)
		case slices.Contains(pending, m):
			st.Pending = append(st.Pending, m)
		case after:
			st.New = append(st.New, m)
		default:
			st.Missing = append(st.Missing, m)
		}
		if last != nil && m == *last {
			after = true
		}
	}
	return st, nil
}

// migrationsLock serialises schema changes between nodes, as Kong's
// "migrations" cluster mutex does.
const migrationsLock = 0x676f6e67 // "gong"

// Bootstrap creates the schema in a database that needs it, in one
// transaction; ok is false, and nothing is changed, when it is already
// bootstrapped.
func (s *Store) Bootstrap(ctx context.Context) (ok bool, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationsLock); err != nil {
			return err
		}
		st, err := readState(ctx, tx)
		if err != nil || !st.NeedsBootstrap {
			return err
		}
		if _, err := tx.Exec(ctx, schemaSQL); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO schema_meta (key, subsystem, last_executed, executed)
			VALUES ('schema_meta', 'core', $1, $2)`, CoreMigrations[len(CoreMigrations)-1], CoreMigrations)
		ok = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("[postgres error] %s", describe(err))
	}
	return ok, nil
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
// new migrations; the errors are Kong's.
func (s *Store) Check(ctx context.Context) error {
	st, err := s.State(ctx)
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
