package spec

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// clusterNodes bootstraps a database, imports yml into it (routes whose
// destinations name ports of both nodes), and starts two nodes on it,
// each listening on its own ports (b is nil without ports).
func clusterNodes(t *testing.T, yml string, portsA, portsB []int) (a, b *gong, connString string) {
	t.Helper()
	pg, db := postgresDB(t)
	bootstrapDB(t, pg, db)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kong.conf"), "prefix = "+dir+"\n"+dbConf(pg, db))
	writeFile(t, filepath.Join(dir, "kong.yml"), yml)
	if out, errOut, code := runGong(t, dir, nil, "config", "db_import", "kong.yml", "-c", "kong.conf"); code != 0 {
		t.Fatalf("db_import: exit %d, %s %s", code, out, errOut)
	}
	listen := func(ports []int) string {
		s := "stream_listen = "
		for i, p := range ports {
			if i > 0 {
				s += ", "
			}
			s += fmt.Sprintf("127.0.0.1:%d", p)
		}
		return s + "\n"
	}
	a = startGong(t, dbConf(pg, db)+listen(portsA), `_format_version: "3.0"`)
	if len(portsB) > 0 {
		b = startGong(t, dbConf(pg, db)+listen(portsB), `_format_version: "3.0"`)
	}
	return a, b, pg.ConnString(db)
}

// clusterRoute is a route of service e on the given ports with a
// rate-limiting entry of policy cluster.
func clusterRoute(name, config string, ports ...int) string {
	dest := ""
	for _, p := range ports {
		dest += fmt.Sprintf("{port: %d}, ", p)
	}
	return fmt.Sprintf(`      - name: %s
        protocols: [tcp]
        destinations: [%s]
        plugins: [{name: rate-limiting, config: {%s, policy: cluster}}]
`, name, dest[:len(dest)-2], config)
}

// TestRateLimitingClusterTwoNodes: two nodes on one PostgreSQL share
// policy cluster's counters in Kong's ratelimiting_metrics table: per
// minute, 5 connections to each node on a limit of 6 leave 6 proxied;
// per second, 3 to each on a limit of 3 within one second leave 3.
func TestRateLimitingClusterTwoNodes(t *testing.T) {
	echo, dialled := countingEcho(t)
	mA, mB, sA, sB := listenPort(t), listenPort(t), listenPort(t), listenPort(t)
	yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n  - name: e\n    url: tcp://%s\n    routes:\n", echo) +
		clusterRoute("per-minute", "minute: 6", mA, mB) + clusterRoute("per-second", "second: 3", sA, sB)
	_, _, connString := clusterNodes(t, yml, []int{mA, sA}, []int{mB, sB})

	awaitMinuteRoom()
	proxied := 0
	for i := range 10 {
		port := mA
		if i%2 == 1 {
			port = mB
		}
		if tryEcho(t, fmt.Sprintf("127.0.0.1:%d", port)) {
			proxied++
		}
	}
	if proxied != 6 || dialled.Load() != 6 {
		t.Fatalf("per minute: %d of 10 proxied (%d upstream connections) by two nodes sharing a limit of 6", proxied, dialled.Load())
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var value int
	var ttlLeft float64
	err = conn.QueryRow(ctx, `SELECT value, extract(epoch FROM ttl - CURRENT_TIMESTAMP) FROM ratelimiting_metrics
		WHERE period = 'minute' AND period_date = date_trunc('minute', CURRENT_TIMESTAMP)`).Scan(&value, &ttlLeft)
	if err != nil || value != 6 || ttlLeft <= 0 || ttlLeft > 60 {
		t.Errorf("the minute's ratelimiting_metrics row: value %d, ttl in %.1fs, %v; want 6, within a minute", value, ttlLeft, err)
	}

	proxied = inOneSecond(t, func() int {
		n := 0
		for i := range 6 {
			port := sA
			if i%2 == 1 {
				port = sB
			}
			if tryEcho(t, fmt.Sprintf("127.0.0.1:%d", port)) {
				n++
			}
		}
		return n
	})
	if proxied != 3 {
		t.Fatalf("per second: %d of 6 proxied by two nodes sharing a limit of 3", proxied)
	}
}

// TestRateLimitingClusterDatabaseDown: with PostgreSQL stopped,
// fault_tolerant lets sessions through (the error logged once), and
// without it they end with 500.
func TestRateLimitingClusterDatabaseDown(t *testing.T) {
	echo, _ := countingEcho(t)
	pT, pS := listenPort(t), listenPort(t)
	yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n  - name: e\n    url: tcp://%s\n    routes:\n", echo) +
		clusterRoute("tolerant", "hour: 100", pT) + clusterRoute("strict", "hour: 100, fault_tolerant: false", pS)
	a, _, _ := clusterNodes(t, yml, []int{pT, pS}, nil)
	tolerant, strict := fmt.Sprintf("127.0.0.1:%d", pT), fmt.Sprintf("127.0.0.1:%d", pS)
	if !tryEcho(t, tolerant) || !tryEcho(t, strict) {
		t.Fatalf("refused with the database up\n%s", a.errLog)
	}
	if err := pgServer.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			pgServer.Start()
		}
	})
	for range 3 {
		if !tryEcho(t, tolerant) {
			t.Fatal("fault_tolerant refused a session with the database down")
		}
		if tryEcho(t, strict) {
			t.Fatal("fault_tolerant=false let a session through with the database down")
		}
	}
	restarted = true
	if err := pgServer.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "strict proxies once the database is back", func() bool { return tryEcho(t, strict) })
	if got := accessStatuses(t, a); got["500"] != 3 {
		t.Errorf("access-log statuses %v; want 3×500", got)
	}
	if n := strings.Count(a.errLog.String(), "counter store postgres: "); n != 1 {
		t.Errorf("the store error was logged %d times, want once per interval:\n%s", n, a.errLog)
	}
}
