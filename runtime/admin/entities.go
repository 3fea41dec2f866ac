package admin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
)

// kind is an entity type the API serves.
type kind struct {
	name string // plural, as in paths and kong.yml
	// key is the field that names an entity besides its id in paths
	// ("" when only the id does).
	key string
	// refs are the foreign keys nested paths follow: /services/{s}/routes
	// lists the routes whose service is s.
	refs []ref
	// links are other foreign keys, shown as {"id": ...} as Kong does.
	links []string
	// nestedOnly kinds have no top-level paths (Kong disables /targets).
	nestedOnly bool
}

type ref struct{ field, kind string }

var kinds = []kind{
	{name: "services", key: "name", links: []string{"client_certificate"}},
	{name: "routes", key: "name", refs: []ref{{"service", "services"}}},
	{name: "upstreams", key: "name", links: []string{"client_certificate"}},
	{name: "targets", key: "target", refs: []ref{{"upstream", "upstreams"}}, nestedOnly: true},
	{name: "certificates"},
	{name: "snis", key: "name", refs: []ref{{"certificate", "certificates"}}},
	{name: "ca_certificates"},
	{name: "plugins", key: "instance_name", refs: []ref{{"route", "routes"}, {"service", "services"}, {"consumer", "consumers"}}},
	{name: "consumers", key: "username"},
	{name: "vaults", key: "prefix"},
}

func kindNamed(name string) (kind, bool) {
	i := slices.IndexFunc(kinds, func(k kind) bool { return k.name == name })
	if i < 0 {
		return kind{}, false
	}
	return kinds[i], true
}

// record is one entity as the API shows it.
type record struct {
	id   string
	body map[string]any
	refs map[string]string // foreign key field -> id
	tags []string
}

// index is a declarative configuration's entities, by kind, id and key.
type index struct {
	cfg   *declarative.Config
	list  map[string][]*record
	byID  map[string]map[string]*record
	byKey map[string]map[string]*record
}

// indexCache keeps the index of the configuration seen last.
type indexCache struct {
	mu  sync.Mutex
	idx *index
}

func (c *indexCache) get(cfg *declarative.Config) *index {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idx == nil || c.idx.cfg != cfg {
		c.idx = newIndex(cfg)
	}
	return c.idx
}

// entitiesOf returns a configuration's entities of one kind.
func entitiesOf(cfg *declarative.Config, kind string) []any {
	switch kind {
	case "services":
		return anys(cfg.Services)
	case "routes":
		return anys(cfg.Routes)
	case "upstreams":
		return anys(cfg.Upstreams)
	case "targets":
		return anys(cfg.Targets)
	case "certificates":
		return anys(cfg.Certificates)
	case "snis":
		return anys(cfg.SNIs)
	case "ca_certificates":
		return anys(cfg.CACertificates)
	case "plugins":
		return anys(cfg.Plugins)
	case "consumers":
		return anys(cfg.Consumers)
	case "vaults":
		return anys(cfg.Vaults)
	}
	return nil
}

func anys[T any](list []*T) []any {
	out := make([]any, len(list))
	for i, e := range list {
		out[i] = e
	}
	return out
}

// asJSON is an entity's JSON object, numbers kept exact.
func asJSON(v any) map[string]any {
	data, _ := json.Marshal(v)
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var m map[string]any
	d.Decode(&m)
	return m
}

func newIndex(cfg *declarative.Config) *index {
	ix := &index{cfg: cfg, list: map[string][]*record{},
		byID: map[string]map[string]*record{}, byKey: map[string]map[string]*record{}}
	for _, k := range kinds {
		ix.byID[k.name], ix.byKey[k.name] = map[string]*record{}, map[string]*record{}
		for _, e := range entitiesOf(cfg, k.name) {
			body := asJSON(e)
			rec := &record{body: body}
			rec.id, _ = body["id"].(string)
			rec.tags = asStrings(body["tags"])
			rec.refs = k.show(body)
			ix.list[k.name] = append(ix.list[k.name], rec)
			ix.byID[k.name][rec.id] = rec
			if key, ok := body[k.key].(string); ok && k.key != "" {
				ix.byKey[k.name][key] = rec
			}
		}
	}
	for _, v := range ix.list["vaults"] {
		maskSecrets(v.body)
	}
	// A certificate shows its SNIs' names and can be found by them.
	for _, c := range ix.list["certificates"] {
		c.body["snis"] = []string{}
	}
	for _, s := range cfg.SNIs {
		if c := ix.byID["certificates"][s.Certificate]; c != nil {
			c.body["snis"] = append(c.body["snis"].([]string), s.Name)
			ix.byKey["certificates"][s.Name] = c
		}
	}
	return ix
}

