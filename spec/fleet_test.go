package spec

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kong/go-kong/kong"

	"github.com/gong-proxy/gong/internal/testsvc"
)

// fleetBound is how soon a change made on one node must carry traffic on
// the others: db_update_frequency (0.2s in dbConf) plus a rebuild, with a
// generous margin for a loaded machine running -race.
const fleetBound = 5 * time.Second

// fleetNode is one gong node of a fleet: its Admin API and its stream
// listener's address.
type fleetNode struct {
	g      *gong
	admin  string
	stream string
}

// startFleet bootstraps a database and starts n nodes on it, each with an
// Admin API and a stream listener on a port of its own; ports lists them
// all, for routes every node serves. It returns the database's name too.
func startFleet(t *testing.T, n int) (*testsvc.Postgres, string, []fleetNode, []int) {
	t.Helper()
	pg, db := postgresDB(t)
	bootstrapDB(t, pg, db)
	ports := make([]int, n)
	for i := range ports {
		ports[i] = listenPort(t)
	}
	nodes := make([]fleetNode, n)
	for i, p := range ports {
		g, admin := startAdmin(t, dbConf(pg, db)+fmt.Sprintf("stream_listen = 127.0.0.1:%d\nstatus_listen = 127.0.0.1:0\n", p), `_format_version: "3.0"`)
		nodes[i] = fleetNode{g: g, admin: admin, stream: fmt.Sprintf("127.0.0.1:%d", p)}
	}
	return pg, db, nodes, ports
}

// destinations is a route's destinations on every node's port.
func destinations(ports []int) []*kong.CIDRPort {
	out := make([]*kong.CIDRPort, len(ports))
	for i, p := range ports {
		out[i] = &kong.CIDRPort{Port: kong.Int(p)}
	}
	return out
}

