package spec

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kong/go-kong/kong"
	"go.yaml.in/yaml/v3"

	"github.com/gong-proxy/gong/internal/testsvc"
	"github.com/gong-proxy/gong/runtime/admin"
)

// adminYML is a configuration with every entity type the Admin API lists:
// services a (port pa) and b (port pb), an upstream with two targets, a
// certificate with an SNI, a CA certificate, a plugin and a consumer.
func adminYML(t *testing.T, a, b string, pa, pb int) string {
	t.Helper()
	ca := newCA(t, "admin test CA")
	leaf := newLeaf(t, "admin.test", []string{"admin.test"}, &ca, true)
	ha, porta := hostPort(a)
	return fmt.Sprintf(`_format_version: "3.0"
services:
  - name: a
    url: tcp://%s:%s
    tags: [team-x, blue]
    routes:
      - name: route-a
        protocols: [tcp]
        destinations: [{port: %d}]
        plugins:
          - name: ip-restriction
            config: { allow: [127.0.0.0/8] }
  - name: b
    host: pool
    port: 9
    protocol: tcp
    tags: [team-y]
    routes:
      - name: route-b
        protocols: [tcp]
        destinations: [{port: %d}]
  - name: c
    url: tcp://%s:%s
    tags: [team-x]
upstreams:
  - name: pool
    targets:
      - target: %s
      - target: 127.0.0.1:1
        weight: 0
certificates:
  - cert: %s    key: %s    snis: [{name: admin.test}]
ca_certificates:
  - cert: %sconsumers:
  - username: alice
`, ha, porta, pa, pb, ha, porta, b, yamlBlock(leaf.certPEM, 6), yamlBlock(leaf.keyPEM, 6), yamlBlock(ca.certPEM, 6))
}

// startAdmin starts gong with an Admin API on a loopback port and returns
// the API's base URL.
func startAdmin(t testing.TB, confExtra, yml string) (*gong, string) {
	t.Helper()
	g := startGong(t, "admin_listen = 127.0.0.1:0\n"+confExtra, yml)
	addrs := g.srv.APIAddrs("admin_listen")
	if len(addrs) == 0 {
		t.Fatal("no admin_listen address")
	}
	return g, "http://" + addrs[0].String()
}

// call sends a request to the Admin API and decodes its JSON answer.
func call(t testing.TB, method, u string, body io.Reader, contentType string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	data, _ := io.ReadAll(res.Body)
	if len(data) > 0 {
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s %s: not JSON: %q", method, u, data)
		}
	}
	return res.StatusCode, m
}

func get(t testing.TB, u string) (int, map[string]any) {
	t.Helper()
	return call(t, http.MethodGet, u, nil, "")
}

