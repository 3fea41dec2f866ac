package pdk

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	glua "github.com/yuin/gopher-lua"
)

// vaultFuncs is kong.vault (kong/pdk/vault.lua) with the env vault, the
// one Kong bundles: {vault://env/<name>[/<key>]} reads the environment
// variable <NAME> (upper case, "-" as "_", after the reference's
// ?prefix=), and <key> picks a field of its JSON value.
var vaultFuncs = []Func{
	{"is_reference", anyPhase, vaultIsReference},
	{"parse_reference", anyPhase, vaultParseReference},
	{"get", anyPhase, vaultGet},
	{"update", anyPhase, vaultUpdate},
	{"try", anyPhase, vaultTry},
	{"flush", anyPhase, func(*glua.LState, *State) int { return 0 }},
}

// vaultUpdate is kong.vault.update(options): the references recorded in
// options["$refs"] (field -> reference, as Kong's schema leaves them) are
// resolved again and their fields replaced, in nested records too, so a
// rotated secret reaches the config. A reference that no longer resolves
// keeps the field's value. options is returned. gong keeps no secret
// cache, so kong.vault.flush has nothing to drop.
func vaultUpdate(L *glua.LState, _ *State) int {
	if t, ok := L.Get(1).(*glua.LTable); ok {
		updateRefs(t, 0)
	}
	L.Push(L.Get(1))
	return 1
}

func updateRefs(t *glua.LTable, depth int) {
	if depth > 32 {
		return
	}
	if refs, ok := t.RawGetString("$refs").(*glua.LTable); ok {
		refs.ForEach(func(k, ref glua.LValue) {
			if v, errText := resolveReference(ref); errText == "" {
				t.RawSet(k, glua.LString(v))
			}
		})
	}
	t.ForEach(func(k, v glua.LValue) {
		if sub, ok := v.(*glua.LTable); ok && k.String() != "$refs" {
			updateRefs(sub, depth+1)
		}
	})
}

func isReference(v glua.LValue) bool {
	s, ok := v.(glua.LString)
	return ok && strings.HasPrefix(string(s), "{vault://") && strings.HasSuffix(string(s), "}")
}

func vaultIsReference(L *glua.LState, _ *State) int {
	L.Push(glua.LBool(isReference(L.Get(1))))
	return 1
}

// reference is a parsed vault reference.
type reference struct {
	name, resource, key string
	config              url.Values
	version             int // 0: none
}

// parseReference reads {vault://name/resource[/key][?config][#version]}
// with Kong's error texts.
func parseReference(v glua.LValue) (*reference, string) {
	ref := v.String()
	if !isReference(v) {
		return nil, fmt.Sprintf("not a reference [%s]", ref)
	}
	u, err := url.Parse(ref[1 : len(ref)-1])
	if err != nil {
		return nil, fmt.Sprintf("reference is not url (%v) [%s]", err, ref)
	}
	if u.Host == "" {
		return nil, fmt.Sprintf("reference url is missing host [%s]", ref)
	}
	resource := strings.TrimPrefix(u.Path, "/")
	if resource == "" {
		return nil, fmt.Sprintf("reference url has empty path [%s]", ref)
	}
	r := &reference{name: u.Host, resource: resource}
	if u.Fragment != "" {
		if r.version, err = strconv.Atoi(u.Fragment); err != nil {
			return nil, fmt.Sprintf("reference url has invalid version [%s]", ref)
		}
	}
	if parts := strings.Split(resource, "/"); len(parts) > 1 && parts[len(parts)-1] != "" {
		r.resource, r.key = strings.Join(parts[:len(parts)-1], "/"), parts[len(parts)-1]
	} else {
		r.resource = strings.TrimSuffix(resource, "/")
	}
	if u.RawQuery != "" {
		r.config = u.Query()
	}
	return r, ""
}

func vaultParseReference(L *glua.LState, _ *State) int {
	r, errText := parseReference(L.Get(1))
	if r == nil {
		return pushErr(L, errText)
	}
	t := L.NewTable()
	t.RawSetString("name", glua.LString(r.name))
	t.RawSetString("resource", glua.LString(r.resource))
	if r.key != "" {
		t.RawSetString("key", glua.LString(r.key))
	}
	if r.version != 0 {
		t.RawSetString("version", glua.LNumber(r.version))
	}
	if r.config != nil {
		c := L.NewTable()
		for k, v := range r.config {
			c.RawSetString(k, glua.LString(v[0]))
		}
		t.RawSetString("config", c)
	}
	L.Push(t)
	return 1
}

// vaultGet resolves a reference: value, or nil and an error.
func vaultGet(L *glua.LState, _ *State) int {
	value, errText := resolveReference(L.Get(1))
	if errText != "" {
		return pushErr(L, errText)
	}
	L.Push(glua.LString(value))
	return 1
}

func resolveReference(v glua.LValue) (string, string) {
	r, errText := parseReference(v)
	if r == nil {
		return "", errText
	}
	ref := v.String()
	if r.name != "env" {
		return "", fmt.Sprintf("vault not found (%s) [%s]", r.name, ref)
	}
	name := strings.ToUpper(strings.ReplaceAll(r.config.Get("prefix")+r.resource, "-", "_"))
	value, ok := os.LookupEnv(name)
	if !ok {
		return "", fmt.Sprintf("could not get value from external vault (no value found (%s)) [%s]", r.resource, ref)
	}
	if r.key == "" {
		return value, ""
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(value), &fields); err != nil {
		return "", fmt.Sprintf("could not decode value from external vault (%v) [%s]", err, ref)
	}
	s, ok := fields[r.key].(string)
	if !ok {
		return "", fmt.Sprintf("could not find key %s [%s]", r.key, ref)
	}
	return s, ""
}

// vaultTry calls cb(options) once. Kong retries it after refreshing the
// secrets of a rotated reference; gong does not rotate secrets.
func vaultTry(L *glua.LState, _ *State) int {
	L.Push(L.CheckFunction(1))
	L.Push(L.Get(2))
	L.Call(1, glua.MultRet)
	return L.GetTop() - 2
}
