package conf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gong-proxy/gong"
)

// DefaultSearchPaths are read, first existing wins, when no kong.conf path
// is given, as Kong does.
var DefaultSearchPaths = []string{"/etc/kong/kong.conf", "/etc/kong.conf"}

// Options say where Load reads from.
type Options struct {
	// Path is the kong.conf given with -c; it must exist. If empty, the
	// first existing file of SearchPaths is read, and none is fine.
	Path string
	// SearchPaths replaces DefaultSearchPaths when not nil.
	SearchPaths []string
	// Env is the environment as KEY=VALUE pairs; KONG_<NAME> variables
	// override the file. Nil reads no environment.
	Env []string
	// Overrides are command-line values (such as --prefix), the highest
	// precedence.
	Overrides map[string]string
	// Dir resolves relative paths (prefix, declarative_config); empty
	// means the working directory.
	Dir string
}

// dynamicPrefixes name properties that exist without a default: injected
// nginx directives and Kong's plugin-server and vault settings.
var dynamicPrefixes = []string{"nginx_", "pluginserver_", "vault_"}

// renamed are Kong's deprecated property names and their replacements.
var renamed = map[string]string{
	"opentelemetry_tracing":               "tracing_instrumentations",
	"opentelemetry_tracing_sampling_rate": "tracing_sampling_rate",
	"router_consistency":                  "worker_consistency",
}

// Load reads, merges and validates a configuration. It returns the
// Config and warnings (unknown properties, deprecated names), or an Errors
// listing every invalid property, or an error when the file cannot be
// read.
func Load(opts Options) (*Config, []Problem, error) {
	l := &loader{values: map[string]Value{}, known: map[string]bool{}}
	for _, a := range parseText(string(gong.DefaultConf)) {
		l.known[a.key] = true
		l.set(a.key, a.value, Source{Kind: FromDefaults, Line: a.line})
	}
	if err := l.readFile(opts); err != nil {
		return nil, nil, err
	}
	l.readEnv(opts.Env)
	overrides := make([]string, 0, len(opts.Overrides))
	for k := range opts.Overrides {
		overrides = append(overrides, k)
	}
	sort.Strings(overrides)
	for _, k := range overrides {
		l.set(k, opts.Overrides[k], Source{Kind: FromCommandLine})
	}
	resolved, secrets, problems := dereference(l.values, vaultSettings(l.values, opts.Dir, opts.Env))
	if len(problems) == 0 {
		var c *Config
		var warnings []Problem
		c, warnings, problems = build(resolved, secrets, opts)
		l.warnings = append(l.warnings, warnings...)
		// .kong_env and kong.configuration keep the references.
		c.values = l.values
		if len(problems) == 0 {
			return c, l.warnings, nil
		}
	}
	{
		sort.SliceStable(problems, func(i, j int) bool {
			a, b := problems[i].Source, problems[j].Source
			if a.Kind != b.Kind {
				return a.Kind < b.Kind
			}
			return a.File < b.File || a.File == b.File && a.Line < b.Line
		})
		return nil, l.warnings, problems
	}
}

type loader struct {
	values   map[string]Value
	known    map[string]bool
	warnings []Problem
}

// set records a value; an empty value, or NONE where Kong reads it as
// "no value", unsets the property.
func (l *loader) set(key, raw string, src Source) {
	if raw == "" || raw == "NONE" && (src.Kind == FromDefaults || strings.HasPrefix(key, "nginx_")) {
		delete(l.values, key)
		return
	}
	l.values[key] = Value{Raw: raw, Source: src}
}

func (l *loader) isProperty(key string) bool {
	if l.known[key] {
		return true
	}
	for _, p := range dynamicPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func (l *loader) readFile(opts Options) error {
	path := opts.Path
	if path == "" {
		search := opts.SearchPaths
		if search == nil {
			search = DefaultSearchPaths
		}
		for _, p := range search {
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
		if path == "" {
			return nil
		}
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no file at: %s", path)
	}
	if err != nil {
		return err
	}
	for _, a := range parseText(string(data)) {
		src := Source{Kind: FromFile, File: path, Line: a.line}
		key := l.rename(a.key, src)
		if !l.isProperty(key) {
			l.warnings = append(l.warnings, Problem{Key: key, Value: a.value, Source: src,
				Msg: unknownMessage(key, l.known)})
			continue
		}
		l.set(key, a.value, src)
	}
	return nil
}

// envNotProperties are KONG_ variables Kong's own tooling reads that
// name no property; they draw no warning.
var envNotProperties = map[string]bool{"KONG_IS_TESTING": true}

// readEnv applies KONG_<NAME> for every property, and the dynamic
// KONG_NGINX_*, KONG_VAULT_* and KONG_PLUGINSERVER_* even for keys that
// appear nowhere else, as Kong does. Any other KONG_ variable is ignored
// with the warning an unknown key in the file draws.
func (l *loader) readEnv(env []string) {
	sorted := append([]string(nil), env...)
	sort.Strings(sorted)
	for _, kv := range sorted {
		name, raw, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "KONG_") || envNotProperties[name] {
			continue
		}
		src := Source{Kind: FromEnv, Env: name}
		key := l.rename(strings.ToLower(strings.TrimPrefix(name, "KONG_")), src)
		if !l.isProperty(key) {
			l.warnings = append(l.warnings, Problem{Key: key, Source: src,
				Msg: unknownMessage(key, l.known)})
			continue
		}
		l.set(key, cleanValue(raw), src)
	}
}

func (l *loader) rename(key string, src Source) string {
	to, ok := renamed[key]
	if !ok {
		return key
	}
	l.warnings = append(l.warnings, Problem{Key: key, Source: src,
		Msg: fmt.Sprintf("the '%s' configuration property is deprecated, use '%s' instead", key, to)})
	return to
}

// unknownMessage names the closest known property, when one is close.
func unknownMessage(key string, known map[string]bool) string {
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	sort.Strings(names)
	best, bestDist := "", len(key)/3+2
	for _, k := range names {
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return fmt.Sprintf("unknown property '%s' ignored", key)
	}
	return fmt.Sprintf("unknown property '%s' ignored; did you mean '%s'?", key, best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// absPath resolves p against dir (or the working directory).
func absPath(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	if dir == "" {
		if wd, err := os.Getwd(); err == nil {
			dir = wd
		}
	}
	return filepath.Join(dir, p)
}