func TestAdminWithGoKong(t *testing.T) {
	t.Parallel()
	a, b := startEcho(t, "a"), startEcho(t, "b")
	pa, pb := listenPort(t), listenPort(t)
	_, base := startAdmin(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", pa, pb), adminYML(t, a, b, pa, pb))
	client, err := kong.NewClient(kong.String(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	info, err := client.Info.Get(ctx)
	if err != nil || info.Version == "" || info.Configuration.Database != "off" {
		t.Fatalf("Info.Get = %+v, %v", info, err)
	}
	if _, err := kong.ParseSemanticVersion(info.Version); err != nil {
		t.Errorf("version %q does not parse: %v", info.Version, err)
	}
	if st, err := client.Status(ctx); err != nil || st.ConfigurationHash == "" || st.Server.ConnectionsAccepted != 0 {
		t.Errorf("Status = %+v, %v", st, err)
	}

	services, err := client.Services.ListAll(ctx)
	if err != nil || len(services) != 3 {
		t.Fatalf("Services.ListAll = %d services, %v", len(services), err)
	}
	// Pages of one: three pages, the last without a next.
	var names []string
	for opt := (&kong.ListOpt{Size: 1}); opt != nil; {
		var page []*kong.Service
		page, opt, err = client.Services.List(ctx, opt)
		if err != nil || len(page) != 1 {
			t.Fatalf("Services.List page = %d, %v", len(page), err)
		}
		names = append(names, *page[0].Name)
	}
	if strings.Join(names, ",") != "a,b,c" {
		t.Errorf("paged services = %v, want a,b,c", names)
	}
	tagged, _, err := client.Services.List(ctx, &kong.ListOpt{Tags: kong.StringSlice("team-x", "blue"), MatchAllTags: true})
	if err != nil || len(tagged) != 1 || *tagged[0].Name != "a" {
		t.Errorf("services tagged team-x and blue = %v, %v", tagged, err)
	}
	either, _, err := client.Services.List(ctx, &kong.ListOpt{Tags: kong.StringSlice("team-x", "team-y")})
	if err != nil || len(either) != 3 {
		t.Errorf("services tagged team-x or team-y = %d, %v", len(either), err)
	}

	sa, err := client.Services.Get(ctx, kong.String("a"))
	if err != nil || *sa.Host != "127.0.0.1" {
		t.Fatalf("Services.Get(a) = %+v, %v", sa, err)
	}
	if byID, err := client.Services.Get(ctx, sa.ID); err != nil || *byID.Name != "a" {
		t.Errorf("Services.Get(id) = %+v, %v", byID, err)
	}
	if _, err := client.Services.Get(ctx, kong.String("nope")); !kong.IsNotFoundErr(err) {
		t.Errorf("Services.Get(nope) = %v, want not found", err)
	}
	routes, _, err := client.Routes.ListForService(ctx, kong.String("a"), nil)
	if err != nil || len(routes) != 1 || *routes[0].Name != "route-a" || *routes[0].Service.ID != *sa.ID {
		t.Errorf("Routes.ListForService(a) = %v, %v", routes, err)
	}
	if r, err := client.Routes.Get(ctx, kong.String("route-b")); err != nil || r.Destinations[0].Port == nil || *r.Destinations[0].Port != pb {
		t.Errorf("Routes.Get(route-b) = %+v, %v", r, err)
	}
	up, err := client.Upstreams.Get(ctx, kong.String("pool"))
	if err != nil {
		t.Fatal(err)
	}
	targets, _, err := client.Targets.List(ctx, up.Name, nil)
	if err != nil || len(targets) != 2 || *targets[0].Target != b || *targets[0].Upstream.ID != *up.ID {
		t.Errorf("Targets.List(pool) = %v, %v", targets, err)
	}
	health, _, err := client.UpstreamNodeHealth.List(ctx, up.Name, nil)
	if err != nil || len(health) != 2 || *health[0].Health != "HEALTHCHECKS_OFF" {
		t.Errorf("UpstreamNodeHealth.List(pool) = %v, %v", health, err)
	}
	certs, err := client.Certificates.ListAll(ctx)
	if err != nil || len(certs) != 1 || len(certs[0].SNIs) != 1 || *certs[0].SNIs[0] != "admin.test" {
		t.Errorf("Certificates.ListAll = %v, %v", certs, err)
	}
	if snis, err := client.SNIs.ListAll(ctx); err != nil || len(snis) != 1 || *snis[0].Certificate.ID != *certs[0].ID {
		t.Errorf("SNIs.ListAll = %v, %v", snis, err)
	}
	if cas, err := client.CACertificates.ListAll(ctx); err != nil || len(cas) != 1 {
		t.Errorf("CACertificates.ListAll = %v, %v", cas, err)
	}
	if cs, err := client.Consumers.Get(ctx, kong.String("alice")); err != nil || *cs.Username != "alice" {
		t.Errorf("Consumers.Get(alice) = %v, %v", cs, err)
	}
	plugins, err := client.Plugins.ListAll(ctx)
	if err != nil || len(plugins) != 1 || *plugins[0].Name != "ip-restriction" || *plugins[0].Route.ID != *routes[0].ID {
		t.Fatalf("Plugins.ListAll = %v, %v", plugins, err)
	}
	if forRoute, err := client.Plugins.ListAllForRoute(ctx, kong.String("route-a")); err != nil || len(forRoute) != 1 {
		t.Errorf("Plugins.ListAllForRoute(route-a) = %v, %v", forRoute, err)
	}
	schema, err := client.Plugins.GetFullSchema(ctx, kong.String("ip-restriction"))
	if err != nil || schema["fields"] == nil {
		t.Errorf("Plugins.GetFullSchema(ip-restriction) = %v, %v", schema, err)
	}
	ok, msg, err := client.Plugins.Validate(ctx, &kong.Plugin{Name: kong.String("ip-restriction"), Route: &kong.Route{ID: kong.String("0b6a3c8e-3c1d-4a51-9d1e-0c3b9f1a2b01")},
		Config: kong.Configuration{"allow": []any{"10.0.0.0/8"}}, Protocols: kong.StringSlice("tcp")})
	if err != nil || !ok {
		t.Errorf("Plugins.Validate(valid) = %v, %q, %v", ok, msg, err)
	}
	ok, msg, err = client.Plugins.Validate(ctx, &kong.Plugin{Name: kong.String("ip-restriction"),
		Config: kong.Configuration{"allow": []any{"not an ip"}}, Protocols: kong.StringSlice("tcp")})
	if err != nil || ok || !strings.Contains(msg, "config.allow") {
		t.Errorf("Plugins.Validate(invalid) = %v, %q, %v", ok, msg, err)
	}
	svcSchema, err := client.Schemas.Get(ctx, "services")
	if err != nil || svcSchema["fields"] == nil {
		t.Errorf("Schemas.Get(services) = %v, %v", svcSchema, err)
	}

	raw, err := client.Config(ctx)
	if err != nil || !strings.Contains(string(raw), "route-a") {
		t.Fatalf("Config = %q, %v", raw, err)
	}
	if err := client.ReloadDeclarativeRawConfig(ctx, strings.NewReader(string(raw)), true, true); err != nil {
		t.Errorf("ReloadDeclarativeRawConfig(the export, check_hash) = %v", err)
	}
	if _, err := client.Services.Create(ctx, &kong.Service{Name: kong.String("new"), Host: kong.String("h")}); err == nil ||
		!strings.Contains(err.Error(), "cannot create 'services' entities when not using a database") {
		t.Errorf("Services.Create = %v, want Kong's DB-less refusal", err)
	}
}

func TestAdminPlainHTTP(t *testing.T) {
	t.Parallel()
	a, b := startEcho(t, "a"), startEcho(t, "b")
	pa, pb := listenPort(t), listenPort(t)
	g, base := startAdmin(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", pa, pb), adminYML(t, a, b, pa, pb))

	code, root := get(t, base+"/")
	conf, _ := root["configuration"].(map[string]any)
	if code != 200 || root["node_id"] == "" || conf["database"] != "off" || conf["stream_listeners"] == nil {
		t.Errorf("GET / = %d %v", code, root)
	}
	code, page := get(t, base+"/services?size=2")
	if code != 200 || len(page["data"].([]any)) != 2 || page["next"] == nil || page["offset"] == nil {
		t.Fatalf("GET /services?size=2 = %d %v", code, page)
	}
	code, page = get(t, base+page["next"].(string))
	if data := page["data"].([]any); code != 200 || len(data) != 1 || data[0].(map[string]any)["name"] != "c" || page["next"] != nil {
		t.Errorf("next page = %d %v", code, page)
	}
	for path, want := range map[string]int{
		"/services?size=0":                         400,
		"/services?size=x":                         400,
		"/services?offset=!!":                      400,
		"/services?tags=a,b/c":                     400,
		"/services/a/routes/route-a":               200,
		"/services/b/routes/route-a":               404,
		"/routes/route-a/service":                  200,
		"/routes/route-a/plugins":                  200,
		"/upstreams/pool/targets/all":              200,
		"/upstreams/pool/health?balancer_health=1": 200,
		"/certificates/admin.test":                 200,
		"/certificates/admin.test/snis":            200,
		"/snis/admin.test/certificate":             200,
		"/targets":                                 404,
		"/plugins/enabled":                         200,
		"/schemas/plugins/ip-restriction":          200,
		"/schemas/plugins/nope":                    404,
		"/schemas/routes":                          200,
		"/schemas/nope":                            404,
		"/nope":                                    404,
	} {
		if code, body := get(t, base+path); code != want {
			t.Errorf("GET %s = %d %v, want %d", path, code, body, want)
		}
	}
	_, routeSvc := get(t, base+"/routes/route-a/service")
	if routeSvc["name"] != "a" {
		t.Errorf("GET /routes/route-a/service = %v", routeSvc)
	}
	for _, tc := range []struct{ method, path, verb, kind string }{
		{"POST", "/services", "create", "services"},
		{"PUT", "/routes/route-a", "create or update", "routes"},
		{"PATCH", "/services/a", "update", "services"},
		{"DELETE", "/consumers/alice", "remove", "consumers"},
		{"POST", "/services/a/routes", "create", "routes"},
	} {
		code, body := call(t, tc.method, base+tc.path, strings.NewReader("{}"), "application/json")
		want := fmt.Sprintf("cannot %s '%s' entities when not using a database", tc.verb, tc.kind)
		if code != 405 || body["message"] != want || body["code"] != 12.0 {
			t.Errorf("%s %s = %d %v, want 405 %q", tc.method, tc.path, code, body, want)
		}
	}
	// Every request is in admin_access_log, in nginx's combined format.
	g.stop()
	log, err := os.ReadFile(filepath.Join(g.dir, "logs", "admin_access.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `"GET /services?size=2 HTTP/1.1" 200 `) || !strings.Contains(string(log), `"POST /services HTTP/1.1" 405 `) {
		t.Errorf("admin_access_log:\n%s", log)
	}
}

// postConfig posts a declarative configuration as a raw body.
func postConfig(t *testing.T, base, query, config string) (int, map[string]any) {
	t.Helper()
	return call(t, http.MethodPost, base+"/config"+query, strings.NewReader(config), "text/yaml")
}

func TestAdminConfigRoundTrip(t *testing.T) {
	t.Parallel()
	a, b := startEcho(t, "a"), startEcho(t, "b")
	pa, pb := listenPort(t), listenPort(t)
	_, base := startAdmin(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", pa, pb), echoYML("a", a, pa))
	before := dial(t, fmt.Sprintf("127.0.0.1:%d", pa))
	if got, err := exchange(before, "one"); err != nil || got != "a: one" {
		t.Fatalf("before: %q, %v", got, err)
	}
	if _, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pb), "x"); err == nil {
		t.Fatal("port pb answered before any route used it")
	}

	// Export, add service b with a route on port pb, and post it back.
	_, exported := get(t, base+"/config")
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(exported["config"].(string)), &doc); err != nil {
		t.Fatalf("GET /config is not YAML: %v", err)
	}
	hb, pbs := hostPort(b)
	portb, _ := strconv.Atoi(pbs)
	doc["services"] = append(doc["services"].([]any), map[string]any{
		"name": "b", "protocol": "tcp", "host": hb, "port": portb,
		"routes": []any{map[string]any{"name": "route-b", "protocols": []any{"tcp"},
			"destinations": []any{map[string]any{"port": pb}}}},
	})
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	yml := string(data)
	code, body := postConfig(t, base, "", yml)
	if code != 201 {
		t.Fatalf("POST /config = %d %v", code, body)
	}
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pb), "new"); err != nil || got != "b: new" {
		t.Errorf("new route: %q, %v", got, err)
	}
	if got, err := exchange(before, "two"); err != nil || got != "a: two" {
		t.Errorf("the connection opened before the POST: %q, %v", got, err)
	}
	code, _ = postConfig(t, base, "?check_hash=1", yml)
	if code != 304 {
		t.Errorf("POST /config?check_hash=1 with the running configuration = %d, want 304", code)
	}
}

func TestAdminInvalidConfigKeepsServing(t *testing.T) {
	t.Parallel()
	a := startEcho(t, "a")
	pa := listenPort(t)
	_, base := startAdmin(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", pa), echoYML("a", a, pa))
	_, st := get(t, base+"/status")
	hash := st["configuration_hash"]

	bad := "_format_version: \"3.0\"\nservices:\n  - name: broken\n    protocol: nope\n    host: h\n"
	code, body := postConfig(t, base, "?flatten_errors=1", bad)
	if code != 400 || body["code"] != 14.0 || body["name"] != "invalid declarative configuration" ||
		!strings.HasPrefix(body["message"].(string), "declarative config is invalid: ") {
		t.Fatalf("POST invalid /config = %d %v", code, body)
	}
	flat, _ := body["flattened_errors"].([]any)
	if len(flat) != 1 || flat[0].(map[string]any)["entity_name"] != "broken" {
		t.Errorf("flattened_errors = %v", body["flattened_errors"])
	}
	if fields, _ := body["fields"].(map[string]any); fields["services"] == nil {
		t.Errorf("fields = %v", body["fields"])
	}
	if code, body := postConfig(t, base, "", ""); code != 400 || body["message"] != "expected a declarative configuration" {
		t.Errorf("POST empty /config = %d %v", code, body)
	}
	if got, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pa), "still"); err != nil || got != "a: still" {
		t.Errorf("after invalid POST: %q, %v", got, err)
	}
	if _, st := get(t, base+"/status"); st["configuration_hash"] != hash {
		t.Errorf("configuration_hash changed from %v to %v", hash, st["configuration_hash"])
	}
	// The config form parameter works as well, as a field or a file.
	form := url.Values{"config": {echoYML("a", a, pa)}}
	code, _ = call(t, http.MethodPost, base+"/config", strings.NewReader(form.Encode()), "application/x-www-form-urlencoded")
	if code != 201 {
		t.Errorf("POST /config as a form = %d", code)
	}
	var multi bytes.Buffer
	mw := multipart.NewWriter(&multi)
	fw, _ := mw.CreateFormFile("config", "kong.yml")
	io.WriteString(fw, echoYML("a", a, pa))
	mw.Close()
	if code, body := call(t, http.MethodPost, base+"/config", &multi, mw.FormDataContentType()); code != 201 {
		t.Errorf("POST /config with a file = %d %v", code, body)
	}
}

