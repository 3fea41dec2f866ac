package schema

import (
	"encoding/json"
	"testing"
)

// entity is a small Go-built entity with every kind of hook the core
// entities use: an auto id, defaults, a Go custom validator, a shorthand,
// a Go entity check and subschemas keyed by a field.
func entity() *Field {
	tcp := NewSubschema([]*Field{String("path").MustBeNull().Err("cannot set 'path' when 'kind' is 'tcp'")},
		func(rec map[string]any, errs Errors) {
			if rec["port"] == 0.0 {
				AddEntityError(errs, "tcp needs a port")
			}
		})
	http := NewSubschema(nil)
	return Record("",
		String("id").UUID().Auto(),
		String("kind").OneOf("tcp", "http").Required(),
		Integer("port").Between(0, 65535).Default(80.0),
		String("host").Custom(ValidateHost),
		String("path").StartsWith("/"),
		Set("tags", String("").Custom(ValidateTag)),
		Record("limits", Integer("max").Default(10.0)).Required(),
	).Checks(func(rec map[string]any, errs Errors) {
		if !HasError(errs, "host") && rec["host"] == "forbidden" {
			SetError(errs, "host", "host is forbidden")
		}
	}).Shorthand(func(rec map[string]any) Errors {
		if u, ok := rec["url"]; ok {
			delete(rec, "url")
			s, ok := u.(string)
			if !ok {
				return Errors{"url": "expected a string"}
			}
			rec["host"] = s
		}
		return nil
	}).Subschemas("kind", func(v any) *Subschema {
		switch v {
		case "tcp":
			return tcp
		case "http":
			return http
		}
		return nil
	}, func(v any) string { return "unknown kind: " + Tostring(v) })
}

func TestGoBuiltEntity(t *testing.T) {
	tests := []struct{ in, processed, errs string }{
		{`{"kind": "http", "url": "example.com", "tags": ["a", "a"]}`,
			`{"host":"example.com","kind":"http","limits":{"max":10},"path":null,"port":80,"tags":["a"]}`, `null`},
		{`{"kind": "tcp", "port": 0, "path": "/x"}`, ``,
			`{"@entity":["tcp needs a port"],"path":"cannot set 'path' when 'kind' is 'tcp'"}`},
		{`{"port": 1}`, ``, `{"kind":"required field missing"}`},
		{`{"kind": "udp"}`, ``, `{"kind":"unknown kind: udp"}`},
		{`{"kind": "http", "url": 1}`, ``, `{"url":"expected a string"}`},
		{`{"kind": "http", "host": "a:1", "port": 70000, "tags": ["a/b"], "x": 1}`, ``,
			`{"host":"must not have a port","port":"value should be between 0 and 65535","tags":{"1":"invalid tag 'a/b': expected printable ascii (except ` + "`,` and `/`" + `) or valid utf-8 sequences"},"x":"unknown field"}`},
		{`{"kind": "http", "host": "forbidden", "id": "nope"}`, ``,
			`{"host":"host is forbidden","id":"expected a valid UUID"}`},
	}
	e := entity()
	for _, tt := range tests {
		var in map[string]any
		if err := json.Unmarshal([]byte(tt.in), &in); err != nil {
			t.Fatal(err)
		}
		p, errs := e.Process(in)
		if errs == nil {
			errs = e.ValidateRecord(p)
		}
		got, _ := json.Marshal(errs)
		if string(got) != tt.errs {
			t.Errorf("%s: errors %s; want %s", tt.in, got, tt.errs)
		}
		if tt.processed != "" {
			if got, _ := json.Marshal(p); string(got) != tt.processed {
				t.Errorf("%s: processed %s; want %s", tt.in, got, tt.processed)
			}
		}
	}
}

func TestDescribeGoBuiltEntity(t *testing.T) {
	got, _ := json.Marshal(DescribeFields(entity().Fields()[:4]))
	want := `[{"id":{"auto":true,"type":"string","uuid":true}},` +
		`{"kind":{"one_of":["tcp","http"],"required":true,"type":"string"}},` +
		`{"port":{"between":[0,65535],"default":80,"type":"integer"}},` +
		`{"host":{"type":"string"}}]`
	if string(got) != want {
		t.Errorf("Describe = %s; want %s", got, want)
	}
}
