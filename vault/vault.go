package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Bundled are the vaults gong has, which kong.conf's vaults = bundled
// enables.
var Bundled = []string{"env", "file"}

// MaxFileBytes bounds what the file vault reads from one file.
const MaxFileBytes = 1 << 20

// cacheSize bounds the references a Resolver remembers, as Kong's LRU of
// 1000 secrets.
const cacheSize = 1000

// DefaultRotationInterval is how often the references a configuration
// uses are read again, as Kong's rotation timer (60 s).
const DefaultRotationInterval = 60 * time.Second

// MinRotationInterval bounds vault_rotation_interval from below, so the
// rotator cannot spin.
const MinRotationInterval = 100 * time.Millisecond

// Settings are kong.conf's vault properties.
type Settings struct {
	// Enabled is the vaults property as written: names, "bundled" for
	// Bundled, "off" alone for none. Nil means bundled.
	Enabled []string
	// Properties are the vault_<name>_<field> properties by key, e.g.
	// vault_env_prefix = GONG_ or vault_file_base_dir = /run/secrets.
	Properties map[string]string
	// LookupEnv reads the environment; nil is os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// RotationInterval is vault_rotation_interval (as Kong, which reads it
// from KONG_VAULT_ROTATION_INTERVAL), DefaultRotationInterval when unset.
func (s Settings) RotationInterval() (time.Duration, error) {
	v, ok := s.Properties["vault_rotation_interval"]
	if !ok || strings.TrimSpace(v) == "" {
		return DefaultRotationInterval, nil
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	d := time.Duration(secs * float64(time.Second))
	if err != nil || d < MinRotationInterval || d > 24*time.Hour {
		return 0, &PropertyError{Property: "vault_rotation_interval", Msg: "expected a number of seconds from 0.1 to 86400"}
	}
	return d, nil
}

// Entity is a vaults entity of kong.yml: a prefix that references use in
// place of a vault's name, with the config it applies.
type Entity struct {
	Prefix string
	Name   string
	Config map[string]any
}

// config is one vault's settings.
type config struct {
	prefix       string // env: prepended to the variable name
	ttl          time.Duration
	negTTL       time.Duration
	resurrectTTL time.Duration
}

// fields are the config fields each vault accepts; base_dir is kong.conf
// only (vault_file_base_dir), so that a kong.yml cannot widen it.
var fields = map[string][]string{
	"env":  {"prefix", "ttl", "neg_ttl", "resurrect_ttl"},
	"file": {"ttl", "neg_ttl", "resurrect_ttl"},
}

var envPrefixRE = regexp.MustCompile(`^[A-Za-z_-][A-Za-z0-9_-]*$`)

// CheckConfig validates an entity's name and config and returns the
// field at fault ("name" or "config.<field>") and Kong's message, or "".
func CheckConfig(name string, cfg map[string]any) (field, msg string) {
	if _, ok := fields[name]; !ok {
		return "name", fmt.Sprintf("vault '%s' is not installed", name)
	}
	_, field, err := parseConfig(name, config{}, func(yield func(string, any) bool) {
		for k, v := range cfg {
			if !yield(k, v) {
				return
			}
		}
	})
	if err != nil {
		return "config." + field, err.Error()
	}
	return "", ""
}

// parseConfig applies fields over base. Values may be numbers or the
// strings of kong.conf and reference queries.
func parseConfig(name string, base config, each func(func(string, any) bool)) (config, string, error) {
	c := base
	var bad string
	var err error
	each(func(k string, v any) bool {
		if v == nil {
			return true // unset, as Kong stores a field without a value
		}
		if !slices.Contains(fields[name], k) {
			bad, err = k, errors.New("unknown field")
			return false
		}
		if k == "prefix" {
			s, ok := v.(string)
			if !ok || !envPrefixRE.MatchString(s) {
				bad, err = k, fmt.Errorf("invalid value: %v", v)
				return false
			}
			c.prefix = s
			return true
		}
		var secs float64
		switch v := v.(type) {
		case float64:
			secs = v
		case int:
			secs = float64(v)
		case string:
			secs, err = strconv.ParseFloat(strings.TrimSpace(v), 64)
		default:
			secs = -1
		}
		if err != nil || secs < 0 {
			bad, err = k, errors.New("expected a number of seconds, 0 or greater")
			return false
		}
		d := time.Duration(secs * float64(time.Second))
		switch k {
		case "ttl":
			c.ttl = d
		case "neg_ttl":
			c.negTTL = d
		case "resurrect_ttl":
			c.resurrectTTL = d
		}
		return true
	})
	return c, bad, err
}

// PropertyError is an invalid vault_* property.
type PropertyError struct{ Property, Msg string }

func (e *PropertyError) Error() string { return e.Property + ": " + e.Msg }

// Resolver resolves references; it is safe for concurrent use.
type Resolver struct {
	enabled   map[string]bool
	base      map[string]config // by vault name, from kong.conf
	entities  map[string]Entity // by prefix
	fileDir   string
	lookupEnv func(string) (string, bool)
	now       func() time.Time

	mu    sync.Mutex
	cache *lru.Cache[string, *entry]
}

// entry is a cached resolution.
type entry struct {
	value     string
	err       error
	expires   time.Time // zero: never
	resurrect time.Time // a failed refresh serves value until then
}

// New returns a Resolver for kong.conf's settings and kong.yml's vaults
// entities. It fails on a setting no vault accepts.
func New(s Settings, entities []Entity) (*Resolver, error) {
	r := &Resolver{enabled: map[string]bool{}, base: map[string]config{}, entities: map[string]Entity{},
		lookupEnv: s.LookupEnv, now: time.Now}
	if r.lookupEnv == nil {
		r.lookupEnv = os.LookupEnv
	}
	r.cache, _ = lru.New[string, *entry](cacheSize)
	enabled := s.Enabled
	if enabled == nil {
		enabled = []string{"bundled"}
	}
	if !(len(enabled) == 1 && enabled[0] == "off") {
		for _, n := range enabled {
			if n == "bundled" {
				for _, b := range Bundled {
					r.enabled[b] = true
				}
				continue
			}
			r.enabled[n] = true
		}
	}
	for _, name := range Bundled {
		c, field, err := parseConfig(name, config{}, func(yield func(string, any) bool) {
			for _, f := range fields[name] {
				if v, ok := s.Properties["vault_"+name+"_"+f]; ok && !yield(f, v) {
					return
				}
			}
		})
		if err != nil {
			return nil, &PropertyError{Property: "vault_" + name + "_" + field, Msg: err.Error()}
		}
		r.base[name] = c
	}
	if _, err := s.RotationInterval(); err != nil {
		return nil, err
	}
	r.fileDir = s.Properties["vault_file_base_dir"]
	for _, e := range entities {
		r.entities[e.Prefix] = e
	}
	return r, nil
}

// Dereference returns value itself, or the secret it references.
func (r *Resolver) Dereference(value string) (string, error) {
	if !IsReference(value) {
		return value, nil
	}
	return r.Get(value)
}

// Get resolves a reference, from the cache while its ttl lasts.
func (r *Resolver) Get(ref string) (string, error) {
	value, _, err := r.Lookup(ref)
	return value, err
}

// Lookup is Get that also reports a failed read hidden by resurrect_ttl:
// stale is the read's error while value is the previous one, served
// until resurrect_ttl runs out. The rotator uses it to log the failure.
func (r *Resolver) Lookup(ref string) (value string, stale, err error) {
	now := r.now()
	r.mu.Lock()
	cached, ok := r.cache.Get(ref)
	r.mu.Unlock()
	if ok && (cached.expires.IsZero() || now.Before(cached.expires)) {
		return cached.value, nil, cached.err
	}
	value, cfg, err := r.fetch(ref)
	if err != nil {
		if ok && cached.err == nil && now.Before(cached.resurrect) {
			return cached.value, err, nil
		}
		if cfg.negTTL > 0 {
			r.store(ref, &entry{err: err, expires: now.Add(cfg.negTTL)})
		} else {
			r.mu.Lock()
			r.cache.Remove(ref)
			r.mu.Unlock()
		}
		return "", nil, err
	}
	e := &entry{value: value}
	if cfg.ttl > 0 {
		e.expires = now.Add(cfg.ttl)
		e.resurrect = e.expires.Add(cfg.resurrectTTL)
	}
	r.store(ref, e)
	return value, nil, nil
}

func (r *Resolver) store(ref string, e *entry) {
	r.mu.Lock()
	r.cache.Add(ref, e)
	r.mu.Unlock()
}

// Flush forgets every cached secret (kong.vault.flush).
func (r *Resolver) Flush() {
	r.mu.Lock()
	r.cache.Purge()
	r.mu.Unlock()
}

// fetch reads a reference from its vault, with the config that applies.
func (r *Resolver) fetch(ref string) (string, config, error) {
	p, err := Parse(ref)
	if err != nil {
		return "", config{}, err
	}
	name, cfg := p.Name, config{}
	if e, ok := r.entities[p.Name]; ok {
		name = e.Name
		cfg, _, err = parseConfig(name, r.base[name], func(yield func(string, any) bool) {
			for k, v := range e.Config {
				if !yield(k, v) {
					return
				}
			}
		})
	} else {
		cfg = r.base[name]
	}
	if !r.enabled[name] || fields[name] == nil || err != nil {
		return "", cfg, fmt.Errorf("vault not found (%s) [%s]", p.Name, ref)
	}
	cfg, field, err := parseConfig(name, cfg, func(yield func(string, any) bool) {
		for k, v := range p.Config {
			if !yield(k, v) {
				return
			}
		}
	})
	if err != nil {
		return "", cfg, fmt.Errorf("invalid config %s: %v [%s]", field, err, ref)
	}
	var value string
	switch name {
	case "env":
		value, err = r.env(cfg, p)
	case "file":
		value, err = r.file(p)
	}
	if err == nil && p.Key != "" {
		value, err = jsonField(value, p.Key)
	}
	if err != nil {
		return "", cfg, fmt.Errorf("could not get value from external vault (%v) [%s]", err, ref)
	}
	return value, cfg, nil
}

// env reads <PREFIX><RESOURCE> upper-cased with "-" as "_", and version
// 2 from its _PREVIOUS sibling, as Kong's env vault.
func (r *Resolver) env(cfg config, p *Reference) (string, error) {
	name := strings.ToUpper(strings.ReplaceAll(cfg.prefix+p.Resource, "-", "_"))
	if p.Version == 2 {
		name += "_PREVIOUS"
	}
	v, ok := r.lookupEnv(name)
	if !ok {
		return "", fmt.Errorf("no value found (%s)", p.Resource)
	}
	return v, nil
}

// file reads the file named by the resource under vault_file_base_dir;
// the path may not leave that directory, through ".." or a symbolic link.
// One trailing newline is dropped.
func (r *Resolver) file(p *Reference) (string, error) {
	if r.fileDir == "" {
		return "", errors.New("no value found (the file vault needs vault_file_base_dir)")
	}
	f, err := os.OpenInRoot(r.fileDir, p.Resource)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("no value found (%s)", p.Resource)
		}
		return "", fmt.Errorf("no value found (%s: outside vault_file_base_dir or unreadable)", p.Resource)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("no value found (%s: unreadable)", p.Resource)
	}
	if len(data) > MaxFileBytes {
		return "", fmt.Errorf("no value found (%s: larger than %d bytes)", p.Resource, MaxFileBytes)
	}
	s := strings.TrimSuffix(string(data), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

// jsonField picks key from a JSON object, never quoting the value in
// errors.
func jsonField(value, key string) (string, error) {
	var obj map[string]any
	if json.Unmarshal([]byte(value), &obj) != nil {
		return "", errors.New("could not get subfield value: the secret is not a JSON object")
	}
	v, ok := obj[key]
	if !ok {
		return "", fmt.Errorf("could not get subfield value: subfield %s not found in JSON secret", key)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("could not get subfield value: unexpected %T value in JSON secret for subfield %s", v, key)
	}
	return s, nil
}

// Current forwards to the Resolver last Set: Lua VMs are made before the
// configuration whose vaults they resolve with is loaded. Before Set it
// resolves nothing.
type Current struct{ r atomic.Pointer[Resolver] }

// Set makes r the Resolver used.
func (c *Current) Set(r *Resolver) { c.r.Store(r) }

// Get resolves ref with the current Resolver.
func (c *Current) Get(ref string) (string, error) {
	r := c.r.Load()
	if r == nil {
		return "", fmt.Errorf("vault not ready [%s]", ref)
	}
	return r.Get(ref)
}

// Flush flushes the current Resolver's cache.
func (c *Current) Flush() {
	if r := c.r.Load(); r != nil {
		r.Flush()
	}
}