func TestAdminSessions(t *testing.T) {
	t.Parallel()
	a := startEcho(t, "a")
	pa := listenPort(t)
	_, base := startAdmin(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", pa), echoYML("a", a, pa))
	c := dial(t, fmt.Sprintf("127.0.0.1:%d", pa))
	if got, err := exchange(c, "hello"); err != nil || got != "a: hello" {
		t.Fatalf("exchange: %q, %v", got, err)
	}
	client := c.LocalAddr().String()
	var s map[string]any
	eventually(t, "the session with its bytes in GET /sessions", func() bool {
		_, page := get(t, base+"/sessions?service=a&client="+url.QueryEscape(client))
		if data := page["data"].([]any); len(data) == 1 {
			s = data[0].(map[string]any)
		}
		return s != nil && s["bytes_received"] == 6.0
	})
	if s["client"] != client || s["upstream"] != a || s["protocol"] != "tcp" || s["bytes_sent"] != 9.0 ||
		s["service"].(map[string]any)["name"] != "a" || s["route"] == nil {
		t.Errorf("session = %v", s)
	}
	if _, page := get(t, base+"/sessions?service=other"); len(page["data"].([]any)) != 0 {
		t.Errorf("GET /sessions?service=other = %v", page)
	}
	id := fmt.Sprint(int64(s["id"].(float64)))
	if code, _ := call(t, http.MethodDelete, base+"/sessions/"+id, nil, ""); code != 204 {
		t.Errorf("DELETE /sessions/%s = %d", id, code)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("client read after DELETE = %v, want EOF", err)
	}
	// The session ends (its log phase runs) just after the client sees
	// the close.
	eventually(t, "DELETE of the ended session to answer 404", func() bool {
		code, _ := call(t, http.MethodDelete, base+"/sessions/"+id, nil, "")
		return code == 404
	})
}

func TestAdminUpstreamHealth(t *testing.T) {
	t.Parallel()
	live := startEcho(t, "live")
	dead := testsvc.RefusedAddr(t)
	p := listenPort(t)
	yml := fmt.Sprintf(`_format_version: "3.0"
upstreams:
  - name: checked
    healthchecks:
      active:
        type: tcp
        healthy: {interval: 0.05, successes: 1}
        unhealthy: {interval: 0.05, tcp_failures: 1}
    targets: [{target: "%s"}, {target: "%s"}]
services:
  - name: s
    url: tcp://checked
    routes: [{protocols: [tcp], destinations: [{port: %d}]}]
`, dead, live, p)
	_, base := startAdmin(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\n", p), yml)
	eventually(t, "the dead target UNHEALTHY and the live one HEALTHY in GET /upstreams/checked/health", func() bool {
		_, page := get(t, base+"/upstreams/checked/health")
		states := map[string]any{}
		for _, e := range page["data"].([]any) {
			target := e.(map[string]any)
			states[target["target"].(string)] = target["health"]
			addrs := target["data"].(map[string]any)["addresses"].([]any)
			if len(addrs) != 1 || addrs[0].(map[string]any)["health"] != target["health"] {
				t.Fatalf("target %v: addresses %v", target["target"], addrs)
			}
		}
		return states[dead] == "UNHEALTHY" && states[live] == "HEALTHY"
	})
	if _, body := get(t, base+"/upstreams/checked/health?balancer_health=1"); body["data"].(map[string]any)["health"] != "HEALTHY" {
		t.Errorf("balancer_health = %v", body)
	}
}

func TestAdminExposedWarning(t *testing.T) {
	t.Parallel()
	g := startGong(t, "admin_listen = 0.0.0.0:0\n", `_format_version: "3.0"`)
	if !strings.Contains(g.errLog.String(), "is reachable from other hosts without TLS") {
		t.Errorf("no warning for an admin_listen on 0.0.0.0 without TLS:\n%s", g.errLog)
	}
	g = startGong(t, "admin_listen = 127.0.0.1:0\n", `_format_version: "3.0"`)
	if strings.Contains(g.errLog.String(), "reachable from other hosts") {
		t.Errorf("a warning for a loopback admin_listen:\n%s", g.errLog)
	}
}

func TestAdminToken(t *testing.T) {
	t.Parallel()
	_, base := startAdmin(t, "admin_token = s3cret\n", `_format_version: "3.0"`)
	if code, body := get(t, base+"/services"); code != 401 {
		t.Errorf("GET without the token = %d %v", code, body)
	}
	client, err := kong.NewClient(kong.String(base), kong.HTTPClientWithHeaders(nil, http.Header{admin.TokenHeader: {"s3cret"}}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Services.ListAll(context.Background()); err != nil {
		t.Errorf("go-kong with the token: %v", err)
	}
	bad, _ := kong.NewClient(kong.String(base), kong.HTTPClientWithHeaders(nil, http.Header{admin.TokenHeader: {"wrong"}}))
	if _, err := bad.Services.ListAll(context.Background()); err == nil {
		t.Error("go-kong with a wrong token succeeded")
	}
}

func TestAdminOverTLSWithClientCertificate(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "admin clients")
	clientCert := newLeaf(t, "operator", nil, &ca, true)
	dir := t.TempDir()
	caPath := filepath.Join(dir, "clients.pem")
	writeFile(t, caPath, ca.certPEM)
	g := startGong(t, "admin_listen = 127.0.0.1:0 ssl http2\nadmin_ssl_client_ca = "+caPath+"\n", `_format_version: "3.0"`)
	addr := g.srv.APIAddrs("admin_listen")[0].String()

	insecure := &tls.Config{InsecureSkipVerify: true}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: insecure}}
	if res, err := noCert.Get("https://" + addr + "/status"); err == nil {
		res.Body.Close()
		t.Errorf("a client without a certificate got %d", res.StatusCode)
	}
	withCert := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, Certificates: []tls.Certificate{clientCert.tls(t)}}}}
	res, err := withCert.Get("https://" + addr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.ProtoMajor != 2 {
		t.Errorf("GET /status over TLS = %d over HTTP/%d, want 200 over HTTP/2", res.StatusCode, res.ProtoMajor)
	}
	// Without admin_ssl_cert gong serves a default certificate it generated.
	served := false
	for _, name := range []string{"kong-default.crt", "kong-default-ecdsa.crt"} {
		data, err := os.ReadFile(filepath.Join(g.dir, "ssl", "admin", name))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(data)
		served = served || block != nil && bytes.Equal(block.Bytes, res.TLS.PeerCertificates[0].Raw)
	}
	if !served {
		t.Error("the admin listener did not serve a default certificate of the prefix")
	}
}

