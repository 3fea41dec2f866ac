package declarative

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/gong-proxy/gong/runtime/schema"
	"github.com/gong-proxy/gong/vault"
)

// vaultPrefixRE is Kong's vaults prefix pattern ([[^[a-z][a-z%d-]-[a-z%d]+$]]):
// usable as the host of a reference URL.
var vaultPrefixRE = regexp.MustCompile(`^[a-z][a-z0-9-]*?[a-z0-9]+$`)

// vaults is kong/db/schema/entities/vaults.lua: a prefix naming a vault
// with a config; references use the prefix in place of the vault's name.
func (b *builder) vaults() *schema.Field {
	prefix := str("prefix").Custom(func(s string) string {
		if !vaultPrefixRE.MatchString(s) {
			return fmt.Sprintf("invalid value: %s", s)
		}
		if slices.Contains(vault.Bundled, s) {
			return "must not be one of: " + strings.Join(vault.Bundled, ", ")
		}
		return ""
	})
	return schema.Record("", entityFields(schema.Integer,
		prefix.Required(),
		str("name").Required(),
		str("description"),
		schema.Any("config"),
		tags(),
	)...).Checks(func(m map[string]any, errs schema.Errors) {
		name, _ := m["name"].(string)
		if name == "" || schema.HasError(errs, "name", "config") {
			return
		}
		cfg, ok := schema.AsRecord(m["config"])
		if m["config"] != nil && !ok {
			errs["config"] = "expected a record"
			return
		}
		if f, msg := vault.CheckConfig(name, cfg); f == "name" {
			errs["name"] = msg
		} else if f != "" {
			errs["config"] = map[string]any{strings.TrimPrefix(f, "config."): msg}
		}
	})
}

// referenceValidator wraps a PEM validator so a vault reference passes;
// the reference is resolved, and the PEM it yields checked, once the
// vaults of the configuration are known (resolveSecrets).
func referenceValidator(v func(string) string) func(string) string {
	return func(s string) string {
		if vault.IsReference(s) {
			if _, err := vault.Parse(s); err != nil {
				return err.Error()
			}
			return ""
		}
		return v(s)
	}
}

// resolveSecrets builds the configuration's vault resolver and resolves
// the references of certificates and of referenceable plugin fields. An
// unresolvable reference fails the load, naming the entity, the field and
// the reference.
func resolveSecrets(cfg *Config, opts Options) error {
	entities := make([]vault.Entity, len(cfg.Vaults))
	for i, v := range cfg.Vaults {
		entities[i] = vault.Entity{Prefix: v.Prefix, Name: v.Name, Config: v.Config}
	}
	r, err := vault.New(opts.Vault, entities)
	if err != nil {
		return &Error{Message: err.Error()}
	}
	cfg.Secrets = r
	for _, c := range cfg.Certificates {
		if err := c.resolve(r); err != nil {
			return &Error{Message: fmt.Sprintf("certificate %s: %v", c.ID, err)}
		}
	}
	for _, p := range cfg.Plugins {
		p.resolved = p.Config
		if opts.PluginReferences == nil {
			continue
		}
		conf, err := opts.PluginReferences(p.Name, p.Config, r.Get)
		if err != nil {
			return &Error{Message: fmt.Sprintf("plugin '%s' (%s): %v", p.Name, p.ID, err)}
		}
		p.resolved = conf
	}
	return nil
}

// resolve fills PEM from the certificate's fields, references resolved.
func (c *Certificate) resolve(r *vault.Resolver) error {
	pem, err := c.ResolvePEM(r.Get)
	if err != nil {
		return err
	}
	c.PEM = pem
	return nil
}

// HasReferences reports whether cert, key, cert_alt or key_alt is a vault
// reference.
func (c *Certificate) HasReferences() bool {
	refs := []string{c.Cert, c.Key}
	for _, alt := range []*string{c.CertAlt, c.KeyAlt} {
		if alt != nil {
			refs = append(refs, *alt)
		}
	}
	return anyReference(refs...)
}

// ResolvePEM returns the certificate's PEM with its references resolved
// by get, checked as the schema checks literal PEM; the certificate is
// not changed. The vault rotator calls it again when secrets may have
// changed.
func (c *Certificate) ResolvePEM(get func(ref string) (string, error)) (CertificatePEM, error) {
	var out CertificatePEM
	fields := []struct {
		name string
		in   *string
		out  *string
	}{{"cert", &c.Cert, &out.Cert}, {"key", &c.Key, &out.Key}, {"cert_alt", c.CertAlt, &out.CertAlt}, {"key_alt", c.KeyAlt, &out.KeyAlt}}
	refs := false
	for _, f := range fields {
		if f.in == nil {
			continue
		}
		v := *f.in
		if vault.IsReference(v) {
			var err error
			if v, err = get(v); err != nil {
				return out, fmt.Errorf("failed to dereference '%s': %v for field '%s'", *f.in, err, f.name)
			}
			refs = true
		}
		*f.out = v
	}
	if !refs {
		return out, nil
	}
	for _, f := range fields {
		if f.in == nil || !vault.IsReference(*f.in) {
			continue
		}
		check := certValidator
		if strings.HasPrefix(f.name, "key") {
			check = keyValidator
		}
		if msg := check(*f.out); msg != "" {
			return out, fmt.Errorf("field '%s' (%s): %s", f.name, *f.in, msg)
		}
	}
	if !matches(out.Cert, out.Key) {
		return out, fmt.Errorf("certificate does not match key")
	}
	if c.CertAlt != nil && c.KeyAlt != nil && !matches(out.CertAlt, out.KeyAlt) {
		return out, fmt.Errorf("alternative certificate does not match key")
	}
	return out, nil
}

// HasReferences reports whether the plugin's config holds a vault
// reference anywhere; only the referenceable fields are resolved.
func (p *Plugin) HasReferences() bool { return holdsReference(p.Config) }

func holdsReference(v any) bool {
	switch v := v.(type) {
	case string:
		return vault.IsReference(v)
	case map[string]any:
		for _, e := range v {
			if holdsReference(e) {
				return true
			}
		}
	case []any:
		return slices.ContainsFunc(v, holdsReference)
	}
	return false
}

// anyReference reports whether one of values is a vault reference.
func anyReference(values ...string) bool {
	return slices.ContainsFunc(values, vault.IsReference)
}
