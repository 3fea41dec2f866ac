package admin

import (
	"bytes"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gong-proxy/gong/runtime/declarative"
)

// parsingBackend is a Backend whose configuration changes go through the
// declarative loader, as the runtime's do, and that has no upstreams or
// sessions.
type parsingBackend struct{ current Snapshot }

func (b *parsingBackend) Current() Snapshot { return b.current }

func (b *parsingBackend) Apply(config []byte) (Snapshot, error) {
	cfg, err := declarative.Parse(config, "", declarative.Options{Plugins: []string{"tcp-log"}})
	if err != nil {
		return Snapshot{}, err
	}
	b.current = Snapshot{Config: cfg, Hash: fmt.Sprintf("%x", md5.Sum(config))}
	return b.current, nil
}

func (b *parsingBackend) Validate(kind string, entity map[string]any) error {
	data, err := json.Marshal(map[string]any{"_format_version": "3.0", kind: []any{entity}})
	if err != nil {
		return err
	}
	_, err = declarative.Parse(data, "", declarative.Options{Plugins: []string{"tcp-log"}})
	return err
}

func (*parsingBackend) Plugins() []Plugin                            { return nil }
func (*parsingBackend) Health(string) (UpstreamHealth, bool)         { return UpstreamHealth{}, false }
func (*parsingBackend) SetHealth(string, string, string, bool) error { return nil }
func (*parsingBackend) Sessions() []Session                          { return nil }
func (*parsingBackend) CloseSession(uint64) bool                     { return false }
func (*parsingBackend) Counters() Counters                           { return Counters{} }
func (*parsingBackend) Memory(string, int) (Memory, error)           { return Memory{}, nil }

// fuzzRequests are the Admin API requests that read a body or a query.
var fuzzRequests = []struct{ method, path string }{
	{"POST", "/config"},
	{"POST", "/schemas/services/validate"},
	{"POST", "/schemas/routes/validate"},
	{"POST", "/schemas/upstreams/validate"},
	{"POST", "/schemas/plugins/validate"},
	{"PUT", "/upstreams/u/targets/t/healthy"},
	{"POST", "/services"},
	{"PATCH", "/routes/r"},
	{"DELETE", "/sessions/1"},
	{"GET", "/services"},
	{"GET", "/config"},
}

// FuzzAdminRequest sends the Admin API arbitrary bodies, content types and
// queries: it must never panic nor answer 500, and what it answers is
// JSON.
func FuzzAdminRequest(f *testing.F) {
	f.Add(uint8(0), "application/json", "", []byte(`{"_format_version":"3.0","services":[{"name":"s","url":"tcp://127.0.0.1:1","routes":[{"protocols":["tcp"],"destinations":[{"port":9}]}]}]}`))
	f.Add(uint8(0), "text/yaml", "check_hash=1&flatten_errors=1", []byte("_format_version: \"3.0\"\nroutes: [{protocols: [tcp]}]\n"))
	f.Add(uint8(0), "application/x-www-form-urlencoded", "", []byte(`config=%7B%22_format_version%22%3A%223.0%22%7D`))
	f.Add(uint8(0), "multipart/form-data; boundary=b", "", []byte("--b\r\nContent-Disposition: form-data; name=\"config\"; filename=\"k.yml\"\r\n\r\n_format_version: \"3.0\"\r\n--b--\r\n"))
	f.Add(uint8(0), "application/json", "", []byte(`{"config":"{\"_format_version\":\"3.0\",\"upstreams\":[{\"name\":\"u\"}]}"}`))
	f.Add(uint8(1), "application/json", "", []byte(`{"name":"x","url":"tls://a:1","tls_verify":true}`))
	f.Add(uint8(4), "application/json", "", []byte(`{"name":"tcp-log","config":{"host":"h","port":1}}`))
	f.Add(uint8(9), "", "size=1&offset=!!&tags=a,b", []byte(nil))
	f.Fuzz(func(t *testing.T, which uint8, contentType, query string, body []byte) {
		rq := fuzzRequests[int(which)%len(fuzzRequests)]
		a := New(&parsingBackend{}, Options{})
		req := httptest.NewRequest(rq.method, "http://127.0.0.1:8001"+rq.path, bytes.NewReader(body))
		req.URL.RawQuery = strings.ToValidUTF8(query, "")
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		w := httptest.NewRecorder()
		a.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s (%s): %d %s", rq.method, rq.path, contentType, w.Code, w.Body)
		}
		if w.Body.Len() > 0 && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s (%s): %d with a body that is not JSON: %q", rq.method, rq.path, contentType, w.Code, w.Body)
		}
	})
}