func TestStatusListen(t *testing.T) {
	t.Parallel()
	a := startEcho(t, "a")
	pa := listenPort(t)
	g := startGong(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nstatus_listen = 127.0.0.1:0\n", pa), echoYML("a", a, pa))
	base := "http://" + g.srv.APIAddrs("status_listen")[0].String()
	if _, err := roundTrip(fmt.Sprintf("127.0.0.1:%d", pa), "x"); err != nil {
		t.Fatal(err)
	}
	code, st := get(t, base+"/status")
	server, _ := st["server"].(map[string]any)
	if code != 200 || server["connections_accepted"] != 1.0 || st["configuration_hash"] == "" {
		t.Errorf("GET /status on status_listen = %d %v", code, st)
	}
	if code, _ := get(t, base+"/services"); code != 404 {
		t.Errorf("GET /services on status_listen = %d, want 404", code)
	}
	if code, body := get(t, base+"/status/ready"); code != 200 || body["message"] != "ready" {
		t.Errorf("GET /status/ready = %d %v", code, body)
	}
	empty := startGong(t, "declarative_config =\nstatus_listen = 127.0.0.1:0\n", "")
	if code, body := get(t, "http://"+empty.srv.APIAddrs("status_listen")[0].String()+"/status/ready"); code != 503 ||
		body["message"] != "no configuration available (empty configuration present)" {
		t.Errorf("GET /status/ready without a configuration = %d %v", code, body)
	}
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `service="a",source="service",workspace="default"} 1`) {
		t.Errorf("GET /metrics = %d, without the session proxied before:\n%s", res.StatusCode, body)
	}
}

