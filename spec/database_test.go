package spec

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kong/go-kong/kong"

	"github.com/gong-proxy/gong/internal/testsvc"
)

var (
	pgOnce   sync.Once
	pgServer *testsvc.Postgres
	pgErr    error
)

// TestMain stops the PostgreSQL server the database tests started.
func TestMain(m *testing.M) {
	code := m.Run()
	if pgServer != nil {
		pgServer.Close()
	}
	os.Exit(code)
}

// postgresDB starts the test binary's PostgreSQL server on first use and
// returns it with a new database for the test.
func postgresDB(t testing.TB) (*testsvc.Postgres, string) {
	t.Helper()
	pgOnce.Do(func() { pgServer, pgErr = testsvc.StartPostgres() })
	if pgErr != nil {
		t.Fatal(pgErr)
	}
	return pgServer, pgServer.Database(t)
}

// dbConf is the kong.conf of a node on database db.
func dbConf(pg *testsvc.Postgres, db string) string {
	return fmt.Sprintf("database = postgres\npg_host = %s\npg_port = %d\npg_user = %s\npg_password = %s\npg_database = %s\n"+
		"pg_timeout = 2000\ndb_update_frequency = 0.2\n", pg.Host, pg.Port, pg.User, pg.Password, db)
}

func TestDatabaseMigrationsCLI(t *testing.T) {
	t.Parallel()
	pg, db := postgresDB(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kong.conf"), "prefix = "+dir+"\n"+dbConf(pg, db)+"stream_listen = 127.0.0.1:"+strconv.Itoa(listenPort(t))+"\n")
	conf := []string{"-c", filepath.Join(dir, "kong.conf")}

	out, _, code := runGong(t, dir, nil, append([]string{"migrations", "list"}, conf...)...)
	if code != 3 || !strings.Contains(out, "Database needs bootstrapping or is older than Kong 1.0.") {
		t.Fatalf("list before bootstrap: exit %d, %q; want 3 and Kong's message", code, out)
	}
	_, errOut, code := runGong(t, dir, nil, append([]string{"start"}, conf...)...)
	if code != 1 || !strings.Contains(errOut, "Error: Database needs bootstrapping") {
		t.Fatalf("start before bootstrap: exit %d, %q; want Kong's error", code, errOut)
	}
	out, _, code = runGong(t, dir, nil, append([]string{"migrations", "bootstrap"}, conf...)...)
	if code != 0 || out != "Bootstrapping database...\nDatabase is up-to-date\n" {
		t.Fatalf("bootstrap: exit %d, %q", code, out)
	}
	out, _, code = runGong(t, dir, nil, append([]string{"migrations", "bootstrap"}, conf...)...)
	if code != 0 || out != "Database already bootstrapped\n" {
		t.Fatalf("second bootstrap: exit %d, %q", code, out)
	}
	out, _, code = runGong(t, dir, nil, append([]string{"migrations", "list"}, conf...)...)
	if code != 0 || !strings.HasPrefix(out, "Executed migrations:\n         core: 000_base, 003_100_to_110, ") ||
		!strings.Contains(out, ", 025_390_to_3100\nrate-limiting: 000_base_rate_limiting, 003_10_to_112, 004_200_to_210, 005_320_to_330, 006_350_to_360\n") {
		t.Fatalf("list: exit %d, %q", code, out)
	}
	out, _, code = runGong(t, dir, nil, append([]string{"migrations", "status"}, conf...)...)
	var status struct {
		NeedsBootstrap bool `json:"needs_bootstrap"`
		Executed       []struct {
			Subsystem  string   `json:"subsystem"`
			Migrations []string `json:"migrations"`
		} `json:"executed_migrations"`
	}
	if err := json.Unmarshal([]byte(out), &status); err != nil || code != 0 || status.NeedsBootstrap ||
		len(status.Executed) != 2 || status.Executed[0].Subsystem != "core" || len(status.Executed[0].Migrations) != 24 ||
		status.Executed[1].Subsystem != "rate-limiting" || len(status.Executed[1].Migrations) != 5 {
		t.Fatalf("status: exit %d, %q (%v)", code, out, err)
	}
	for verb, want := range map[string]string{"up": "Database is already up-to-date\n", "finish": "No pending migrations to finish\n"} {
		if out, _, code := runGong(t, dir, nil, append([]string{"migrations", verb}, conf...)...); code != 0 || out != want {
			t.Errorf("%s: exit %d, %q; want %q", verb, code, out, want)
		}
	}

	// On a database Kong bootstrapped (without gong's table), up adds it.
	conn, err := pgx.Connect(context.Background(), pg.ConnString(db))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(context.Background(), "DROP TABLE gong_entity_extensions; DELETE FROM schema_meta WHERE subsystem = 'gong'")
	conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := "Migrating gong on database '" + db + "'...\ngong migrated up to: 000_gong_entity_extensions (executed)\n1 migration processed\n1 executed\nDatabase is up-to-date\n"
	if out, _, code := runGong(t, dir, nil, append([]string{"migrations", "up"}, conf...)...); code != 0 || out != want {
		t.Errorf("up without gong's table: exit %d, %q; want %q", code, out, want)
	}
	if out, _, code := runGong(t, dir, nil, append([]string{"migrations", "up"}, conf...)...); code != 0 || out != "Database is already up-to-date\n" {
		t.Errorf("up again: exit %d, %q", code, out)
	}

	// db_import then db_export round-trips the entities.
	yml := "_format_version: \"3.0\"\nservices:\n- name: echo\n  url: tcp://127.0.0.1:9000\n  proxy_protocol: true\n  routes:\n  - name: r1\n    protocols: [tcp]\n    destinations: [{port: 7000}]\n"
	writeFile(t, filepath.Join(dir, "in.yml"), yml)
	out, errOut, code = runGong(t, dir, nil, append([]string{"config", "db_import", "in.yml"}, conf...)...)
	if code != 0 || out != "parse successful, beginning import\nimport successful\n" {
		t.Fatalf("db_import: exit %d, %q %q", code, out, errOut)
	}
	if _, errOut, code = runGong(t, dir, nil, append([]string{"config", "db_export", "out.yml"}, conf...)...); code != 0 {
		t.Fatalf("db_export: exit %d, %q", code, errOut)
	}
	exported, _ := os.ReadFile(filepath.Join(dir, "out.yml"))
	for _, want := range []string{"name: echo", "name: r1", "port: 9000", "protocol: tcp", "proxy_protocol: true", "_transform: false"} {
		if !strings.Contains(string(exported), want) {
			t.Errorf("exported kong.yml lacks %q:\n%s", want, exported)
		}
	}

	_, errOut, code = runGong(t, dir, nil, append([]string{"migrations", "reset"}, conf...)...)
	if code != 1 || !strings.Contains(errOut, "not a tty: invoke 'reset' non-interactively with the --yes flag") {
		t.Errorf("reset without --yes: exit %d, %q", code, errOut)
	}
	out, _, code = runGong(t, dir, nil, append([]string{"migrations", "reset", "--yes"}, conf...)...)
	if code != 0 || out != "Resetting database...\nDatabase successfully reset\n" {
		t.Errorf("reset --yes: exit %d, %q", code, out)
	}
}

// bootstrapDB bootstraps a database with the CLI.
func bootstrapDB(t *testing.T, pg *testsvc.Postgres, db string) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kong.conf"), "prefix = "+dir+"\n"+dbConf(pg, db))
	if out, errOut, code := runGong(t, dir, nil, "migrations", "bootstrap", "-c", filepath.Join(dir, "kong.conf")); code != 0 {
		t.Fatalf("bootstrap: exit %d, %s %s", code, out, errOut)
	}
}

