package postgres

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gong-proxy/gong/internal/testsvc"
	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
)

var server *testsvc.Postgres

func TestMain(m *testing.M) {
	var err error
	if server, err = testsvc.StartPostgres(); err != nil {
		os.Stderr.WriteString("postgres: " + err.Error() + "\n")
		os.Exit(1)
	}
	code := m.Run()
	server.Close()
	os.Exit(code)
}

// openStore opens a store on a new database, as node nodeID.
func openStore(t testing.TB, database, nodeID string) *Store {
	t.Helper()
	db := conf.Database{Strategy: "postgres", UpdateFrequency: 50 * time.Millisecond, Postgres: conf.Postgres{
		Host: server.Host, Port: server.Port, User: server.User, Password: server.Password, Database: database,
		Timeout: 5 * time.Second}}
	s, err := Open(context.Background(), db, nodeID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func bootstrapped(t testing.TB, nodeID string) *Store {
	t.Helper()
	s := openStore(t, server.Database(t), nodeID)
	if ok, err := s.Bootstrap(context.Background(), []string{"rate-limiting"}); err != nil || !ok {
		t.Fatalf("Bootstrap() = %v, %v", ok, err)
	}
	return s
}

func TestBootstrapRecordsKongsMigrations(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, server.Database(t), "11111111-1111-4111-8111-111111111111")
	st, err := s.State(ctx, nil)
	if err != nil || !st.NeedsBootstrap {
		t.Fatalf("State() before bootstrap = %+v, %v; want needs_bootstrap", st, err)
	}
	if err := s.Check(ctx, nil); err == nil || err.Error() != NeedsBootstrapMsg {
		t.Errorf("Check() = %v; want Kong's needs-bootstrap message", err)
	}
	if ok, err := s.Bootstrap(ctx, nil); !ok || err != nil {
		t.Fatalf("Bootstrap() = %v, %v", ok, err)
	}
	if ok, err := s.Bootstrap(ctx, nil); ok || err != nil {
		t.Errorf("second Bootstrap() = %v, %v; want false: already bootstrapped", ok, err)
	}
	st, err = s.State(ctx, nil)
	if err != nil || st.NeedsBootstrap || !slices.Equal(st.Executed[0].Migrations, CoreMigrations) || len(st.Executed) != 1 || st.New != nil || st.Pending != nil {
		t.Fatalf("State() after bootstrap = %+v, %v", st, err)
	}
	if err := s.Check(ctx, nil); err != nil {
		t.Errorf("Check() = %v", err)
	}
	var workspaces, clusterIDs int
	s.write.QueryRow(ctx, "SELECT count(*) FROM workspaces WHERE name = 'default'").Scan(&workspaces)
	s.write.QueryRow(ctx, "SELECT count(*) FROM parameters WHERE key = 'cluster_id'").Scan(&clusterIDs)
	if workspaces != 1 || clusterIDs != 1 {
		t.Errorf("default workspaces %d, cluster_id parameters %d; want 1 each", workspaces, clusterIDs)
	}
	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := s.State(ctx, nil); err != nil || !st.NeedsBootstrap {
		t.Errorf("State() after reset = %+v, %v; want needs_bootstrap", st, err)
	}
}

// Enabling rate-limiting on a database bootstrapped without it makes its
// migrations new (start refuses, as Kong's does); Up creates Kong's
// ratelimiting_metrics table and records them under the plugin's name.
func TestRateLimitingMigrations(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, server.Database(t), "11111111-1111-4111-8111-111111111111")
	if ok, err := s.Bootstrap(ctx, []string{"tcp-log"}); !ok || err != nil {
		t.Fatalf("Bootstrap() = %v, %v", ok, err)
	}
	var exists bool
	s.write.QueryRow(ctx, "SELECT to_regclass('ratelimiting_metrics') IS NOT NULL").Scan(&exists)
	if exists {
		t.Fatal("bootstrap without rate-limiting enabled created its table")
	}
	plugins := []string{"tcp-log", "rate-limiting"}
	st, err := s.State(ctx, plugins)
	want := []Subsystem{{"rate-limiting", pluginSchemas["rate-limiting"].migrations}}
	if err != nil || len(st.New) != 1 || st.New[0].Name != want[0].Name || !slices.Equal(st.New[0].Migrations, want[0].Migrations) {
		t.Fatalf("State() = %+v, %v; want rate-limiting's migrations new", st, err)
	}
	if err := s.Check(ctx, plugins); !errors.Is(err, ErrNewMigrations) {
		t.Errorf("Check() = %v; want %v", err, ErrNewMigrations)
	}
	if got := FormatList(append(st.Executed, st.New...)); !strings.HasPrefix(got, "         core: 000_base, ") ||
		!strings.HasSuffix(got, "\nrate-limiting: 000_base_rate_limiting, 003_10_to_112, 004_200_to_210, 005_320_to_330, 006_350_to_360") {
		t.Errorf("FormatList() = %q; want Kong's right-aligned subsystems", got)
	}
	if ran, err := s.Up(ctx, plugins); err != nil || len(ran) != 1 || ran[0].Name != "rate-limiting" {
		t.Fatalf("Up() = %v, %v", ran, err)
	}
	if err := s.Check(ctx, plugins); err != nil {
		t.Errorf("Check() after Up = %v", err)
	}
	var last string
	var executed []string
	if err := s.write.QueryRow(ctx, "SELECT last_executed, executed FROM schema_meta WHERE key = 'schema_meta' AND subsystem = 'rate-limiting'").
		Scan(&last, &executed); err != nil || last != "006_350_to_360" || len(executed) != 5 {
		t.Errorf("schema_meta rate-limiting row: %q %v, %v", last, executed, err)
	}
	var columns []string
	rows, _ := s.write.Query(ctx, "SELECT column_name FROM information_schema.columns WHERE table_name = 'ratelimiting_metrics' ORDER BY ordinal_position")
	columns, _ = pgx.CollectRows(rows, pgx.RowTo[string])
	if !slices.Equal(columns, []string{"identifier", "period", "period_date", "service_id", "route_id", "value", "ttl"}) {
		t.Errorf("ratelimiting_metrics columns %v; want Kong's", columns)
	}
	if ran, err := s.Up(ctx, plugins); err != nil || len(ran) != 0 {
		t.Errorf("second Up() = %v, %v; want nothing to run", ran, err)
	}
}

