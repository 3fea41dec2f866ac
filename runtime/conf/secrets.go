package conf

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/gong-proxy/gong/vault"
)

// secret is a resolved vault reference in a property value; messages
// about the property show the reference, never the secret.
type secret struct{ value, ref string }

// vaultSettings reads the vaults property and the vault_* properties;
// vault_file_base_dir is made absolute against dir. The env vault reads
// env, the KEY=VALUE pairs Load was given, as Kong reads the environment
// it started with.
func vaultSettings(values map[string]Value, dir string, env []string) vault.Settings {
	vars := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	s := vault.Settings{Properties: map[string]string{},
		LookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
	if v, ok := values["vaults"]; ok {
		s.Enabled = splitArray(v.Raw)
	}
	for k, v := range values {
		if strings.HasPrefix(k, "vault_") {
			s.Properties[k] = v.Raw
		}
	}
	if d, ok := s.Properties["vault_file_base_dir"]; ok {
		s.Properties["vault_file_base_dir"] = absPath(dir, d)
	}
	return s
}

// dereference resolves the vault references in property values, a whole
// value or items of a comma-separated list, as Kong does at start. It
// returns the values to type, with the secrets in place, the secrets by
// property, and one problem per reference that cannot be resolved.
func dereference(values map[string]Value, s vault.Settings) (map[string]Value, map[string][]secret, Errors) {
	keys := make([]string, 0, len(values))
	for k, v := range values {
		if strings.Contains(v.Raw, "{vault://") && !strings.HasPrefix(k, "vault_") {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return values, nil, nil
	}
	sort.Strings(keys)
	var problems Errors
	r, err := vault.New(s, nil)
	var pe *vault.PropertyError
	if errors.As(err, &pe) {
		return values, nil, Errors{{Key: pe.Property, Source: values[pe.Property].Source, Msg: err.Error()}}
	}
	out := make(map[string]Value, len(values))
	for k, v := range values {
		out[k] = v
	}
	secrets := map[string][]secret{}
	for _, k := range keys {
		v := values[k]
		items := []string{v.Raw}
		if !vault.IsReference(strings.TrimSpace(v.Raw)) {
			items = strings.Split(v.Raw, ",")
		}
		for i, item := range items {
			ref := strings.TrimSpace(item)
			if !vault.IsReference(ref) {
				continue
			}
			value, err := r.Get(ref)
			if err != nil {
				problems = append(problems, Problem{Key: k, Source: v.Source,
					Msg: fmt.Sprintf("failed to dereference '%s': %v for config option '%s'", ref, err, k)})
				continue
			}
			items[i] = value
			secrets[k] = append(secrets[k], secret{value: value, ref: ref})
		}
		v.Raw = strings.Join(items, ",")
		out[k] = v
	}
	return out, secrets, problems
}

// vaults validates the vaults property and reads the vault settings.
func (t *typer) vaults() vault.Settings {
	names := t.array("vaults")
	for _, n := range names {
		if n != "bundled" && n != "off" && !slices.Contains(vault.Bundled, n) {
			t.fail("vaults", "vault '%s' is not installed (bundled vaults: %s)", n, strings.Join(vault.Bundled, ", "))
		}
	}
	t.accept("vault_env_prefix", "vault_file_base_dir", "vault_rotation_interval")
	s := vaultSettings(t.values, t.dir, t.env)
	for k := range s.Properties {
		t.read[k] = true
	}
	var pe *vault.PropertyError
	if _, err := vault.New(s, nil); errors.As(err, &pe) {
		t.fail(pe.Property, "%s", err)
	}
	return s
}