func TestAdminUDPSessions(t *testing.T) {
	t.Parallel()
	echo := startUDPEcho(t, "u")
	p := listenPort(t)
	h, port := hostPort(echo)
	yml := fmt.Sprintf("_format_version: \"3.0\"\nservices:\n  - name: u\n    url: udp://%s:%s\n    routes:\n      - protocols: [udp]\n        destinations: [{port: %d}]\n", h, port, p)
	_, base := startAdmin(t, fmt.Sprintf("stream_listen = 127.0.0.1:%d udp\n", p), yml)
	c := dialUDP(t, fmt.Sprintf("127.0.0.1:%d", p))
	if got := udpAsk(t, c, "ping"); got != "u: ping" {
		t.Fatalf("UDP answer %q", got)
	}
	var s map[string]any
	eventually(t, "the UDP session with its bytes in GET /sessions", func() bool {
		_, page := get(t, base+"/sessions?protocol=udp")
		if data := page["data"].([]any); len(data) == 1 {
			s = data[0].(map[string]any)
		}
		return s != nil && s["bytes_sent"] == 7.0
	})
	if s["client"] != c.LocalAddr().String() || s["upstream"] != echo || s["bytes_received"] != 4.0 {
		t.Errorf("UDP session = %v", s)
	}
	id := fmt.Sprint(int64(s["id"].(float64)))
	if code, _ := call(t, http.MethodDelete, base+"/sessions/"+id, nil, ""); code != 204 {
		t.Errorf("DELETE /sessions/%s = %d", id, code)
	}
	eventually(t, "the UDP session gone from GET /sessions after DELETE", func() bool {
		_, page := get(t, base+"/sessions")
		return len(page["data"].([]any)) == 0
	})
}