// Three nodes on one database: a service, an upstream and a route
// created on A with go-kong carry traffic through B and C within the
// bound; a target marked unhealthy on A stops receiving connections
// through B and C (Kong's balancer:post_health event, no rebuild), and
// marked healthy again gets them back.
func TestDatabaseFleetRouteAndHealthMarks(t *testing.T) {
	_, _, nodes, ports := startFleet(t, 3)
	ctx := context.Background()
	client, err := kong.NewClient(kong.String(nodes[0].admin), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := startEcho(t, "a"), startEcho(t, "b")
	up, err := client.Upstreams.Create(ctx, &kong.Upstream{Name: kong.String("pool"),
		Healthchecks: &kong.Healthcheck{Passive: &kong.PassiveHealthcheck{Unhealthy: &kong.Unhealthy{TCPFailures: kong.Int(3)}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{a, b} {
		if _, err := client.Targets.Create(ctx, up.ID, &kong.Target{Target: kong.String(target)}); err != nil {
			t.Fatal(err)
		}
	}
	svc, err := client.Services.Create(ctx, &kong.Service{Name: kong.String("s"), Protocol: kong.String("tcp"), Host: kong.String("pool"), Port: kong.Int(9)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := client.Routes.Create(ctx, &kong.Route{Name: kong.String("r"), Protocols: kong.StringSlice("tcp"),
		Destinations: destinations(ports), Service: &kong.Service{ID: svc.ID}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		eventually(t, n.stream+" proxies the route created on A", func() bool {
			got, err := roundTrip(n.stream, "x")
			return err == nil && (got == "a: x" || got == "b: x")
		})
	}
	if d := time.Since(start); d > fleetBound {
		t.Errorf("the route reached B and C after %v; want within %v", d, fleetBound)
	}
	for _, n := range nodes {
		if seen := answers(t, n.stream, 8); seen["a"] == 0 || seen["b"] == 0 {
			t.Fatalf("%s before any mark: %v; want both targets", n.stream, seen)
		}
	}

	// Each step marks b on A and waits until B and C (and A at once)
	// route as the mark says, then checks that they keep doing so.
	for _, step := range []struct {
		mark   func(context.Context, *string, *kong.Target) error
		name   string
		wantB  func(seen map[string]int) bool
		expect string
	}{
		{client.Targets.MarkUnhealthy, "unhealthy", func(seen map[string]int) bool { return seen["b"] == 0 }, "only a"},
		{client.Targets.MarkHealthy, "healthy", func(seen map[string]int) bool { return seen["b"] > 0 }, "b again"},
	} {
		start := time.Now()
		if err := step.mark(ctx, kong.String("pool"), &kong.Target{Target: kong.String(b)}); err != nil {
			t.Fatalf("mark b %s on A: %v", step.name, err)
		}
		for i, n := range nodes {
			eventually(t, fmt.Sprintf("node %d routes %s once b is marked %s on A", i, step.expect, step.name), func() bool {
				return step.wantB(answers(t, n.stream, 8))
			})
		}
		d := time.Since(start)
		if d > fleetBound {
			t.Errorf("b marked %s on A reached every node after %v; want within %v", step.name, d, fleetBound)
		}
		t.Logf("b marked %s on A: every node routes accordingly after %v", step.name, d)
		for i, n := range nodes {
			if seen := answers(t, n.stream, 8); !step.wantB(seen) {
				t.Errorf("node %d after b was marked %s: %v; want %s", i, step.name, seen, step.expect)
			}
		}
	}
	// B and C applied the marks to their own balancers.
	for i, n := range nodes[1:] {
		n.g.waitErrLog(t, fmt.Sprintf("node %d logs the mark", i+1), "set through the Admin API: "+b+" is healthy")
	}
}

// adminWrite sends one Admin API request and returns its status and body.
func adminWrite(client *http.Client, method, url, body string) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	return res.StatusCode, string(data), err
}

// 1,000 concurrent Admin writes from 50 clients spread over three nodes,
// ten for each of 100 service names, so that writes on different nodes
// race for every name: each gets 201 or Kong's 409, one 201 per name,
// and afterwards every node lists exactly the services created, each
// once. (Every write validates every entity, so the names are few.)
func TestDatabaseFleetConcurrentWrites(t *testing.T) {
	_, _, nodes, _ := startFleet(t, 3)
	const writes, unique, workers = 1000, 100, 50
	var created, conflicts atomic.Int64
	var mu sync.Mutex
	var failures []string
	jobs := make(chan int)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				node := nodes[i%len(nodes)]
				name := fmt.Sprintf("svc-%d", i/(writes/unique))
				code, body, err := adminWrite(client, "POST", node.admin+"/services",
					fmt.Sprintf(`{"name":%q,"url":"tcp://127.0.0.1:%d"}`, name, 1000+i))
				switch {
				case err == nil && code == http.StatusCreated:
					created.Add(1)
				case err == nil && code == http.StatusConflict && strings.Contains(body, `"code":5`) &&
					strings.Contains(body, fmt.Sprintf(`UNIQUE violation detected on '{name=\"%s\"}'`, name)):
					conflicts.Add(1)
				default:
					mu.Lock()
					failures = append(failures, fmt.Sprintf("write %d (%s): %d %s %v", i, name, code, body, err))
					mu.Unlock()
				}
			}
		})
	}
	start := time.Now()
	for i := range writes {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	t.Logf("%d writes in %v", writes, time.Since(start))
	if len(failures) > 0 {
		t.Fatalf("%d writes got neither 201 nor Kong's 409, first: %s\nnode 0's log:\n%s", len(failures), failures[0], nodes[0].g.errLog)
	}
	if created.Load() != unique || conflicts.Load() != writes-unique {
		t.Errorf("%d created and %d conflicts; want %d and %d", created.Load(), conflicts.Load(), unique, writes-unique)
	}
	for i, n := range nodes {
		kc, err := kong.NewClient(kong.String(n.admin), nil)
		if err != nil {
			t.Fatal(err)
		}
		// Each node lists what the database holds once it has caught up.
		// The last rebuilds of a write storm can take longer than
		// eventually's 10s on a loaded machine.
		var names map[string]int
		var listed int
		var listErr error
		tick := time.NewTicker(50 * time.Millisecond)
		deadline := time.After(time.Minute)
		for {
			services, err := kc.Services.ListAll(context.Background())
			names, listed, listErr = map[string]int{}, len(services), err
			for _, s := range services {
				names[*s.Name]++
			}
			if err == nil && len(services) == unique {
				break
			}
			select {
			case <-tick.C:
			case <-deadline:
				t.Fatalf("node %d lists %d services (%v) a minute after the writes; want %d", i, listed, listErr, unique)
			}
		}
		tick.Stop()
		for j := range unique {
			if name := fmt.Sprintf("svc-%d", j); names[name] != 1 {
				t.Errorf("node %d lists %s %d times; want once", i, name, names[name])
			}
		}
	}
}

// The database stopped and restarted while a client keeps opening
// connections through node B: no connection fails; A's /status reports
// database.reachable false then true; Admin writes during the outage get
// Kong's 500 and leave nothing behind; changes flow again afterwards.
func TestDatabaseFleetOutageUnderTraffic(t *testing.T) {
	pg, _, nodes, ports := startFleet(t, 3)
	ctx := context.Background()
	client, svc := echoService(t, nodes[0].admin)
	if _, err := client.Routes.Create(ctx, &kong.Route{Name: kong.String("r"), Protocols: kong.StringSlice("tcp"),
		Destinations: destinations(ports), Service: &kong.Service{ID: svc.ID}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node B proxies the route", func() bool {
		got, err := roundTrip(nodes[1].stream, "x")
		return err == nil && got == "echo: x"
	})

	// The client: connection after connection through B until stop.
	stop := make(chan struct{})
	traffic := make(chan error, 1)
	var made atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				traffic <- nil
				return
			default:
			}
			if got, err := roundTrip(nodes[1].stream, "x"); err != nil || got != "echo: x" {
				traffic <- fmt.Errorf("connection %d through B: %q, %v", made.Load()+1, got, err)
				return
			}
			made.Add(1)
		}
	}()
	reachable := func(n fleetNode) any {
		_, body := call(t, "GET", n.admin+"/status", nil, "")
		db, _ := body["database"].(map[string]any)
		return db["reachable"]
	}

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A reports the database unreachable", func() bool { return reachable(nodes[0]) == false })
	leaf := newLeaf(t, "outage.test", []string{"outage.test"}, nil, true)
	for _, w := range []struct{ method, path, body string }{
		{"POST", "/services", `{"name":"during","url":"tcp://127.0.0.1:9"}`},
		// A certificate with its SNI is two rows: neither may land.
		{"POST", "/certificates", fmt.Sprintf(`{"cert":%q,"key":%q,"snis":["outage.test"]}`, leaf.certPEM, leaf.keyPEM)},
		{"PATCH", "/services/echo", `{"retries":1}`},
		{"DELETE", "/routes/r", ``},
	} {
		code, body, err := adminWrite(http.DefaultClient, w.method, nodes[2].admin+w.path, w.body)
		if err != nil || code != http.StatusInternalServerError || body != `{"message":"An unexpected error occurred"}` {
			t.Errorf("%s %s during the outage: %d %s %v; want 500 with Kong's body", w.method, w.path, code, body, err)
		}
	}
	before := made.Load()
	eventually(t, "connections keep flowing through B during the outage", func() bool { return made.Load() >= before+20 })
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		eventually(t, fmt.Sprintf("node %d reports the database reachable again", i), func() bool { return reachable(n) == true })
	}
	before = made.Load()
	eventually(t, "connections keep flowing through B after the outage", func() bool { return made.Load() >= before+20 })
	close(stop)
	if err := <-traffic; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d connections through B, none failed", made.Load())

	// Nothing of the refused writes landed.
	for path, want := range map[string]int{"/services": 1, "/certificates": 0, "/snis": 0, "/routes": 1} {
		code, body := call(t, "GET", nodes[0].admin+path, nil, "")
		if data, _ := body["data"].([]any); code != 200 || len(data) != want {
			t.Errorf("GET %s after the outage: %d %v; want %d entities", path, code, body, want)
		}
	}
	if code, body := call(t, "GET", nodes[0].admin+"/services/echo", nil, ""); code != 200 || body["retries"] != 5.0 {
		t.Errorf("the service after a PATCH refused during the outage: %d %v; want retries 5 as before", code, body)
	}
	// Changes flow again: a route deleted on A stops C's traffic.
	if err := client.Routes.Delete(ctx, kong.String("r")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node C drops the route deleted on A", func() bool {
		got, err := roundTrip(nodes[2].stream, "gone?")
		return err != nil || got == ""
	})
}