func TestStateOfAnOlderCore(t *testing.T) {
	ctx := context.Background()
	s := bootstrapped(t, "11111111-1111-4111-8111-111111111111")
	s.write.Exec(ctx, "UPDATE schema_meta SET last_executed = '023_360_to_370', executed = $1 WHERE subsystem = 'core'", CoreMigrations[:22])
	st, err := s.State(ctx, nil)
	if err != nil || !slices.Equal(st.CoreNew(), []string{"024_380_to_390", "025_390_to_3100"}) {
		t.Fatalf("State() = %+v, %v; want the last two new", st, err)
	}
	if err := s.Check(ctx, nil); !errors.Is(err, ErrNewMigrations) {
		t.Errorf("Check() = %v; want %v", err, ErrNewMigrations)
	}
}

// A database written the way Kong writes it loads; rows of other
// workspaces and plugins gong has not enabled are left out.
func TestLoadKongsRows(t *testing.T) {
	ctx := context.Background()
	s := bootstrapped(t, "11111111-1111-4111-8111-111111111111")
	_, err := s.write.Exec(ctx, `
INSERT INTO workspaces (id, name) VALUES ('aaaaaaaa-0000-4000-8000-000000000000', 'team');
INSERT INTO services (id, ws_id, name, protocol, host, port, retries, connect_timeout, write_timeout, read_timeout, enabled, created_at, updated_at)
  SELECT 'bbbbbbbb-0000-4000-8000-000000000001', id, 'echo', 'tcp', '127.0.0.1', 9000, 5, 60000, 60000, 60000, true, now(), now() FROM workspaces WHERE name = 'default';
INSERT INTO routes (id, ws_id, name, service_id, protocols, destinations, https_redirect_status_code, regex_priority, strip_path, preserve_host, request_buffering, response_buffering, path_handling, created_at, updated_at)
  SELECT 'cccccccc-0000-4000-8000-000000000001', id, 'r', 'bbbbbbbb-0000-4000-8000-000000000001', '{tcp}', ARRAY['{"port": 7000}'::jsonb], 426, 0, true, false, true, true, 'v0', now(), now() FROM workspaces WHERE name = 'default';
INSERT INTO services (id, ws_id, name, protocol, host, port, retries, connect_timeout, write_timeout, read_timeout, enabled)
  VALUES ('bbbbbbbb-0000-4000-8000-000000000002', 'aaaaaaaa-0000-4000-8000-000000000000', 'other', 'http', 'x', 80, 5, 1, 1, 1, true);
INSERT INTO plugins (id, ws_id, name, config, enabled, protocols, cache_key)
  SELECT 'dddddddd-0000-4000-8000-000000000001', id, 'key-auth', '{}', true, '{http}', 'x' FROM workspaces WHERE name = 'default';
`)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := s.Load(ctx, declarative.Options{Plugins: []string{"ip-restriction"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Services) != 1 || *cfg.Services[0].Name != "echo" || len(cfg.Routes) != 1 || len(cfg.Plugins) != 0 {
		t.Fatalf("loaded %d services, %d routes, %d plugins; want echo, its route, no plugin", len(cfg.Services), len(cfg.Routes), len(cfg.Plugins))
	}
	r := cfg.Routes[0]
	if *r.Service != "bbbbbbbb-0000-4000-8000-000000000001" || *r.Destinations[0].Port != 7000 || r.CreatedAt == 0 {
		t.Errorf("route = %+v", r)
	}
}

func TestModifyValidatesAndWritesAtomically(t *testing.T) {
	ctx := context.Background()
	s := bootstrapped(t, "11111111-1111-4111-8111-111111111111")
	opts := declarative.Options{}
	_, err := s.Modify(ctx, opts, func(d *declarative.Document) error {
		d.Set("services", map[string]any{"id": "bbbbbbbb-0000-4000-8000-000000000001", "name": "echo", "url": "tcp://127.0.0.1:9000"})
		d.Set("routes", map[string]any{"id": "cccccccc-0000-4000-8000-000000000001", "protocols": []any{"tcp"},
			"destinations": []any{map[string]any{"port": 7000}}, "service": "bbbbbbbb-0000-4000-8000-000000000001", "tags": []any{"t1"}})
		d.Set("upstreams", map[string]any{"id": "eeeeeeee-0000-4000-8000-000000000001", "name": "up"})
		d.Set("targets", map[string]any{"id": "ffffffff-0000-4000-8000-000000000001", "upstream": "eeeeeeee-0000-4000-8000-000000000001", "target": "127.0.0.1:9000"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A route pointing nowhere is refused and writes nothing.
	_, err = s.Modify(ctx, opts, func(d *declarative.Document) error {
		d.Set("services", map[string]any{"id": "bbbbbbbb-0000-4000-8000-000000000002", "name": "two", "url": "tcp://127.0.0.1:9001"})
		d.Set("routes", map[string]any{"id": "cccccccc-0000-4000-8000-000000000002", "protocols": []any{"tcp"},
			"destinations": []any{map[string]any{"port": 7001}}, "service": "bbbbbbbb-0000-4000-8000-00000000dead"})
		return nil
	})
	var de *declarative.Error
	if !errors.As(err, &de) {
		t.Fatalf("Modify with a dangling reference = %v; want a declarative error", err)
	}
	cfg, err := s.Load(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Services) != 1 || len(cfg.Routes) != 1 || len(cfg.Targets) != 1 || cfg.Targets[0].Target != "127.0.0.1:9000" {
		t.Fatalf("after the refused writes: %d services, %d routes, %d targets; want the first write only", len(cfg.Services), len(cfg.Routes), len(cfg.Targets))
	}
	var tags []string
	var cacheKey string
	s.write.QueryRow(ctx, "SELECT tags FROM tags WHERE entity_name = 'routes'").Scan(&tags)
	s.write.QueryRow(ctx, "SELECT cache_key FROM targets").Scan(&cacheKey)
	ws, _ := defaultWorkspace(ctx, s.write)
	if !slices.Equal(tags, []string{"t1"}) || cacheKey != "targets:eeeeeeee-0000-4000-8000-000000000001:127.0.0.1:9000::::"+ws {
		t.Errorf("tags %v, target cache_key %q; want Kong's", tags, cacheKey)
	}
	// Removing the upstream removes its target, as in Kong.
	if _, err := s.Modify(ctx, opts, func(d *declarative.Document) error {
		d.Remove("upstreams", "eeeeeeee-0000-4000-8000-000000000001")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if cfg, _ := s.Load(ctx, opts); len(cfg.Upstreams)+len(cfg.Targets) != 0 {
		t.Errorf("after removing the upstream: %d upstreams, %d targets", len(cfg.Upstreams), len(cfg.Targets))
	}
}

func TestWatchSeesOtherNodesChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := bootstrapped(t, "11111111-1111-4111-8111-111111111111")
	var name string
	a.write.QueryRow(ctx, "SELECT current_database()").Scan(&name)
	b := openStore(t, name, "22222222-2222-4222-8222-222222222222")
	changes := make(chan struct{}, 10)
	go b.Watch(ctx, WatchOptions{OnChange: func() { changes <- struct{}{} }})
	go a.Watch(ctx, WatchOptions{OnChange: func() { t.Error("a node saw its own change") }})
	if _, err := a.Modify(ctx, declarative.Options{}, func(d *declarative.Document) error {
		d.Set("services", map[string]any{"id": "bbbbbbbb-0000-4000-8000-000000000001", "name": "echo", "url": "tcp://127.0.0.1:9000"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("node b saw no change within 10s")
	}
}

// gong's extension fields live in gong's own table, never in Kong's
// columns, come back on reads, and go with their entity; a database
// without the table (bootstrapped by Kong) refuses them until "gong
// migrations up" creates it.
func TestExtensionFieldsInGongsTable(t *testing.T) {
	ctx := context.Background()
	s := bootstrapped(t, "11111111-1111-4111-8111-111111111111")
	opts := declarative.Options{}
	const svc, up = "bbbbbbbb-0000-4000-8000-000000000001", "eeeeeeee-0000-4000-8000-000000000001"
	// write sets the service, with proxy_protocol or without, and the
	// upstream, with udp_affinity_ttl when affinity.
	write := func(proxyProtocol, affinity bool) error {
		_, err := s.Modify(ctx, opts, func(d *declarative.Document) error {
			e := map[string]any{"id": svc, "name": "pp", "url": "tcp://127.0.0.1:9001"}
			if proxyProtocol {
				e["proxy_protocol"] = true
			}
			d.Set("services", e)
			u := map[string]any{"id": up, "name": "u"}
			if affinity {
				u["udp_affinity_ttl"] = 30.0
			}
			d.Set("upstreams", u)
			return nil
		})
		return err
	}
	extensions := func() int {
		var n int
		if err := s.write.QueryRow(ctx, "SELECT count(*) FROM gong_entity_extensions").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := write(true, true); err != nil {
		t.Fatal(err)
	}
	doc, err := s.Document(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), `"proxy_protocol":true`) || !strings.Contains(string(doc), `"udp_affinity_ttl":30`) {
		t.Errorf("the extension fields do not come back: %s", doc)
	}
	if n := extensions(); n != 2 {
		t.Errorf("%d rows in gong_entity_extensions; want 2", n)
	}
	var kongs string
	s.write.QueryRow(ctx, "SELECT to_jsonb(e)::text FROM services e").Scan(&kongs)
	if strings.Contains(kongs, "proxy_protocol") {
		t.Errorf("Kong's services row holds gong's field: %s", kongs)
	}
	if err := write(false, true); err != nil {
		t.Fatal(err)
	}
	if n := extensions(); n != 1 {
		t.Errorf("after proxy_protocol was unset: %d rows; want the upstream's only", n)
	}
	if _, err := s.Modify(ctx, opts, func(d *declarative.Document) error { d.Remove("upstreams", up); return nil }); err != nil {
		t.Fatal(err)
	}
	if n := extensions(); n != 0 {
		t.Errorf("after the upstream was removed: %d rows; want none", n)
	}

	// A database Kong bootstrapped has no such table.
	if _, err := s.write.Exec(ctx, "DROP TABLE gong_entity_extensions"); err != nil {
		t.Fatal(err)
	}
	var ee *ExtensionError
	if err := write(true, false); !errors.As(err, &ee) || ee.Field != "proxy_protocol" || !strings.Contains(err.Error(), "run 'gong migrations up'") {
		t.Errorf("an extension without gong's table: %v; want an ExtensionError naming the field and the fix", err)
	}
	if err := write(false, false); err != nil {
		t.Errorf("a write without extensions on Kong's schema alone: %v", err)
	}
	if created, err := s.UpExtensions(ctx); !created || err != nil {
		t.Fatalf("UpExtensions() = %v, %v; want the table created", created, err)
	}
	if created, err := s.UpExtensions(ctx); created || err != nil {
		t.Errorf("UpExtensions() again = %v, %v; want nothing to do", created, err)
	}
	if err := write(true, true); err != nil {
		t.Errorf("an extension once the table exists: %v", err)
	}
}