// maskSecrets hides the secret settings of a vault's config as GET /
// hides kong.conf's: the names conf.Sensitive knows, and the credentials
// of Kong's cloud vaults it does not (hcv's token, approle_secret_id).
func maskSecrets(v map[string]any) {
	cfg, _ := v["config"].(map[string]any)
	for k := range cfg {
		if conf.Sensitive(k) || k == "token" || strings.HasSuffix(k, "_secret_id") {
			cfg[k] = conf.SensitivePlaceholder
		}
	}
}

// show turns an entity's foreign keys into {"id": ...}, as Kong shows
// them, and returns the ids of the refs by field.
func (k kind) show(body map[string]any) map[string]string {
	refs := map[string]string{}
	for _, f := range k.refs {
		if id, ok := body[f.field].(string); ok {
			refs[f.field] = id
			body[f.field] = map[string]string{"id": id}
		}
	}
	for _, f := range k.links {
		if id, ok := body[f].(string); ok {
			body[f] = map[string]string{"id": id}
		}
	}
	return refs
}

func asStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// find looks an entity up by id, else by its endpoint key.
func (ix *index) find(kind, key string) *record {
	if r := ix.byID[kind][key]; r != nil {
		return r
	}
	return ix.byKey[kind][key]
}

// entityRoutes registers the entity paths: list and get at the top level
// and under each parent, the referenced entity (/routes/{r}/service), and
// Kong's DB-less 405 for every write method.
func (a *api) entityRoutes(mux *http.ServeMux) {
	for _, k := range kinds {
		if !k.nestedOnly {
			mux.HandleFunc("GET /"+k.name, a.listEntities(k, nil))
			mux.HandleFunc("GET /"+k.name+"/{key}", a.getEntity(k, nil))
			mux.HandleFunc("/"+k.name, a.writes(k, nil))
			mux.HandleFunc("/"+k.name+"/{key}", a.writes(k, nil))
			for _, f := range k.refs {
				mux.HandleFunc("GET /"+k.name+"/{key}/"+f.field, a.referenced(k, f))
			}
		}
		for _, f := range k.refs {
			base := "/" + f.kind + "/{parent}/" + k.name
			mux.HandleFunc("GET "+base, a.listEntities(k, &f))
			mux.HandleFunc("GET "+base+"/{key}", a.getEntity(k, &f))
			mux.HandleFunc(base, a.writes(k, &f))
			mux.HandleFunc(base+"/{key}", a.writes(k, &f))
		}
	}
	targets, _ := kindNamed("targets")
	mux.HandleFunc("GET /upstreams/{parent}/targets/all", a.listEntities(targets, &targets.refs[0]))
}

// parentOf resolves the {parent} of a nested path; nil answers 404.
func (a *api) parentOf(ix *index, r *http.Request, parent *ref) (*record, bool) {
	if parent == nil {
		return nil, true
	}
	p := ix.find(parent.kind, r.PathValue("parent"))
	return p, p != nil
}

func (a *api) listEntities(k kind, parent *ref) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ix := a.idx.get(a.b.Current().Config)
		p, ok := a.parentOf(ix, r, parent)
		if !ok {
			notFound(w)
			return
		}
		var recs []*record
		for _, rec := range ix.list[k.name] {
			if p == nil || rec.refs[parent.field] == p.id {
				recs = append(recs, rec)
			}
		}
		bodies := make([]any, len(recs))
		tags := make([][]string, len(recs))
		for i, rec := range recs {
			bodies[i], tags[i] = rec.body, rec.tags
		}
		writePage(w, r, bodies, tags)
	}
}

func (a *api) getEntity(k kind, parent *ref) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ix := a.idx.get(a.b.Current().Config)
		p, ok := a.parentOf(ix, r, parent)
		if !ok {
			notFound(w)
			return
		}
		rec := ix.find(k.name, r.PathValue("key"))
		if rec == nil || p != nil && rec.refs[parent.field] != p.id {
			notFound(w)
			return
		}
		writeJSON(w, http.StatusOK, rec.body)
	}
}

