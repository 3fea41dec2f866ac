package spec

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kong/go-kong/kong"

	"github.com/gong-proxy/gong/pdk"
)

// healthYML: upstream pool (passive checks only, so that nothing but
// the Admin API changes health while no session fails) with targets a
// and b behind port p; upstream probed with active checks on target a;
// upstream plain without checks behind service c.
func healthYML(a, b string, p, pc int) string {
	return fmt.Sprintf(`_format_version: "3.0"
upstreams:
  - name: pool
    healthchecks:
      passive: {unhealthy: {tcp_failures: 3}}
    targets: [{target: "%[1]s"}, {target: "%[2]s"}]
  - name: probed
    healthchecks:
      active:
        type: tcp
        healthy: {interval: 0.05, successes: 1}
        unhealthy: {interval: 0.05, tcp_failures: 1}
    targets: [{target: "%[1]s"}]
  - name: plain
    targets: [{target: "%[1]s"}]
services:
  - name: s
    url: tcp://pool
    routes: [{protocols: [tcp], destinations: [{port: %[3]d}]}]
  - name: c
    url: tcp://plain
    routes: [{protocols: [tcp], destinations: [{port: %[4]d}]}]
`, a, b, p, pc)
}

// targetHealth is a target's health in GET /upstreams/{u}/health.
func targetHealth(t *testing.T, base, upstream, target string) string {
	t.Helper()
	code, body := get(t, base+"/upstreams/"+upstream+"/health")
	if code != http.StatusOK {
		t.Fatalf("GET /upstreams/%s/health: %d %v", upstream, code, body)
	}
	data, _ := body["data"].([]any)
	for _, d := range data {
		if m, _ := d.(map[string]any); m["target"] == target {
			h, _ := m["health"].(string)
			return h
		}
	}
	t.Fatalf("GET /upstreams/%s/health: no target %s in %v", upstream, target, body)
	return ""
}

// TestTargetHealthByHand: go-kong's MarkUnhealthy takes a target out of
// the balancer and MarkHealthy brings it back; plain PUTs do the same per
// address and by id; Kong's 404s and 400s otherwise; health checks go on
// from a health set by hand.
func TestTargetHealthByHand(t *testing.T) {
	t.Parallel()
	a, b := startEcho(t, "a"), startEcho(t, "b")
	p, pc := listenPort(t), listenPort(t)
	g, base := startAdmin(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", p, pc), healthYML(a, b, p, pc))
	client, err := kong.NewClient(kong.String(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	proxy := fmt.Sprintf("127.0.0.1:%d", p)
	if seen := answers(t, proxy, 6); seen["a"] == 0 || seen["b"] == 0 {
		t.Fatalf("before: %v; want both targets", seen)
	}

	if err := client.Targets.MarkUnhealthy(ctx, kong.String("pool"), &kong.Target{Target: kong.String(b)}); err != nil {
		t.Fatalf("MarkUnhealthy: %v", err)
	}
	if seen := answers(t, proxy, 6); seen["a"] != 6 {
		t.Errorf("b marked unhealthy: %v; want only a", seen)
	}
	if h := targetHealth(t, base, "pool", b); h != "UNHEALTHY" {
		t.Errorf("b's health after MarkUnhealthy: %s; want UNHEALTHY", h)
	}
	if err := client.Targets.MarkHealthy(ctx, kong.String("pool"), &kong.Target{Target: kong.String(b)}); err != nil {
		t.Fatalf("MarkHealthy: %v", err)
	}
	if seen := answers(t, proxy, 6); seen["b"] == 0 {
		t.Errorf("b marked healthy: %v; want traffic to b again", seen)
	}

	// Kong's own method is PUT; by id, and for one address of the target.
	targets, _, err := client.Targets.List(ctx, kong.String("pool"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var aID string
	for _, tg := range targets {
		if *tg.Target == a {
			aID = *tg.ID
		}
	}
	put := func(path string) (int, map[string]any) {
		t.Helper()
		return call(t, http.MethodPut, base+path, nil, "")
	}
	if code, body := put("/upstreams/pool/targets/" + aID + "/unhealthy"); code != http.StatusNoContent {
		t.Fatalf("PUT by id: %d %v; want 204", code, body)
	}
	if seen := answers(t, proxy, 6); seen["b"] != 6 {
		t.Errorf("a marked unhealthy by id: %v; want only b", seen)
	}
	if code, body := put("/upstreams/pool/targets/" + url.PathEscape(a) + "/" + url.PathEscape(a) + "/healthy"); code != http.StatusNoContent {
		t.Fatalf("PUT of an address: %d %v; want 204", code, body)
	}
	if h := targetHealth(t, base, "pool", a); h != "HEALTHY" {
		t.Errorf("a's health after its address was marked healthy: %s; want HEALTHY", h)
	}

	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/upstreams/nope/targets/" + a + "/unhealthy", 404, "Not found"},
		{"/upstreams/pool/targets/127.0.0.1:1/unhealthy", 404, "Not found"},
		{"/upstreams/probed/targets/" + b + "/unhealthy", 404, "Not found"}, // b belongs to pool only
		{"/upstreams/plain/targets/" + a + "/unhealthy", 400, "no healthchecker found for plain"},
	} {
		if code, body := put(tc.path); code != tc.code || body["message"] != tc.msg {
			t.Errorf("PUT %s: %d %v; want %d %q", tc.path, code, body, tc.code, tc.msg)
		}
	}
	// Other methods answer Kong's 405, and leave the health as it was.
	for _, method := range []string{http.MethodGet, http.MethodDelete, http.MethodPatch} {
		for _, path := range []string{"/upstreams/pool/targets/" + a + "/unhealthy", "/upstreams/pool/targets/" + a + "/" + a + "/healthy"} {
			if code, body := call(t, method, base+path, nil, ""); code != http.StatusMethodNotAllowed || body["message"] != "Method not allowed" {
				t.Errorf("%s %s: %d %v; want 405 Method not allowed", method, path, code, body)
			}
		}
	}
	if h := targetHealth(t, base, "pool", a); h != "HEALTHY" {
		t.Errorf("a's health after refused methods: %s; want HEALTHY", h)
	}
	if seen := answers(t, fmt.Sprintf("127.0.0.1:%d", pc), 2); seen["a"] != 2 {
		t.Errorf("upstream without checks after a refused mark: %v; want a", seen)
	}

	// Active checks change a health set by hand when they disagree.
	if code, body := put("/upstreams/probed/targets/" + a + "/unhealthy"); code != http.StatusNoContent {
		t.Fatalf("PUT on probed: %d %v", code, body)
	}
	eventually(t, "the active check to bring a back", func() bool {
		return strings.Contains(g.errLog.String(), "set through the Admin API: "+a+" is unhealthy") &&
			targetHealth(t, base, "probed", a) == "HEALTHY"
	})
}

// TestOneKongVersion: GET / and kong.version report the same release.
func TestOneKongVersion(t *testing.T) {
	t.Parallel()
	_, base := startAdmin(t, "", `_format_version: "3.0"`)
	client, err := kong.NewClient(kong.String(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := client.Info.Get(context.Background())
	if err != nil || info.Version != pdk.KongVersion {
		t.Fatalf("Info.Get: version %v, %v; want %s, kong.version's", info.Version, err, pdk.KongVersion)
	}
}