func TestReloadAfterPostedConfig(t *testing.T) {
	t.Parallel()
	a, b := startEcho(t, "a"), startEcho(t, "b")
	pa, pb := listenPort(t), listenPort(t)
	listen := fmt.Sprintf("stream_listen = 127.0.0.1:%d, 127.0.0.1:%d\n", pa, pb)
	addrA, addrB := fmt.Sprintf("127.0.0.1:%d", pa), fmt.Sprintf("127.0.0.1:%d", pb)

	t.Run("declarative_config is read again", func(t *testing.T) {
		g, base := startAdmin(t, listen, echoYML("a", a, pa))
		if code, body := postConfig(t, base, "", echoYML("b", b, pb)); code != 201 {
			t.Fatalf("POST /config = %d %v", code, body)
		}
		if got, err := roundTrip(addrB, "x"); err != nil || got != "b: x" {
			t.Fatalf("posted route: %q, %v", got, err)
		}
		if err := g.srv.Reload(); err != nil {
			t.Fatal(err)
		}
		if got, err := roundTrip(addrA, "x"); err != nil || got != "a: x" {
			t.Errorf("after reload, the file's route: %q, %v", got, err)
		}
		if got, err := roundTrip(addrB, "x"); err == nil {
			t.Errorf("after reload, the posted route still answers %q", got)
		}
	})
	t.Run("without declarative_config the posted one stays", func(t *testing.T) {
		g, base := startAdmin(t, listen+"declarative_config =\n", "")
		if code, body := postConfig(t, base, "", echoYML("b", b, pb)); code != 201 {
			t.Fatalf("POST /config = %d %v", code, body)
		}
		if err := g.srv.Reload(); err != nil {
			t.Fatal(err)
		}
		if got, err := roundTrip(addrB, "x"); err != nil || got != "b: x" {
			t.Errorf("after reload, the posted route: %q, %v", got, err)
		}
	})
}

// BenchmarkAdminSessions measures GET /sessions with 1000 connections
// open through gong.
func BenchmarkAdminSessions(b *testing.B) {
	echo := startEcho(b, "e")
	p := listenPort(b)
	_, base := startAdmin(b, fmt.Sprintf("stream_listen = 127.0.0.1:%d\nproxy_stream_access_log = off\n", p), echoYML("e", echo, p))
	for range 1000 {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		if _, err := exchange(c, "x"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if code, page := get(b, base+"/sessions?size=1000"); code != 200 || len(page["data"].([]any)) != 1000 {
			b.Fatalf("GET /sessions = %d, %d sessions", code, len(page["data"].([]any)))
		}
	}
}
