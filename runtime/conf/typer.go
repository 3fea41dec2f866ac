package conf

import (
	"fmt"
	"strings"
	"time"
)

// typer reads resolved values as typed properties, collecting a Problem
// for each invalid one, and remembers which properties it read so a test
// can prove every default is used.
type typer struct {
	values   map[string]Value
	dir      string   // resolves relative paths, as the working directory
	env      []string // the environment, for the env vault
	prefix   string   // resolves relative log paths
	read     map[string]bool
	problems Errors
	warnings []Problem
	// secrets are the vault references resolved in values, which fail
	// writes back as references.
	secrets map[string][]secret
}

func (t *typer) lookup(key string) (string, bool) {
	t.read[key] = true
	v, ok := t.values[key]
	return v.Raw, ok
}

func (t *typer) fail(key, format string, args ...any) {
	v := t.values[key]
	msg := fmt.Sprintf(format, args...)
	for _, s := range t.secrets[key] {
		msg = strings.ReplaceAll(msg, s.value, s.ref)
		v.Raw = strings.ReplaceAll(v.Raw, s.value, s.ref)
	}
	t.problems = append(t.problems, Problem{Key: key, Value: v.Raw, Source: v.Source, Msg: msg})
}

// warn records a suspicious but valid value.
func (t *typer) warn(key, format string, args ...any) {
	v := t.values[key]
	t.warnings = append(t.warnings, Problem{Key: key, Source: v.Source, Msg: fmt.Sprintf(format, args...)})
}

// accept marks properties gong reads for compatibility only.
func (t *typer) accept(keys ...string) {
	for _, k := range keys {
		t.read[k] = true
	}
}

func (t *typer) str(key string) string {
	v, _ := t.lookup(key)
	return v
}

// path reads a path property and makes it absolute.
func (t *typer) path(key string) string {
	v, ok := t.lookup(key)
	if !ok {
		return ""
	}
	return absPath(t.dir, v)
}

// logPath reads a log file property, relative to the prefix as in Kong;
// it may be off.
func (t *typer) logPath(key string) string {
	v, ok := t.lookup(key)
	if !ok || v == "off" {
		return v
	}
	return absPath(t.prefix, v)
}

// boolean is Kong's boolean: on or true is true, anything else false.
func (t *typer) boolean(key string) bool {
	v, _ := t.lookup(key)
	return v == "on" || v == "true"
}

// onOff is an nginx flag: on or off, anything else is an error.
func (t *typer) onOff(key string) (value, set bool) {
	v, ok := t.lookup(key)
	if !ok {
		return false, false
	}
	if v != "on" && v != "off" {
		t.fail(key, "%s has an invalid value: '%s' (on, off)", key, v)
	}
	return v == "on", true
}

func (t *typer) number(key string) (float64, bool) {
	v, ok := t.lookup(key)
	if !ok {
		return 0, false
	}
	n, ok := parseNumber(v)
	if !ok {
		t.fail(key, "%s is not a number: '%s'", key, v)
	}
	return n, ok
}

// integer reads a whole number at least lo; msg is the error for a value
// below lo, in Kong's words.
func (t *typer) integer(key string, lo int, msg string) int {
	n, ok := t.number(key)
	if !ok {
		return 0
	}
	if n != float64(int(n)) || n < float64(lo) || n > 1<<31-1 {
		t.fail(key, "%s", msg)
		return 0
	}
	return int(n)
}

// seconds reads a number of seconds (fractions allowed) at least zero.
func (t *typer) seconds(key string) time.Duration { return t.nonNegative(key, time.Second) }

// nonNegative reads a number of units (fractions allowed) at least zero,
// and at most a billion seconds.
func (t *typer) nonNegative(key string, unit time.Duration) time.Duration {
	n, ok := t.number(key)
	if !ok {
		return 0
	}
	if n < 0 || n*float64(unit) > 1e9*float64(time.Second) {
		t.fail(key, "%s must be 0 or greater", key)
		return 0
	}
	return time.Duration(n * float64(unit))
}

func (t *typer) enum(key string, allowed ...string) string {
	v, ok := t.lookup(key)
	if !ok {
		return ""
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	t.fail(key, "%s has an invalid value: '%s' (%s)", key, v, strings.Join(allowed, ", "))
	return ""
}

func (t *typer) array(key string) []string {
	v, _ := t.lookup(key)
	return splitArray(v)
}

func (t *typer) duration(key string) time.Duration {
	v, ok := t.lookup(key)
	if !ok {
		return 0
	}
	d, ok := parseDuration(v)
	if !ok {
		t.fail(key, "%s is not a valid time: '%s' (expected a number of seconds or an nginx time such as 500ms, 30s, 10m, 1d)", key, v)
	}
	return d
}

// positiveDuration reads a duration that must be set and above zero.
func (t *typer) positiveDuration(key string) time.Duration {
	d := t.duration(key)
	if v, set := t.lookup(key); d <= 0 && (!set || isDuration(v)) {
		t.fail(key, "%s must be a time greater than 0", key)
	}
	return d
}

func isDuration(v string) bool { _, ok := parseDuration(v); return ok }

func (t *typer) size(key string) int64 {
	v, ok := t.lookup(key)
	if !ok {
		return 0
	}
	n, ok := parseSize(v)
	if !ok {
		t.fail(key, "%s is not a valid size: '%s' (expected bytes with an optional k, m or g suffix, such as 16k)", key, v)
	}
	return n
}
