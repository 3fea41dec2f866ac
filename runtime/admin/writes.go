package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/gong-proxy/gong/runtime/declarative"
)

// EntityStore is the database behind the Admin API's writes in database
// mode.
type EntityStore interface {
	// Modify changes entities in one transaction: edit changes the
	// document of every entity; the whole result is validated as a
	// kong.yml is and written with the events that tell every node, or
	// nothing is written. Errors returned by edit come back unchanged; an
	// invalid result is a *declarative.Error.
	Modify(ctx context.Context, edit func(*declarative.Document) error) (*declarative.Config, error)
}

// dbOnlyMessage is Kong's answer to /config in database mode.
const dbOnlyMessage = "this endpoint is only available when Kong is configured to not use a database"

// dbOnly answers 400 when the node runs on a database.
func (a *api) dbOnly(w http.ResponseWriter) bool {
	if a.opts.Store == nil {
		return false
	}
	writeMessage(w, http.StatusBadRequest, dbOnlyMessage)
	return true
}

// Kong's error codes of refused writes (kong/db/errors.lua).
const (
	codeForeignKeyViolation = 3
	codePrimaryKeyViolation = 4
	codeUniqueViolation     = 5
)

// writeError is a refused write with Kong's answer.
type writeError struct {
	status int
	body   any
}

func (e *writeError) Error() string { return fmt.Sprint(e.body) }

var errNotFound = &writeError{http.StatusNotFound, map[string]string{"message": "Not found"}}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// writes answers the write methods of an entity path: POST on a
// collection, PATCH, PUT and DELETE on an entity; DB-less nodes refuse
// them as Kong does.
func (a *api) writes(k kind, parent *ref) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.opts.Store == nil {
			unsupported(k.name)(w, r)
			return
		}
		key := r.PathValue("key")
		if key == "" && r.Method != http.MethodPost || key != "" && r.Method == http.MethodPost ||
			!slices.Contains([]string{http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete}, r.Method) {
			methodNotAllowed(w, r)
			return
		}
		var body map[string]any
		if r.Method != http.MethodDelete {
			var err error
			if body, err = readEntity(r); err != nil {
				writeMessage(w, http.StatusBadRequest, err.Error())
				return
			}
		}
		var id string
		cfg, err := a.opts.Store.Modify(r.Context(), func(d *declarative.Document) error {
			var err error
			id, err = edit(d, k, parent, r, key, body)
			return err
		})
		a.answerWrite(w, r, k, cfg, id, err)
	}
}

// answerWrite answers a write with the entity as stored or Kong's error.
func (a *api) answerWrite(w http.ResponseWriter, r *http.Request, k kind, cfg *declarative.Config, id string, err error) {
	var we *writeError
	var de *declarative.Error
	switch {
	case errors.As(err, &we):
		writeJSON(w, we.status, we.body)
	case errors.As(err, &de):
		status, body := refusal(de, k.name)
		writeJSON(w, status, body)
	case err != nil && strings.Contains(err.Error(), "SQLSTATE 23505"):
		writeJSON(w, http.StatusConflict, kongError{Code: codeUniqueViolation, Name: "unique constraint violation", Message: err.Error()})
	case err != nil && strings.Contains(err.Error(), "gong extension"):
		writeJSON(w, http.StatusBadRequest, schemaViolation(map[string]any{"@entity": []any{err.Error()}}))
	case err != nil:
		if a.opts.Log != nil {
			a.opts.Log.Error(fmt.Sprintf("%s %s: %v", r.Method, r.URL.Path, err))
		}
		writeMessage(w, http.StatusInternalServerError, "An unexpected error occurred")
	case r.Method == http.MethodDelete || id == "":
		w.WriteHeader(http.StatusNoContent)
	default:
		e := cfg.Entity(k.name, id)
		k.show(e)
		if k.name == "certificates" {
			e["snis"] = sniNames(cfg, id)
		}
		if k.name == "vaults" {
			maskSecrets(e)
		}
		status := http.StatusOK
		if r.Method == http.MethodPost {
			status = http.StatusCreated
		}
		writeJSON(w, status, e)
	}
}

