package admin

import (
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/gong-proxy/gong/runtime/declarative"
)

// maxConfigSize bounds a POST /config body.
const maxConfigSize = 64 << 20

// getConfig answers GET /config: the running declarative configuration as
// YAML, in Kong's export format (_transform false, entities flat, foreign
// keys as ids). Null fields are left out.
func (a *api) getConfig(w http.ResponseWriter, r *http.Request) {
	if a.dbOnly(w) {
		return
	}
	cfg := a.b.Current().Config
	out := map[string]any{"_format_version": "3.0", "_transform": false}
	for _, k := range kinds {
		var list []any
		for _, e := range entitiesOf(cfg, k.name) {
			list = append(list, plain(asJSON(e)))
		}
		if len(list) > 0 {
			out[k.name] = list
		}
	}
	data, err := yaml.Marshal(out)
	if err != nil {
		writeMessage(w, http.StatusInternalServerError, "An unexpected error occurred")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"config": string(data)})
}

// plain converts decoded JSON for YAML: numbers become integers where they
// are whole, and null members are dropped.
func plain(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if e != nil {
				out[k] = plain(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	}
	return v
}

// postConfig answers POST /config as Kong's DB-less mode does: the body
// (a JSON object with _format_version, a "config" parameter, or the raw
// YAML or JSON text) replaces the declarative configuration. check_hash=1
// answers 304 when it is the running one; flatten_errors=1 adds Kong's
// flattened_errors to a 400.
func (a *api) postConfig(w http.ResponseWriter, r *http.Request) {
	if a.dbOnly(w) {
		return
	}
	config, err := configFromRequest(r)
	if err != nil {
		writeMessage(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(strings.TrimSpace(string(config))) == 0 {
		writeMessage(w, http.StatusBadRequest, "expected a declarative configuration")
		return
	}
	if r.FormValue("check_hash") == "1" && fmt.Sprintf("%x", md5.Sum(config)) == a.b.Current().Hash {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	snap, err := a.b.Apply(config)
	if err != nil {
		var de *declarative.Error
		if errors.Is(err, ErrExiting) {
			writeMessage(w, http.StatusServiceUnavailable, ErrExiting.Error())
			return
		}
		if !errors.As(err, &de) {
			writeMessage(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusBadRequest, declarativeError(de, truthy(r.FormValue("flatten_errors"))))
		return
	}
	ix := a.idx.get(snap.Config)
	out := map[string]any{}
	for _, k := range kinds {
		byID := map[string]any{}
		for _, rec := range ix.list[k.name] {
			byID[rec.id] = rec.body
		}
		out[k.name] = byID
	}
	writeJSON(w, http.StatusCreated, out)
}

// truthy reads a boolean flag as Kong does.
func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "true", "1", "on", "yes":
		return true
	}
	return false
}

// configFromRequest finds the declarative configuration in a POST /config
// request.
func configFromRequest(r *http.Request) ([]byte, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-www-form-urlencoded", "multipart/form-data":
		r.Body = http.MaxBytesReader(nil, r.Body, maxConfigSize)
		if err := r.ParseMultipartForm(maxConfigSize); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			return nil, fmt.Errorf("cannot parse the form: %v", err)
		}
		if f, _, err := r.FormFile("config"); err == nil { // curl -F config=@kong.yml
			defer f.Close()
			return io.ReadAll(f)
		}
		return []byte(r.FormValue("config")), nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxConfigSize+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxConfigSize {
		return nil, fmt.Errorf("the configuration is larger than %d bytes", maxConfigSize)
	}
	var params map[string]any
	if json.Unmarshal(body, &params) == nil {
		if _, ok := params["_format_version"]; !ok {
			if s, ok := params["config"].(string); ok {
				return []byte(s), nil
			}
		}
	}
	return body, nil
}

// declarativeError is Kong's 400 body for an invalid declarative
// configuration.
func declarativeError(de *declarative.Error, flatten bool) kongError {
	var fields any
	if de.Tree == nil {
		fields = map[string]any{"error": de.Message}
	} else {
		fields = errorFields(de.Tree)
	}
	e := kongError{Code: codeDeclarativeConfig, Name: "invalid declarative configuration",
		Message: "declarative config is invalid: " + luaTable(fields), Fields: fields}
	if flatten {
		e.Flattened = de.Flattened
		if e.Flattened == nil {
			e.Flattened = []declarative.FlatError{}
		}
	}
	return e
}

// errorFields renders an error tree as Kong's JSON: named fields as an
// object, numbered entries as an array (null where an entry has no error).
func errorFields(n *declarative.ErrorNode) any {
	if n.Message != "" || len(n.Fields) == 0 && len(n.Entries) == 0 {
		return n.Message
	}
	if len(n.Fields) == 0 {
		last := 0
		for i := range n.Entries {
			last = max(last, i)
		}
		out := make([]any, last)
		for i, c := range n.Entries {
			out[i-1] = errorFields(c)
		}
		return out
	}
	out := map[string]any{}
	for k, c := range n.Fields {
		out[k] = errorFields(c)
	}
	for i, c := range n.Entries {
		out[strconv.Itoa(i)] = errorFields(c)
	}
	return out
}

// luaTable prints error fields as Kong's message does (Penlight's pretty
// writer without indentation).
func luaTable(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case nil:
		return "nil"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = luaTable(e)
		}
		return "{" + strings.Join(parts, ",") + "}"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			key := k
			if !isIdentifier(k) {
				key = "[" + strconv.Quote(k) + "]"
			}
			parts[i] = key + "=" + luaTable(x[k])
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return fmt.Sprint(v)
}

func isIdentifier(s string) bool {
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}