// A service and route created with go-kong on node A carry traffic through
// node B within db_update_frequency (plus the rebuild), and B keeps
// serving while the database is down.
func TestDatabaseTwoNodes(t *testing.T) {
	// Not parallel: it stops and restarts the PostgreSQL server the other database tests share.
	pg, db := postgresDB(t)
	bootstrapDB(t, pg, db)
	a, adminURL := startAdmin(t, dbConf(pg, db)+"status_listen = 127.0.0.1:0\n", `_format_version: "3.0"`)
	metricsURL := "http://" + a.srv.APIAddrs("status_listen")[0].String() + "/metrics"
	reachable := func() float64 { return value(scrape(t, metricsURL), "kong_datastore_reachable") }
	portB := listenPort(t)
	b := startGong(t, dbConf(pg, db)+fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", portB), `_format_version: "3.0"`)
	addrB := fmt.Sprintf("127.0.0.1:%d", portB)
	ctx := context.Background()
	client, svc := echoService(t, adminURL)
	start := time.Now()
	_, err := client.Routes.Create(ctx, &kong.Route{Name: kong.String("r1"), Protocols: kong.StringSlice("tcp"),
		Destinations: []*kong.CIDRPort{{Port: kong.Int(portB)}}, Service: &kong.Service{ID: svc.ID}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "node B proxies the new route", func() bool {
		got, err := roundTrip(addrB, "hi")
		return err == nil && got == "echo: hi"
	})
	// db_update_frequency is 0.2s; a rebuild under -race takes well under
	// a second more.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the route reached node B after %v; want within db_update_frequency plus a rebuild", d)
	}
	routes, _, err := client.Routes.List(ctx, nil)
	if err != nil || len(routes) != 1 || *routes[0].Name != "r1" || *routes[0].Service.ID != *svc.ID {
		t.Fatalf("node A lists %v, %v; want r1 at once", routes, err)
	}
	if got := reachable(); got != 1 {
		t.Errorf("kong_datastore_reachable = %v with the database up; want 1", got)
	}
	var apiErr *kong.APIError
	if _, err := client.Services.Create(ctx, &kong.Service{Name: kong.String("echo"), Host: kong.String("x")}); !errors.As(err, &apiErr) || apiErr.Code() != 409 {
		t.Errorf("second service named echo: %v; want 409", err)
	}

	// The database goes away: B keeps serving its last generation and A
	// reports it.
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if got, err := roundTrip(addrB, "still"); err != nil || got != "echo: still" {
			t.Fatalf("connection %d while the database is down: %q, %v", i, got, err)
		}
	}
	eventually(t, "A reports the database unreachable", func() bool {
		code, body := call(t, "GET", adminURL+"/status", nil, "")
		db, _ := body["database"].(map[string]any)
		return code == 200 && db["reachable"] == false
	})
	if got := reachable(); got != 0 {
		t.Errorf("kong_datastore_reachable = %v with the database down; want 0", got)
	}
	if _, err := client.Services.Create(ctx, &kong.Service{Name: kong.String("down"), Host: kong.String("x")}); err == nil ||
		!strings.Contains(err.Error(), "500") {
		t.Errorf("a write while the database is down: %v; want 500", err)
	}
	b.waitErrLog(t, "B logs the outage", "database is unreachable")
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A reports the database reachable again", func() bool {
		_, body := call(t, "GET", adminURL+"/status", nil, "")
		db, _ := body["database"].(map[string]any)
		return db["reachable"] == true
	})
	if got := reachable(); got != 1 {
		t.Errorf("kong_datastore_reachable = %v once the database is back; want 1", got)
	}
	// Changes flow again: removing the route stops B's traffic.
	if err := client.Routes.Delete(ctx, kong.String("r1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node B drops the deleted route", func() bool {
		c, err := net.DialTimeout("tcp", addrB, time.Second)
		if err != nil {
			return true
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		got, err := exchange(c, "gone?")
		return err != nil || got == ""
	})
	if n := strings.Count(b.errLog.String(), "database is unreachable"); n != 1 {
		t.Errorf("B logged the outage %d times; want once", n)
	}
}

func TestDatabaseAdminErrors(t *testing.T) {
	t.Parallel()
	pg, db := postgresDB(t)
	bootstrapDB(t, pg, db)
	_, adminURL := startAdmin(t, dbConf(pg, db), `_format_version: "3.0"`)
	code, body := call(t, "POST", adminURL+"/config", strings.NewReader(`{"_format_version":"3.0"}`), "application/json")
	if code != 400 || body["message"] != "this endpoint is only available when Kong is configured to not use a database" {
		t.Errorf("POST /config: %d %v", code, body)
	}
	code, body = call(t, "POST", adminURL+"/services", strings.NewReader(`{"name":"s","protocol":"tcp"}`), "application/json")
	if code != 400 || body["code"] != 2.0 || body["name"] != "schema violation" {
		t.Errorf("POST /services without host: %d %v; want 400 schema violation", code, body)
	}
	if fields, _ := body["fields"].(map[string]any); fields["host"] != "required field missing" {
		t.Errorf("fields = %v; want host: required field missing", body["fields"])
	}
	code, _ = call(t, "POST", adminURL+"/services", strings.NewReader(`{"name":"s","url":"tcp://127.0.0.1:9"}`), "application/json")
	if code != 201 {
		t.Fatalf("POST /services: %d", code)
	}
	code, body = call(t, "POST", adminURL+"/services", strings.NewReader(`{"name":"s","url":"tcp://127.0.0.1:9"}`), "application/json")
	if code != 409 || body["code"] != 5.0 || body["message"] != `UNIQUE violation detected on '{name="s"}'` {
		t.Errorf("duplicate name: %d %v; want 409 code 5", code, body)
	}
	code, body = call(t, "POST", adminURL+"/services/s/routes", strings.NewReader(`{"protocols":["tcp"],"destinations":[{"port":7000}],"tags":["a"]}`), "application/json")
	if code != 201 || body["service"].(map[string]any)["id"] == nil {
		t.Fatalf("POST /services/s/routes: %d %v", code, body)
	}
	code, body = call(t, "DELETE", adminURL+"/services/s", nil, "")
	if code != 400 || body["message"] != "an existing 'routes' entity references this 'services' entity" {
		t.Errorf("DELETE a service with routes: %d %v", code, body)
	}
	code, body = call(t, "PATCH", adminURL+"/services/s", strings.NewReader(`{"retries":2}`), "application/json")
	if code != 200 || body["retries"] != 2.0 || body["host"] != "127.0.0.1" {
		t.Errorf("PATCH: %d %v", code, body)
	}
	if code, body = call(t, "GET", adminURL+"/services/nope", nil, ""); code != 404 || body["message"] != "Not found" {
		t.Errorf("GET unknown: %d %v", code, body)
	}
	if code, body = call(t, "GET", adminURL+"/routes?tags=a", nil, ""); code != 200 || len(body["data"].([]any)) != 1 {
		t.Errorf("GET /routes?tags=a: %d %v", code, body)
	}
}

// go-kong creates, updates, lists and deletes every entity type gong
// serves, and a TLS route built that way carries traffic.
func TestDatabaseGoKongEntities(t *testing.T) {
	t.Parallel()
	pg, db := postgresDB(t)
	bootstrapDB(t, pg, db)
	port := listenPort(t)
	_, adminURL := startAdmin(t, dbConf(pg, db)+fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\n", port), `_format_version: "3.0"`)
	ctx := context.Background()
	client, err := kong.NewClient(kong.String(adminURL), nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := newLeaf(t, "db.test", []string{"db.test"}, nil, true)
	cert, err := client.Certificates.Create(ctx, &kong.Certificate{Cert: kong.String(leaf.certPEM), Key: kong.String(leaf.keyPEM),
		SNIs: kong.StringSlice("db.test")})
	if err != nil {
		t.Fatal(err)
	}
	up, err := client.Upstreams.Create(ctx, &kong.Upstream{Name: kong.String("pool")})
	if err != nil {
		t.Fatal(err)
	}
	echo := startEcho(t, "echo")
	if _, err := client.Targets.Create(ctx, up.ID, &kong.Target{Target: kong.String(echo)}); err != nil {
		t.Fatal(err)
	}
	svc, err := client.Services.Create(ctx, &kong.Service{Name: kong.String("s"), Protocol: kong.String("tcp"), Host: kong.String("pool"), Port: kong.Int(9)})
	if err != nil {
		t.Fatal(err)
	}
	route, err := client.Routes.Create(ctx, &kong.Route{Protocols: kong.StringSlice("tls"), SNIs: kong.StringSlice("db.test"),
		Destinations: []*kong.CIDRPort{{Port: kong.Int(port)}}, Service: &kong.Service{ID: svc.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Consumers.Create(ctx, &kong.Consumer{Username: kong.String("alice")}); err != nil {
		t.Fatal(err)
	}
	plugin, err := client.Plugins.Create(ctx, &kong.Plugin{Name: kong.String("ip-restriction"), Route: &kong.Route{ID: route.ID},
		Protocols: kong.StringSlice("tls"), Config: kong.Configuration{"allow": []any{"127.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf.cert)
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{ServerName: "db.test", RootCAs: pool})
	if err != nil {
		t.Fatalf("TLS through the route made with go-kong: %v", err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if got, err := exchange(c, "hi"); err != nil || got != "echo: hi" {
		t.Errorf("exchange = %q, %v", got, err)
	}
	c.Close()

	svc.Retries = kong.Int(2)
	if svc, err = client.Services.Update(ctx, svc); err != nil || *svc.Retries != 2 || *svc.Host != "pool" {
		t.Fatalf("update service: %v, %v", svc, err)
	}
	if certs, _, err := client.Certificates.List(ctx, nil); err != nil || len(certs) != 1 || len(certs[0].SNIs) != 1 || *certs[0].SNIs[0] != "db.test" {
		t.Errorf("certificates: %v, %v", certs, err)
	}
	if targets, _, err := client.Targets.List(ctx, up.ID, nil); err != nil || len(targets) != 1 {
		t.Errorf("targets: %v, %v", targets, err)
	}
	if plugins, err := client.Plugins.ListAllForRoute(ctx, route.ID); err != nil || len(plugins) != 1 {
		t.Errorf("plugins of the route: %v, %v", plugins, err)
	}
	for name, del := range map[string]func() error{
		"plugin":   func() error { return client.Plugins.Delete(ctx, plugin.ID) },
		"consumer": func() error { return client.Consumers.Delete(ctx, kong.String("alice")) },
	} {
		if err := del(); err != nil {
			t.Errorf("delete %s: %v", name, err)
		}
	}
	steps := []func() error{
		func() error { return client.Routes.Delete(ctx, route.ID) },
		func() error { return client.Services.Delete(ctx, svc.ID) },
		func() error { return client.Targets.Delete(ctx, up.ID, kong.String(echo)) },
		func() error { return client.Upstreams.Delete(ctx, up.ID) },
		func() error { return client.SNIs.Delete(ctx, kong.String("db.test")) },
		func() error { return client.Certificates.Delete(ctx, cert.ID) },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("delete step %d: %v", i, err)
		}
	}
	for _, kind := range []string{"services", "routes", "upstreams", "certificates", "snis", "plugins", "consumers"} {
		if code, body := call(t, "GET", adminURL+"/"+kind, nil, ""); code != 200 || len(body["data"].([]any)) != 0 {
			t.Errorf("GET /%s after the deletes: %d %v", kind, code, body)
		}
	}
}

// A certificate added and a plugin enabled on a route through node A
// reach node B's TLS handshakes and connections.
func TestDatabaseCertificateAndPluginReachNodeB(t *testing.T) {
	t.Parallel()
	pg, db := postgresDB(t)
	bootstrapDB(t, pg, db)
	_, adminURL := startAdmin(t, dbConf(pg, db), `_format_version: "3.0"`)
	portB := listenPort(t)
	startGong(t, dbConf(pg, db)+fmt.Sprintf("stream_listen = 127.0.0.1:%d ssl\n", portB), `_format_version: "3.0"`)
	addrB := fmt.Sprintf("127.0.0.1:%d", portB)
	ctx := context.Background()
	client, svc := echoService(t, adminURL)
	route, err := client.Routes.Create(ctx, &kong.Route{Name: kong.String("b"), Protocols: kong.StringSlice("tls"),
		SNIs: kong.StringSlice("b.test"), Service: &kong.Service{ID: svc.ID}})
	if err != nil {
		t.Fatal(err)
	}
	// through B answers what B serves for b.test: the certificate's CN and
	// the echo's answer ("" when the connection is refused).
	through := func() (cn, got string) {
		c, err := tlsDial(t, addrB, "b.test", nil)
		if err != nil {
			return "", ""
		}
		defer c.Close()
		got, _ = exchange(c, "hi")
		return servedCN(c), got
	}
	eventually(t, "node B proxies the route", func() bool { _, got := through(); return got == "echo: hi" })
	if cn, _ := through(); cn == "b.test" {
		t.Fatalf("node B serves CN %q before the certificate exists", cn)
	}

	leaf := newLeaf(t, "b.test", []string{"b.test"}, nil, true)
	if _, err := client.Certificates.Create(ctx, &kong.Certificate{Cert: kong.String(leaf.certPEM), Key: kong.String(leaf.keyPEM),
		SNIs: kong.StringSlice("b.test")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node B serves the certificate added on A", func() bool {
		cn, got := through()
		return cn == "b.test" && got == "echo: hi"
	})

	if _, err := client.Plugins.Create(ctx, &kong.Plugin{Name: kong.String("ip-restriction"), Route: &kong.Route{ID: route.ID},
		Config: kong.Configuration{"deny": []any{"127.0.0.1"}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node B refuses 127.0.0.1 once the plugin enabled on A reaches it", func() bool {
		_, got := through()
		return got == ""
	})
}

// echoService starts an echo upstream and creates its service "echo"
// through go-kong on the Admin API at adminURL.
func echoService(t *testing.T, adminURL string) (*kong.Client, *kong.Service) {
	t.Helper()
	host, port := hostPort(startEcho(t, "echo"))
	p, _ := strconv.Atoi(port)
	client, err := kong.NewClient(kong.String(adminURL), nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := client.Services.Create(context.Background(), &kong.Service{Name: kong.String("echo"), Protocol: kong.String("tcp"),
		Host: kong.String(host), Port: kong.Int(p)})
	if err != nil {
		t.Fatal(err)
	}
	return client, svc
}

// TestDatabaseVaults: vaults written through the Admin API in database
// mode are stored in Kong's sm_vaults table and listed; a vault Kong has
// and gong does not (aws, written by a Kong node) is left out instead of
// failing the load; a reference through the stored vault's prefix
// resolves for a certificate.
func TestDatabaseVaults(t *testing.T) {
	pg, db := postgresDB(t)
	bootstrapDB(t, pg, db)
	conn, err := pgx.Connect(context.Background(), pg.ConnString(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `INSERT INTO sm_vaults (id, ws_id, prefix, name, config)
		SELECT '0d3a6a5e-1c1e-4a3b-9e0f-7a9d1d7c0a11', id, 'aws-prod', 'aws', '{"region":"eu-west-1","ttl":null}' FROM workspaces WHERE name = 'default'`); err != nil {
		t.Fatal(err)
	}
	secrets := t.TempDir()
	leaf := newLeaf(t, "db-vault.test", []string{"db-vault.test"}, nil, true)
	writeFile(t, filepath.Join(secrets, "tls.key"), leaf.keyPEM)
	_, adminURL := startAdmin(t, dbConf(pg, db)+"vault_file_base_dir = "+secrets+"\n", `_format_version: "3.0"`)
	code, body := call(t, "POST", adminURL+"/vaults", strings.NewReader(`{"prefix":"k8s","name":"file","config":{"ttl":60}}`), "application/json")
	if code != 201 || body["prefix"] != "k8s" {
		t.Fatalf("POST /vaults: %d %v", code, body)
	}
	var stored string
	if err := conn.QueryRow(context.Background(), "SELECT name FROM sm_vaults WHERE prefix = 'k8s'").Scan(&stored); err != nil || stored != "file" {
		t.Errorf("sm_vaults row: %q, %v", stored, err)
	}
	cert, _ := json.Marshal(map[string]any{"cert": leaf.certPEM, "key": "{vault://k8s/tls.key}"})
	if code, body = call(t, "POST", adminURL+"/certificates", strings.NewReader(string(cert)), "application/json"); code != 201 || body["key"] != "{vault://k8s/tls.key}" {
		t.Errorf("POST /certificates with a key in the stored vault: %d %v", code, body)
	}
	eventually(t, "GET /vaults lists the vault", func() bool {
		code, body := get(t, adminURL+"/vaults")
		data, _ := body["data"].([]any)
		return code == 200 && len(data) == 1 && data[0].(map[string]any)["prefix"] == "k8s"
	})
	if code, body = get(t, adminURL+"/vaults/aws-prod"); code != 404 {
		t.Errorf("GET /vaults/aws-prod (a vault gong does not have): %d %v", code, body)
	}
}