func sniNames(cfg *declarative.Config, cert string) []string {
	names := []string{}
	for _, s := range cfg.SNIs {
		if s.Certificate == cert {
			names = append(names, s.Name)
		}
	}
	return names
}

// readEntity reads a JSON or form body as an entity.
func readEntity(r *http.Request) (map[string]any, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	r.Body = http.MaxBytesReader(nil, r.Body, maxConfigSize)
	if ct == "application/x-www-form-urlencoded" || ct == "multipart/form-data" {
		if err := r.ParseMultipartForm(maxConfigSize); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			return nil, fmt.Errorf("cannot parse the form: %v", err)
		}
		body := map[string]any{}
		for k, v := range r.PostForm {
			if strings.HasSuffix(k, "[]") || len(v) > 1 {
				body[strings.TrimSuffix(k, "[]")] = anyStrings(v)
			} else {
				body[k] = v[0]
			}
		}
		return body, nil
	}
	body := map[string]any{}
	d := json.NewDecoder(r.Body)
	if err := d.Decode(&body); err != nil && err.Error() != "EOF" {
		return nil, errors.New("Cannot parse JSON body")
	}
	return body, nil
}

func anyStrings(v []string) []any {
	out := make([]any, len(v))
	for i, s := range v {
		out[i] = s
	}
	return out
}

// edit applies one write to the document and returns the id of the
// entity written ("" for a delete of nothing).
func edit(d *declarative.Document, k kind, parent *ref, r *http.Request, key string, body map[string]any) (string, error) {
	var parentID string
	if parent != nil {
		p := d.Find(parent.kind, r.PathValue("parent"))
		if p == nil {
			return "", errNotFound
		}
		parentID, _ = p["id"].(string)
	}
	var existing map[string]any
	if key != "" {
		existing = d.Find(k.name, key)
		if existing != nil && parent != nil && existing[parent.field] != parentID {
			existing = nil
		}
	}
	if body != nil {
		if err := resolveRefs(d, k, body); err != nil {
			return "", err
		}
		if parent != nil {
			body[parent.field] = parentID
		}
	}
	switch r.Method {
	case http.MethodDelete:
		if existing == nil {
			return "", nil
		}
		id := existing["id"].(string)
		if by := referencedBy(d, k.name, id); by != "" {
			return "", &writeError{http.StatusBadRequest, kongError{Code: codeForeignKeyViolation, Name: "foreign key violation",
				Message: fmt.Sprintf("an existing '%s' entity references this '%s' entity", by, k.name),
				Fields:  map[string]string{"@referenced_by": by}}}
		}
		d.Remove(k.name, id)
		return id, nil
	case http.MethodPatch:
		if existing == nil {
			return "", errNotFound
		}
		e := merge(maps.Clone(existing), body)
		e["id"] = existing["id"]
		delete(e, "updated_at")
		return set(d, k, e)
	case http.MethodPut:
		e := body
		switch {
		case existing != nil:
			e["id"], e["created_at"] = existing["id"], existing["created_at"]
		case uuidRE.MatchString(key):
			e["id"] = strings.ToLower(key)
		case k.key != "":
			e["id"], e[k.key] = uuid.NewString(), key
		default:
			return "", errNotFound
		}
		delete(e, "updated_at")
		return set(d, k, e)
	default: // POST
		if id, ok := body["id"].(string); ok && d.Find(k.name, id) != nil {
			return "", &writeError{http.StatusConflict, kongError{Code: codePrimaryKeyViolation, Name: "primary key violation",
				Message: fmt.Sprintf(`primary key violation on key '{id="%s"}'`, id), Fields: map[string]string{"id": id}}}
		}
		if _, ok := body["id"]; !ok {
			body["id"] = uuid.NewString()
		}
		return set(d, k, body)
	}
}

// set puts an entity; a certificate's snis field creates its SNIs, as in
// Kong.
func set(d *declarative.Document, k kind, e map[string]any) (string, error) {
	id, _ := e["id"].(string)
	if k.name == "certificates" {
		if names, ok := e["snis"].([]any); ok {
			for _, n := range names {
				if d.Find("snis", fmt.Sprint(n)) == nil {
					d.Set("snis", map[string]any{"id": uuid.NewString(), "name": n, "certificate": id})
				}
			}
		}
		delete(e, "snis")
	}
	d.Set(k.name, e)
	return id, nil
}