// gong's extension fields written through node A's Admin API are stored
// (in gong's own table), read back by node B, and go with their entity.
func TestDatabaseExtensionFieldsAcrossNodes(t *testing.T) {
	pg, db, nodes, _ := startFleet(t, 2)
	code, body := call(t, "POST", nodes[0].admin+"/services", strings.NewReader(`{"name":"pp","url":"tcp://127.0.0.1:9","proxy_protocol":true}`), "application/json")
	if code != http.StatusCreated || body["proxy_protocol"] != true {
		t.Fatalf("POST a service with proxy_protocol on A: %d %v", code, body)
	}
	code, body = call(t, "POST", nodes[0].admin+"/upstreams", strings.NewReader(`{"name":"u","udp_affinity_ttl":30}`), "application/json")
	if code != http.StatusCreated || body["udp_affinity_ttl"] != 30.0 {
		t.Fatalf("POST an upstream with udp_affinity_ttl on A: %d %v", code, body)
	}
	eventually(t, "node B reads the extension fields", func() bool {
		_, s := call(t, "GET", nodes[1].admin+"/services/pp", nil, "")
		_, u := call(t, "GET", nodes[1].admin+"/upstreams/u", nil, "")
		return s["proxy_protocol"] == true && u["udp_affinity_ttl"] == 30.0
	})
	code, body = call(t, "PATCH", nodes[1].admin+"/services/pp", strings.NewReader(`{"retries":1}`), "application/json")
	if code != http.StatusOK || body["proxy_protocol"] != true {
		t.Errorf("PATCH on B of another field: %d %v; want proxy_protocol kept", code, body)
	}
	if code, _ := call(t, "DELETE", nodes[1].admin+"/services/pp", nil, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE on B: %d", code)
	}
	conn, err := pgx.Connect(context.Background(), pg.ConnString(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var left []string
	if err := conn.QueryRow(context.Background(), "SELECT coalesce(array_agg(entity_name), '{}') FROM gong_entity_extensions").Scan(&left); err != nil ||
		len(left) != 1 || left[0] != "upstreams" {
		t.Errorf("gong_entity_extensions after the service's deletion holds %v (%v); want the upstream's row only", left, err)
	}
}
