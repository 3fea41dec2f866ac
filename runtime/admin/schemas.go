package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/gong-proxy/gong/runtime/declarative"
)

// enabledPlugins answers GET /plugins/enabled.
func (a *api) enabledPlugins(w http.ResponseWriter, r *http.Request) {
	names := []string{}
	for _, p := range a.b.Plugins() {
		names = append(names, p.Name)
	}
	writeJSON(w, http.StatusOK, map[string]any{"enabled_plugins": names})
}

// pluginSchema answers GET /schemas/plugins/{name}: the table the
// plugin's schema.lua returns.
func (a *api) pluginSchema(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	for _, p := range a.b.Plugins() {
		if p.Name == name {
			writeJSON(w, http.StatusOK, p.Schema)
			return
		}
	}
	writeMessage(w, http.StatusNotFound, "No plugin named '"+name+"'")
}

// entitySchema answers GET /schemas/{entity} for the entity types of a
// declarative configuration.
func (a *api) entitySchema(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("entity")
	s, ok := declarative.EntitySchema(name, declarative.Options{RouterFlavor: a.b.Current().Conf.RouterFlavor})
	if !ok {
		writeMessage(w, http.StatusNotFound, "No entity named '"+name+"'")
		return
	}
	writeJSON(w, http.StatusOK, s)
}

// validate answers POST /schemas/{entity}/validate (plugins included):
// 200 when the entity in the body is valid, else Kong's schema violation.
func (a *api) validate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("entity")
	k, ok := kindNamed(name)
	if !ok {
		writeMessage(w, http.StatusNotFound, "No entity named '"+name+"'")
		return
	}
	var entity map[string]any
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxConfigSize)).Decode(&entity); err != nil {
		writeMessage(w, http.StatusBadRequest, "Cannot parse JSON body")
		return
	}
	// As in Kong, the entities referred to need not exist.
	for _, f := range k.refs {
		delete(entity, f.field)
	}
	for _, f := range k.links {
		delete(entity, f)
	}
	err := a.b.Validate(name, entity)
	var de *declarative.Error
	switch {
	case err == nil:
		writeMessage(w, http.StatusOK, "schema validation successful")
	case errors.As(err, &de):
		writeJSON(w, http.StatusBadRequest, schemaViolation(entityErrors(de, name)))
	default:
		writeMessage(w, http.StatusBadRequest, err.Error())
	}
}

// entityErrors are the errors of the one entity of kind a validation
// configuration holds.
func entityErrors(de *declarative.Error, kind string) map[string]any {
	if de.Tree == nil {
		return map[string]any{"@entity": []any{de.Message}}
	}
	n := de.Tree
	if k := n.Fields[kind]; k != nil && k.Entries[1] != nil {
		n = k.Entries[1]
	}
	if m, ok := errorFields(n).(map[string]any); ok {
		return m
	}
	return map[string]any{"@entity": []any{n.Message}}
}

// schemaViolation is Kong's schema violation error: every message in the
// text, entity checks first, then fields by name.
func schemaViolation(fields map[string]any) kongError {
	var msgs []string
	if list, ok := fields["@entity"].([]any); ok {
		for _, m := range list {
			msgs = append(msgs, fmt.Sprint(m))
		}
	}
	names := make([]string, 0, len(fields))
	for k := range fields {
		if k != "@entity" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		sub, ok := fields[k].(map[string]any)
		if !ok {
			if list, isList := fields[k].([]any); isList {
				msgs = append(msgs, k+": "+luaTable(list))
			} else {
				msgs = append(msgs, fmt.Sprintf("%s: %v", k, fields[k]))
			}
			continue
		}
		subNames := make([]string, 0, len(sub))
		for s := range sub {
			subNames = append(subNames, s)
		}
		sort.Strings(subNames)
		for _, s := range subNames {
			v := sub[s]
			if _, leaf := v.(string); !leaf {
				v = luaTable(v)
			}
			msgs = append(msgs, fmt.Sprintf("%s.%s: %v", k, s, v))
		}
	}
	msg := fmt.Sprintf("schema violation (%s)", strings.Join(msgs, "; "))
	if len(msgs) > 1 {
		msg = fmt.Sprintf("%d schema violations (%s)", len(msgs), strings.Join(msgs, "; "))
	}
	return kongError{Code: codeSchemaViolation, Name: "schema violation", Message: msg, Fields: fields}
}
