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
	port1, port2 := freePort(t), freePort(t)
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
