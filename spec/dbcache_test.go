package spec

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kong/go-kong/kong"

	"github.com/gong-proxy/gong/runtime"
	"github.com/gong-proxy/gong/runtime/conf"
)

// readCache returns the configuration a node cached in its prefix, "" while
// there is none.
func readCache(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, runtime.ConfigCacheFile))
	if err != nil {
		return ""
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the configuration cache is not gzip: %v", err)
	}
	doc, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("reading the configuration cache: %v", err)
	}
	return string(doc)
}

// A node that built its configuration from the database caches it in its
// prefix (mode 0600: it holds keys); restarted while the database is
// down, it starts from the cache, says so, reports the database
// unreachable, and catches up once the database is back. A node without a
// cache refuses to start, saying why.
func TestDatabaseCachedStart(t *testing.T) {
	pg, db := postgresDB(t)
	bootstrapDB(t, pg, db)
	port1, port2 := listenPort(t), listenPort(t)
	dir := t.TempDir()
	nodeConf := dbConf(pg, db) + fmt.Sprintf("admin_listen = 127.0.0.1:0\nstream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", port1, port2)
	a := startGongIn(t, dir, nodeConf, `_format_version: "3.0"`, runtime.Options{})
	adminA := "http://" + a.srv.APIAddrs("admin_listen")[0].String()
	ctx := context.Background()
	client, svc := echoService(t, adminA)
	if _, err := client.Routes.Create(ctx, &kong.Route{Name: kong.String("cached-route"), Protocols: kong.StringSlice("tcp"),
		Destinations: []*kong.CIDRPort{{Port: kong.Int(port1)}}, Service: &kong.Service{ID: svc.ID}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A caches the route it serves", func() bool { return strings.Contains(readCache(t, dir), "cached-route") })
	if fi, err := os.Stat(filepath.Join(dir, runtime.ConfigCacheFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the configuration cache: %v, %v; want mode 0600", fi.Mode(), err)
	}
	a.stop()

	// A change A's cache lacks, made through another node, then the
	// outage.
	_, adminB := startAdmin(t, dbConf(pg, db), `_format_version: "3.0"`)
	clientB, err := kong.NewClient(kong.String(adminB), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clientB.Routes.Create(ctx, &kong.Route{Name: kong.String("later-route"), Protocols: kong.StringSlice("tcp"),
		Destinations: []*kong.CIDRPort{{Port: kong.Int(port2)}}, Service: &kong.Service{ID: svc.ID}}); err != nil {
		t.Fatal(err)
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	started := false
	t.Cleanup(func() {
		if !started {
			pg.Start() // for the next tests, when this one failed midway
		}
	})

	// Without a cache a node does not start.
	empty := t.TempDir()
	writeFile(t, filepath.Join(empty, "kong.conf"), "prefix = "+empty+"\n"+dbConf(pg, db)+"stream_listen = 127.0.0.1:0\n")
	c, _, err := conf.Load(conf.Options{Path: filepath.Join(empty, "kong.conf"), Dir: empty})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := runtime.New(runtime.Options{Config: c, ErrorLog: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Start()
	if err == nil {
		srv.Stop()
		t.Fatal("a node without a cache started while the database is down")
	}
	if want := "the node cannot start without its database: no configuration cached in " + filepath.Join(empty, runtime.ConfigCacheFile); !strings.Contains(err.Error(), want) {
		t.Errorf("start without a cache: %v; want it to say %q", err, want)
	}

	// A, restarted, serves its cached configuration.
	a2 := startGongIn(t, dir, nodeConf, `_format_version: "3.0"`, runtime.Options{})
	adminA2 := "http://" + a2.srv.APIAddrs("admin_listen")[0].String()
	if !strings.Contains(a2.errLog.String(), "starting from the configuration cached in "+filepath.Join(dir, runtime.ConfigCacheFile)) {
		t.Errorf("A's log does not say it started from its cache:\n%s", a2.errLog)
	}
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", port1), "hi"); err != nil || got != "echo: hi" {
		t.Errorf("the cached route on A: %q, %v", got, err)
	}
	if got, _ := roundTrip(fmt.Sprintf("127.0.0.1:%d", port2), "hi"); got != "" {
		t.Errorf("a route A's cache lacks answered %q", got)
	}
	if _, body := call(t, "GET", adminA2+"/status", nil, ""); body["database"].(map[string]any)["reachable"] != false {
		t.Errorf("A's /status from the cache: %v; want database.reachable false", body["database"])
	}

	// The database is back: A catches up.
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	started = true
	eventually(t, "A serves the route made while it was down", func() bool {
		got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", port2), "hi")
		return err == nil && got == "echo: hi"
	})
	eventually(t, "A reports the database reachable", func() bool {
		_, body := call(t, "GET", adminA2+"/status", nil, "")
		return body["database"].(map[string]any)["reachable"] == true
	})
	eventually(t, "A caches what it caught up with", func() bool { return strings.Contains(readCache(t, dir), "later-route") })
}

// What "deck gateway sync" then "deck gateway dump" do, through go-kong
// (decK's own client; the module proxy does not serve decK): every stream
// entity type of a kong.yml is created on node A, in decK's order, and
// read back from node B, field for field.
func TestDatabaseSyncDumpThroughGoKong(t *testing.T) {
	pg, db := postgresDB(t)
	bootstrapDB(t, pg, db)
	_, adminA := startAdmin(t, dbConf(pg, db), `_format_version: "3.0"`)
	_, adminB := startAdmin(t, dbConf(pg, db), `_format_version: "3.0"`)
	ctx := context.Background()
	a, err := kong.NewClient(kong.String(adminA), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := kong.NewClient(kong.String(adminB), nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, ca := newLeaf(t, "sync.test", []string{"sync.test"}, nil, true), newCA(t, "sync CA")

	// sync
	cert, err := a.Certificates.Create(ctx, &kong.Certificate{Cert: kong.String(leaf.certPEM), Key: kong.String(leaf.keyPEM),
		SNIs: kong.StringSlice("sync.test"), Tags: kong.StringSlice("sync")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CACertificates.Create(ctx, &kong.CACertificate{Cert: kong.String(ca.certPEM)}); err != nil {
		t.Fatal(err)
	}
	up, err := a.Upstreams.Create(ctx, &kong.Upstream{Name: kong.String("pool"), Algorithm: kong.String("least-connections"),
		Healthchecks: &kong.Healthcheck{Passive: &kong.PassiveHealthcheck{Unhealthy: &kong.Unhealthy{TCPFailures: kong.Int(2)}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Targets.Create(ctx, up.ID, &kong.Target{Target: kong.String("127.0.0.1:9001"), Weight: kong.Int(50)}); err != nil {
		t.Fatal(err)
	}
	svc, err := a.Services.Create(ctx, &kong.Service{Name: kong.String("tls-svc"), Protocol: kong.String("tls"), Host: kong.String("pool"),
		Port: kong.Int(9443), Retries: kong.Int(2), ConnectTimeout: kong.Int(3000), Tags: kong.StringSlice("sync")})
	if err != nil {
		t.Fatal(err)
	}
	route, err := a.Routes.Create(ctx, &kong.Route{Name: kong.String("tls-route"), Protocols: kong.StringSlice("tls"),
		SNIs: kong.StringSlice("sync.test"), Sources: []*kong.CIDRPort{{IP: kong.String("10.0.0.0/8")}},
		Destinations: []*kong.CIDRPort{{IP: kong.String("127.0.0.1"), Port: kong.Int(7443)}}, Service: &kong.Service{ID: svc.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Consumers.Create(ctx, &kong.Consumer{Username: kong.String("alice"), CustomID: kong.String("a-1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Plugins.Create(ctx, &kong.Plugin{Name: kong.String("ip-restriction"), Route: &kong.Route{ID: route.ID},
		Protocols: kong.StringSlice("tls"), Config: kong.Configuration{"allow": []any{"10.0.0.1"}}}); err != nil {
		t.Fatal(err)
	}

	// dump, from the other node, once it has the last entity synced
	var plugins []*kong.Plugin
	eventually(t, "node B lists the synced plugin", func() bool {
		plugins, err = b.Plugins.ListAll(ctx)
		return err == nil && len(plugins) == 1
	})
	if *plugins[0].Name != "ip-restriction" || *plugins[0].Route.ID != *route.ID || fmt.Sprint(plugins[0].Config["allow"]) != "[10.0.0.1]" {
		t.Errorf("dumped plugin: %+v", plugins[0])
	}
	services, err := b.Services.ListAll(ctx)
	if err != nil || len(services) != 1 {
		t.Fatalf("dumped services: %v, %v", services, err)
	}
	if s := services[0]; *s.ID != *svc.ID || *s.Protocol != "tls" || *s.Host != "pool" || *s.Port != 9443 || *s.Retries != 2 ||
		*s.ConnectTimeout != 3000 || len(s.Tags) != 1 || *s.Tags[0] != "sync" {
		t.Errorf("dumped service: %+v", s)
	}
	routes, err := b.Routes.ListAll(ctx)
	if err != nil || len(routes) != 1 {
		t.Fatalf("dumped routes: %v, %v", routes, err)
	}
	if r := routes[0]; *r.Name != "tls-route" || *r.Service.ID != *svc.ID || len(r.SNIs) != 1 || *r.SNIs[0] != "sync.test" ||
		len(r.Sources) != 1 || *r.Sources[0].IP != "10.0.0.0/8" || len(r.Destinations) != 1 ||
		*r.Destinations[0].IP != "127.0.0.1" || *r.Destinations[0].Port != 7443 {
		t.Errorf("dumped route: %+v", r)
	}
	ups, err := b.Upstreams.ListAll(ctx)
	if err != nil || len(ups) != 1 || *ups[0].Algorithm != "least-connections" || *ups[0].Healthchecks.Passive.Unhealthy.TCPFailures != 2 {
		t.Errorf("dumped upstreams: %v, %v", ups, err)
	}
	targets, err := b.Targets.ListAll(ctx, up.ID)
	if err != nil || len(targets) != 1 || *targets[0].Target != "127.0.0.1:9001" || *targets[0].Weight != 50 {
		t.Errorf("dumped targets: %v, %v", targets, err)
	}
	certs, err := b.Certificates.ListAll(ctx)
	if err != nil || len(certs) != 1 || *certs[0].ID != *cert.ID || strings.TrimSpace(*certs[0].Cert) != strings.TrimSpace(leaf.certPEM) ||
		len(certs[0].SNIs) != 1 || *certs[0].SNIs[0] != "sync.test" {
		t.Errorf("dumped certificates: %v, %v", certs, err)
	}
	cas, err := b.CACertificates.ListAll(ctx)
	if err != nil || len(cas) != 1 || strings.TrimSpace(*cas[0].Cert) != strings.TrimSpace(ca.certPEM) {
		t.Errorf("dumped CA certificates: %v, %v", cas, err)
	}
	consumers, err := b.Consumers.ListAll(ctx)
	if err != nil || len(consumers) != 1 || *consumers[0].Username != "alice" || *consumers[0].CustomID != "a-1" {
		t.Errorf("dumped consumers: %v, %v", consumers, err)
	}
}
