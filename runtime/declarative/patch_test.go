package declarative

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
)

// patchBase is a document of n services with a route each, and its
// validated configuration.
func patchBase(t *testing.T, n int) (*Document, *Config) {
	t.Helper()
	d := &Document{Entities: map[string][]map[string]any{}}
	for i := range n {
		svc := fmt.Sprintf("bbbbbbbb-0000-4000-8000-%012d", i)
		d.Entities["services"] = append(d.Entities["services"], map[string]any{"id": svc, "name": fmt.Sprintf("s%d", i), "url": "tcp://127.0.0.1:9000"})
		d.Entities["routes"] = append(d.Entities["routes"], map[string]any{"id": fmt.Sprintf("cccccccc-0000-4000-8000-%012d", i),
			"name": fmt.Sprintf("r%d", i), "protocols": []any{"tcp"}, "destinations": []any{map[string]any{"port": 7000 + i}}, "service": svc})
	}
	fixStamps(d)
	data, _ := d.Marshal()
	cfg, err := Parse(data, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	return d, cfg
}

// fixStamps gives the entities fixed timestamps, which Parse would otherwise
// set to the current second.
func fixStamps(d *Document) {
	for _, list := range d.Entities {
		for _, e := range list {
			e["created_at"], e["updated_at"] = 1765000000, 1765000000
		}
	}
}

func configJSON(t *testing.T, cfg *Config) string {
	t.Helper()
	data, err := json.Marshal(cfg.Document().Entities)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// A patched configuration equals the whole edited document's, and the
// rules that cross entities hold against entities the edit did not touch.
func TestPatch(t *testing.T) {
	d, base := patchBase(t, 50)
	edit := d.Clone()
	route := maps.Clone(edit.Find("routes", "r7"))
	route["destinations"] = []any{map[string]any{"port": 9999}}
	edit.Set("routes", route)
	edit.Set("services", map[string]any{"id": "bbbbbbbb-1111-4000-8000-000000000000", "name": "new", "url": "tcp://127.0.0.1:9001"})
	edit.Remove("routes", "cccccccc-0000-4000-8000-000000000003")
	fixStamps(edit)
	got, err := Patch(base, edit, Options{})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := edit.Marshal()
	want, err := Parse(data, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if configJSON(t, got) != configJSON(t, want) {
		t.Errorf("Patch differs from Parse of the whole document:\n got %s\nwant %s", configJSON(t, got), configJSON(t, want))
	}
	if got.Services[10] != base.Services[10] {
		t.Error("an untouched service was validated again; want base's entity kept")
	}

	for name, tc := range map[string]struct {
		edit func(d *Document)
		want string
	}{
		"a name another entity has": {func(d *Document) {
			d.Set("services", map[string]any{"id": "bbbbbbbb-2222-4000-8000-000000000000", "name": "s42", "url": "tcp://127.0.0.1:9001"})
		}, "uniqueness violation: 'services' entity with name set to 's42' already declared"},
		"a reference to nothing": {func(d *Document) {
			d.Set("routes", map[string]any{"id": "cccccccc-2222-4000-8000-000000000000", "protocols": []any{"tcp"},
				"destinations": []any{map[string]any{"port": 1}}, "service": "bbbbbbbb-0000-4000-8000-00000000dead"})
		}, "invalid reference 'service: bbbbbbbb-0000-4000-8000-00000000dead'"},
		"a service its route still references removed": {func(d *Document) {
			d.Remove("services", "bbbbbbbb-0000-4000-8000-000000000005")
		}, "invalid reference 'service: bbbbbbbb-0000-4000-8000-000000000005'"},
	} {
		edit := d.Clone()
		tc.edit(edit)
		_, err := Patch(base, edit, Options{})
		var de *Error
		if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Patch() = %v; want an error with %q", name, err, tc.want)
		}
	}
}