// resolveRefs turns foreign keys given as {"id": ...} or by endpoint key
// ({"name": ...}) into ids.
func resolveRefs(d *declarative.Document, k kind, body map[string]any) error {
	fields := map[string]string{}
	for _, f := range k.refs {
		fields[f.field] = f.kind
	}
	for _, f := range k.links {
		fields[f] = "certificates"
	}
	for f, typ := range fields {
		ref, ok := body[f].(map[string]any)
		if !ok {
			continue
		}
		if id, ok := ref["id"].(string); ok {
			body[f] = id
			continue
		}
		if ek := declarative.EndpointKey(typ); ek != "" {
			if v, ok := ref[ek].(string); ok {
				if e := d.Find(typ, v); e != nil {
					body[f] = e["id"]
					continue
				}
				return &writeError{http.StatusBadRequest, kongError{Code: codeForeignKeyViolation, Name: "foreign key violation",
					Message: fmt.Sprintf(`the foreign key '{%s="%s"}' does not reference an existing '%s' entity.`, ek, v, typ),
					Fields:  map[string]any{f: ref}}}
			}
		}
	}
	return nil
}

// referencedBy names a type with an entity referencing the entity
// without cascading (a service's routes), or "".
func referencedBy(d *declarative.Document, typ, id string) string {
	for _, k := range kinds {
		for _, f := range k.refs {
			cascades := k.name == "plugins" || k.name == "targets"
			if f.kind == typ && !cascades && slices.ContainsFunc(d.Entities[k.name], func(e map[string]any) bool { return e[f.field] == id }) {
				return k.name
			}
		}
		for _, f := range k.links {
			if typ == "certificates" && slices.ContainsFunc(d.Entities[k.name], func(e map[string]any) bool { return e[f] == id }) {
				return k.name
			}
		}
	}
	return ""
}

// merge applies a PATCH body: records merge field by field, anything
// else is replaced.
func merge(dst, patch map[string]any) map[string]any {
	for k, v := range patch {
		if pm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = merge(maps.Clone(dm), pm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

// refusal is Kong's answer to a write whose result does not validate:
// 409 for a uniqueness violation, 400 for a dangling reference or a
// schema violation with the entity's fields.
func refusal(de *declarative.Error, typ string) (int, any) {
	if de.Tree == nil {
		return http.StatusBadRequest, schemaViolation(map[string]any{"@entity": []any{de.Message}})
	}
	n := de.Tree.Fields[typ]
	if n == nil {
		return http.StatusBadRequest, schemaViolation(map[string]any{"@entity": []any{de.Error()}})
	}
	for _, e := range n.Entries {
		if m := uniqueRE.FindStringSubmatch(e.Message); m != nil {
			return http.StatusConflict, kongError{Code: codeUniqueViolation, Name: "unique constraint violation",
				Message: fmt.Sprintf(`UNIQUE violation detected on '{%s="%s"}'`, m[1], m[2]), Fields: map[string]string{m[1]: m[2]}}
		}
	}
	for _, e := range n.Fields {
		if strings.Contains(e.Message, "invalid reference") {
			return http.StatusBadRequest, kongError{Code: codeForeignKeyViolation, Name: "foreign key violation", Message: e.Message}
		}
		if m := uniqueRE.FindStringSubmatch(e.Message); m != nil {
			return http.StatusConflict, kongError{Code: codeUniqueViolation, Name: "unique constraint violation",
				Message: fmt.Sprintf(`UNIQUE violation detected on '{%s="%s"}'`, m[1], m[2]), Fields: map[string]string{m[1]: m[2]}}
		}
	}
	for _, e := range n.Entries {
		if fields, ok := errorFields(e).(map[string]any); ok {
			return http.StatusBadRequest, schemaViolation(fields)
		}
		return http.StatusBadRequest, schemaViolation(map[string]any{"@entity": []any{e.Message}})
	}
	return http.StatusBadRequest, schemaViolation(map[string]any{"@entity": []any{de.Error()}})
}

var uniqueRE = regexp.MustCompile(`uniqueness violation: '[a-z_]+' entity with ([a-z_]+) set to '(.*)' already declared`)
