package postgres

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5"
)

// pluginSchema is what a plugin adds to the database: Kong's migration
// names for it, in order, and the SQL that leaves the state they leave.
// The SQL is idempotent, so it also completes a database where Kong ran
// only some of them.
type pluginSchema struct {
	migrations []string
	sql        string
}

// pluginSchemas are the bundled plugins with tables of their own, by
// name: their migrations run when the plugin is enabled (kong.conf's
// plugins), as Kong runs a loaded plugin's migrations.
var pluginSchemas = map[string]pluginSchema{
	// Kong's rate-limiting migrations (kong/plugins/rate-limiting/migrations):
	// the counters of policy cluster, expired by ttl. 006_350_to_360
	// moves Kong's flat redis_* fields into the redis record of stored
	// plugins; gong's schema reads either, so it changes nothing here.
	"rate-limiting": {
		migrations: []string{"000_base_rate_limiting", "003_10_to_112", "004_200_to_210", "005_320_to_330", "006_350_to_360"},
		sql: `
CREATE TABLE IF NOT EXISTS ratelimiting_metrics (
    identifier text NOT NULL,
    period text NOT NULL,
    period_date timestamp with time zone NOT NULL,
    service_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'::uuid,
    route_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'::uuid,
    value integer,
    PRIMARY KEY (identifier, period, period_date, service_id, route_id)
);
CREATE INDEX IF NOT EXISTS ratelimiting_metrics_idx ON ratelimiting_metrics (service_id, route_id, period_date, period);
ALTER TABLE ratelimiting_metrics ADD COLUMN IF NOT EXISTS ttl timestamp with time zone;
CREATE INDEX IF NOT EXISTS ratelimiting_metrics_ttl_idx ON ratelimiting_metrics (ttl);
DROP TRIGGER IF EXISTS ratelimiting_metrics_ttl_trigger ON ratelimiting_metrics;
CREATE TRIGGER ratelimiting_metrics_ttl_trigger AFTER INSERT ON ratelimiting_metrics
    FOR EACH STATEMENT EXECUTE FUNCTION batch_delete_expired_rows('ttl');
`,
	},
}

// pluginsWithSchemas are the enabled plugins among pluginSchemas, in name
// order (Kong lists plugin subsystems sorted).
func pluginsWithSchemas(enabled []string) []string {
	var out []string
	for _, name := range enabled {
		if _, ok := pluginSchemas[name]; ok && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// runPluginMigrations creates the tables of the named plugins in tx and
// records all their migrations as executed in schema_meta, under the
// plugin's name as subsystem, as Kong records them.
func runPluginMigrations(ctx context.Context, tx pgx.Tx, plugins []string) error {
	for _, name := range plugins {
		ps := pluginSchemas[name]
		if _, err := tx.Exec(ctx, ps.sql); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO schema_meta (key, subsystem, last_executed, executed, pending)
			VALUES ('schema_meta', $1, $2, $3, '{}')
			ON CONFLICT (key, subsystem) DO UPDATE SET last_executed = EXCLUDED.last_executed, executed = EXCLUDED.executed, pending = '{}'`,
			name, ps.migrations[len(ps.migrations)-1], ps.migrations)
		if err != nil {
			return err
		}
	}
	return nil
}