// referenced answers /{kind}/{key}/{field}: the entity a foreign key
// points to.
func (a *api) referenced(k kind, f ref) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ix := a.idx.get(a.b.Current().Config)
		rec := ix.find(k.name, r.PathValue("key"))
		if rec == nil {
			notFound(w)
			return
		}
		target := ix.byID[f.kind][rec.refs[f.field]]
		if target == nil {
			notFound(w)
			return
		}
		writeJSON(w, http.StatusOK, target.body)
	}
}

// unsupported answers write methods as Kong's DB-less mode does.
func unsupported(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		verb := map[string]string{http.MethodPost: "create", http.MethodPut: "create or update",
			http.MethodPatch: "update", http.MethodDelete: "remove"}[r.Method]
		if verb == "" {
			methodNotAllowed(w, r)
			return
		}
		writeJSON(w, http.StatusMethodNotAllowed, kongError{Code: codeOperationUnsupported, Name: "operation unsupported",
			Message: fmt.Sprintf("cannot %s '%s' entities when not using a database", verb, kind)})
	}
}

// Page sizes, as Kong's.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// writePage answers a list request with Kong's pagination (size, offset,
// next) over items, filtered by the tags query: "a,b" needs both tags,
// "a/b" either. tags[i] are the tags of items[i].
func writePage(w http.ResponseWriter, r *http.Request, items []any, tags [][]string) {
	q := r.URL.Query()
	size := defaultPageSize
	if s := q.Get("size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, kongError{Code: codeInvalidSize, Name: "invalid size", Message: "size must be a number"})
			return
		}
		if n < 1 || n > maxPageSize {
			writeJSON(w, http.StatusBadRequest, kongError{Code: codeInvalidSize, Name: "invalid size",
				Message: fmt.Sprintf("size must be an integer between 1 and %d", maxPageSize)})
			return
		}
		size = n
	}
	if t := q.Get("tags"); t != "" {
		match, err := tagFilter(t)
		if err != "" {
			writeJSON(w, http.StatusBadRequest, kongError{Code: codeInvalidOptions, Name: "invalid options",
				Message: "invalid option (tags: " + err + ")", Fields: map[string]string{"tags": err}})
			return
		}
		var kept []any
		for i, it := range items {
			if match(tags[i]) {
				kept = append(kept, it)
			}
		}
		items = kept
	}
	start := 0
	if o := q.Get("offset"); o != "" {
		n, err := decodeOffset(o)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, kongError{Code: codeInvalidOffset, Name: "invalid offset",
				Message: fmt.Sprintf("'%s' is not a valid offset: %v", o, err)})
			return
		}
		start = min(n, len(items))
	}
	end := min(start+size, len(items))
	body := map[string]any{"data": append([]any{}, items[start:end]...), "next": nil}
	if end < len(items) {
		offset := base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
		next := url.Values{"offset": {offset}}
		if t := q.Get("tags"); t != "" {
			next.Set("tags", t)
		}
		if s := q.Get("size"); s != "" {
			next.Set("size", s)
		}
		body["offset"] = offset
		body["next"] = r.URL.Path + "?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, body)
}

func decodeOffset(o string) (int, error) {
	data, err := base64.RawURLEncoding.DecodeString(o)
	if err != nil {
		return 0, fmt.Errorf("bad base64 encoding")
	}
	n, err := strconv.Atoi(string(data))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("malformed offset")
	}
	return n, nil
}

// tagFilter reads Kong's tags query.
func tagFilter(q string) (func([]string) bool, string) {
	and, or := strings.Contains(q, ","), strings.Contains(q, "/")
	if and && or {
		return nil, "cannot mix 'and' and 'or'"
	}
	if or {
		want := strings.Split(q, "/")
		return func(tags []string) bool {
			return slices.ContainsFunc(want, func(t string) bool { return slices.Contains(tags, t) })
		}, ""
	}
	want := strings.Split(q, ",")
	return func(tags []string) bool {
		for _, t := range want {
			if !slices.Contains(tags, t) {
				return false
			}
		}
		return true
	}, ""
}
