package spec

import (
	"encoding/json"
	"strings"
	"testing"
)

// Each kind of change made through node A's Admin API reaches node B, and
// B then lists what A lists; at the end both list what a node started
// afresh on the database lists (a full load).
func TestDatabaseChangesReachNodeBAsAFullLoad(t *testing.T) {
	pg, db := postgresDB(t)
	bootstrapDB(t, pg, db)
	_, adminA := startAdmin(t, dbConf(pg, db), `_format_version: "3.0"`)
	_, adminB := startAdmin(t, dbConf(pg, db), `_format_version: "3.0"`)
	state := func(admin string) string {
		var all []any
		for _, path := range []string{"/services", "/routes", "/plugins", "/certificates", "/snis"} {
			code, body := call(t, "GET", admin+path, nil, "")
			if code != 200 {
				t.Fatalf("GET %s: %d %v", path, code, body)
			}
			all = append(all, body["data"])
		}
		data, _ := json.Marshal(all)
		return string(data)
	}
	write := func(method, path, body string) map[string]any {
		t.Helper()
		code, got := call(t, method, adminA+path, strings.NewReader(body), "application/json")
		if code != 200 && code != 201 && code != 204 {
			t.Fatalf("%s %s: %d %v", method, path, code, got)
		}
		return got
	}
	leaf, leaf2 := newLeaf(t, "a.test", []string{"a.test"}, nil, true), newLeaf(t, "a.test", []string{"a.test"}, nil, true)
	pemJSON := func(s string) string { data, _ := json.Marshal(s); return string(data) }
	var pluginID, certID string
	steps := []struct {
		name string
		do   func()
	}{
		{"service added", func() { write("POST", "/services", `{"name": "s1", "url": "tcp://127.0.0.1:9000"}`) }},
		{"routes added", func() {
			write("POST", "/services/s1/routes", `{"name": "r1", "protocols": ["tcp"], "destinations": [{"port": 7001}]}`)
			write("POST", "/services/s1/routes", `{"name": "r2", "protocols": ["tcp"], "destinations": [{"port": 7002}]}`)
		}},
		{"route deleted", func() { write("DELETE", "/routes/r2", "") }},
		{"service host changed", func() { write("PATCH", "/services/s1", `{"host": "127.0.0.2"}`) }},
		{"plugin enabled", func() {
			pluginID, _ = write("POST", "/routes/r1/plugins", `{"name": "ip-restriction", "config": {"deny": ["10.0.0.1"]}}`)["id"].(string)
		}},
		{"plugin config changed", func() { write("PATCH", "/plugins/"+pluginID, `{"config": {"deny": ["10.0.0.2"]}}`) }},
		{"certificate added", func() {
			certID, _ = write("POST", "/certificates", `{"cert": `+pemJSON(leaf.certPEM)+`, "key": `+pemJSON(leaf.keyPEM)+`, "snis": ["a.test"]}`)["id"].(string)
		}},
		{"certificate replaced", func() {
			write("PATCH", "/certificates/"+certID, `{"cert": `+pemJSON(leaf2.certPEM)+`, "key": `+pemJSON(leaf2.keyPEM)+`}`)
		}},
	}
	for _, step := range steps {
		step.do()
		want := state(adminA)
		eventually(t, "node B lists what A lists after: "+step.name, func() bool { return state(adminB) == want })
	}
	_, adminC := startAdmin(t, dbConf(pg, db), `_format_version: "3.0"`)
	if got, want := state(adminB), state(adminC); got != want {
		t.Errorf("node B's entities differ from a full load:\n got %s\nwant %s", got, want)
	}
	if !strings.Contains(state(adminC), `"127.0.0.2"`) || !strings.Contains(state(adminC), "10.0.0.2") {
		t.Errorf("the full load lacks the changes: %s", state(adminC))
	}
}
