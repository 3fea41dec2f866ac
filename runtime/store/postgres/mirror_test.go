package postgres

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"testing"
	"time"

	"github.com/gong-proxy/gong/runtime/declarative"
)

const (
	nodeA = "11111111-1111-4111-8111-111111111111"
	nodeB = "22222222-2222-4222-8222-222222222222"
)

// selfSigned is a certificate and key for cn, in PEM.
func selfSigned(t *testing.T, cn string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

// exported is a configuration as the flat document db_export would
// write, for comparisons.
func exported(t *testing.T, cfg *declarative.Config) string {
	t.Helper()
	data, err := json.Marshal(cfg.Document().Entities)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func databaseName(t *testing.T, s *Store) string {
	var name string
	if err := s.write.QueryRow(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

// fullLoad is the configuration a node starting now reads.
func fullLoad(t *testing.T, database string, opts declarative.Options) *declarative.Config {
	t.Helper()
	cfg, _, err := openStore(t, database, "33333333-3333-4333-8333-333333333333").Config(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// catchUpB polls until node b has pending events, then applies them.
func catchUpB(t *testing.T, b *Store, opts declarative.Options) *declarative.Config {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; {
		changed, _, err := b.pollPending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if changed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node B saw no event within 10s")
		}
	}
	cfg, _, err := b.Config(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Each kind of change written on node A reaches node B as that change
// alone: B reads the changed rows only, and its configuration equals a
// fresh full load, as does A's.
func TestMirrorFollowsOtherNodesChanges(t *testing.T) {
	ctx := context.Background()
	opts := declarative.Options{}
	a := bootstrapped(t, nodeA)
	database := databaseName(t, a)
	b := openStore(t, database, nodeB)
	if _, _, err := b.Config(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.pollPending(ctx); err != nil {
		t.Fatal(err)
	}
	const (
		svc    = "bbbbbbbb-0000-4000-8000-000000000001"
		svc2   = "bbbbbbbb-0000-4000-8000-000000000002"
		route  = "cccccccc-0000-4000-8000-000000000001"
		route2 = "cccccccc-0000-4000-8000-000000000002"
		plugin = "dddddddd-0000-4000-8000-000000000001"
		cert   = "eeeeeeee-0000-4000-8000-000000000001"
		up     = "ffffffff-0000-4000-8000-000000000001"
	)
	certPEM, keyPEM := selfSigned(t, "a.test")
	certPEM2, keyPEM2 := selfSigned(t, "a.test")
	// changed replaces fields of an entity, as a PATCH does.
	changed := func(d *declarative.Document, typ, id string, fields map[string]any) {
		e := maps.Clone(d.Find(typ, id))
		maps.Copy(e, fields)
		delete(e, "updated_at")
		d.Set(typ, e)
	}
	steps := []struct {
		name string
		edit func(d *declarative.Document)
	}{
		{"service and route added", func(d *declarative.Document) {
			d.Set("services", map[string]any{"id": svc, "name": "echo", "url": "tcp://127.0.0.1:9000"})
			d.Set("routes", map[string]any{"id": route, "protocols": []any{"tcp"}, "destinations": []any{map[string]any{"port": 7000}}, "service": svc})
		}},
		{"second service and route added", func(d *declarative.Document) {
			d.Set("services", map[string]any{"id": svc2, "name": "two", "url": "tcp://127.0.0.1:9001"})
			d.Set("routes", map[string]any{"id": route2, "name": "r2", "protocols": []any{"tcp"}, "destinations": []any{map[string]any{"port": 7001}}, "service": svc2})
		}},
		{"route deleted", func(d *declarative.Document) { d.Remove("routes", route2) }},
		{"service host changed", func(d *declarative.Document) { changed(d, "services", svc, map[string]any{"host": "127.0.0.2"}) }},
		{"plugin enabled on the route", func(d *declarative.Document) {
			d.Set("plugins", map[string]any{"id": plugin, "name": "ip-restriction", "route": route, "protocols": []any{"tcp"},
				"config": map[string]any{"deny": []any{"10.0.0.1"}}})
		}},
		{"plugin config changed", func(d *declarative.Document) {
			changed(d, "plugins", plugin, map[string]any{"config": map[string]any{"deny": []any{"10.0.0.2"}}})
		}},
		{"certificate and SNI added", func(d *declarative.Document) {
			d.Set("certificates", map[string]any{"id": cert, "cert": certPEM, "key": keyPEM})
			d.Set("snis", map[string]any{"id": "eeeeeeee-0000-4000-8000-000000000002", "name": "a.test", "certificate": cert})
		}},
		{"certificate replaced", func(d *declarative.Document) {
			changed(d, "certificates", cert, map[string]any{"cert": certPEM2, "key": keyPEM2})
		}},
		{"upstream and targets added", func(d *declarative.Document) {
			d.Set("upstreams", map[string]any{"id": up, "name": "up"})
			d.Set("targets", map[string]any{"id": "ffffffff-0000-4000-8000-000000000002", "upstream": up, "target": "127.0.0.1:9000"})
			d.Set("targets", map[string]any{"id": "ffffffff-0000-4000-8000-000000000003", "upstream": up, "target": "127.0.0.1:9001"})
		}},
		{"upstream removed with its targets", func(d *declarative.Document) { d.Remove("upstreams", up) }},
		{"service removed with the route's plugin", func(d *declarative.Document) {
			d.Remove("routes", route)
			d.Remove("services", svc)
		}},
	}
	loads := func() int { b.mirror.mu.Lock(); defer b.mirror.mu.Unlock(); return b.mirror.loads }
	for _, step := range steps {
		cfgA, err := a.Modify(ctx, opts, func(d *declarative.Document) error { step.edit(d); return nil })
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		before := loads()
		cfgB := catchUpB(t, b, opts)
		if loads() != before {
			t.Errorf("%s: node B read everything again; want the changed rows only", step.name)
		}
		want := exported(t, fullLoad(t, database, opts))
		if got := exported(t, cfgB); got != want {
			t.Errorf("%s: node B's configuration differs from a full load:\n got %s\nwant %s", step.name, got, want)
		}
		if got := exported(t, cfgA); got != want {
			t.Errorf("%s: node A's configuration differs from a full load:\n got %s\nwant %s", step.name, got, want)
		}
	}
}

// A change B cannot map to rows (Kong's cache key by other fields, here
// a type-wide event) makes B read everything again.
func TestMirrorReadsEverythingOnUnknownEvents(t *testing.T) {
	ctx := context.Background()
	opts := declarative.Options{}
	a := bootstrapped(t, nodeA)
	database := databaseName(t, a)
	if _, err := a.Modify(ctx, opts, func(d *declarative.Document) error {
		d.Set("services", map[string]any{"id": "bbbbbbbb-0000-4000-8000-000000000001", "name": "echo", "url": "tcp://127.0.0.1:9000"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b := openStore(t, database, nodeB)
	if _, _, err := b.Config(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.pollPending(ctx); err != nil {
		t.Fatal(err)
	}
	// As Kong's node would: the row, then an event B cannot map to it.
	if _, err := a.write.Exec(ctx, `UPDATE services SET host = 'kong.test'`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.write.Exec(ctx, `INSERT INTO cluster_events (id, node_id, at, channel, data, expire_at)
		VALUES (gen_random_uuid(), gen_random_uuid(), clock_timestamp() AT TIME ZONE 'UTC', $1, 'services', now() + interval '1 hour')`,
		InvalidationsChannel); err != nil {
		t.Fatal(err)
	}
	cfg := catchUpB(t, b, opts)
	if b.mirror.loads != 2 || cfg.Services[0].Host != "kong.test" {
		t.Errorf("after an unknown event: %d full loads, host %q; want 2 and kong.test", b.mirror.loads, cfg.Services[0].Host)
	}
	// A write of more than maxEntityEvents entities announces its types.
	if _, err := a.Modify(ctx, opts, func(d *declarative.Document) error {
		for i := range maxEntityEvents + 1 {
			d.Set("services", map[string]any{"id": fmt.Sprintf("bbbbbbbb-1111-4000-8000-%012d", i), "name": fmt.Sprintf("s%d", i), "url": "tcp://127.0.0.1:9000"})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cfg = catchUpB(t, b, opts)
	if b.mirror.loads != 3 || exported(t, cfg) != exported(t, fullLoad(t, database, opts)) {
		t.Errorf("after a large write: %d full loads, %d services; want 3 and a full load's", b.mirror.loads, len(cfg.Services))
	}
}

// A write on A wakes B's watch through NOTIFY long before B's next poll,
// also after B's listening connection was lost and opened again.
func TestWatchWakesOnNotify(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := bootstrapped(t, nodeA)
	b := openStore(t, databaseName(t, a), nodeB)
	b.db.UpdateFrequency = time.Hour
	changes := make(chan struct{}, 10)
	go b.Watch(ctx, WatchOptions{OnChange: func() { changes <- struct{}{} }, MaxBackoff: 100 * time.Millisecond})
	listener := func() (pid int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; {
			err := a.write.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'").Scan(&pid)
			if err == nil {
				return pid
			}
			if time.Now().After(deadline) {
				t.Fatal("node B is not listening after 10s")
			}
		}
	}
	write := func(name string) {
		t.Helper()
		if _, err := a.Modify(ctx, declarative.Options{}, func(d *declarative.Document) error {
			d.Set("services", map[string]any{"id": "bbbbbbbb-0000-4000-8000-000000000001", "name": name, "url": "tcp://127.0.0.1:9000"})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-changes:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: node B saw no change within 10s though A notified (its poll is an hour away)", name)
		}
	}
	pid := listener()
	write("first")
	if _, err := a.write.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); listener() == pid; {
		if time.Now().After(deadline) {
			t.Fatal("the terminated listening connection is still there after 10s")
		}
	}
	write("after-reconnection")
}
