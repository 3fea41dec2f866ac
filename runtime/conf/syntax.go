package conf

import (
	"strings"
)

// assignment is one "key = value" line of kong.conf text.
type assignment struct {
	key   string
	value string
	line  int
}

// parseText reads kong.conf syntax. Lines without "=", comment lines
// (first non-blank character # or ;) and [section] lines are skipped, as
// Kong's reader skips them. A line ending in a backslash continues on the
// next line. Keys have every character other than a letter, digit or _
// replaced by _. Values lose an unescaped # and what follows it, then \#
// becomes #.
func parseText(text string) []assignment {
	var out []assignment
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		start := i + 1
		line := lines[i]
		for {
			trimmed := strings.TrimRight(line, " \t")
			if !strings.HasSuffix(trimmed, `\`) || i+1 >= len(lines) {
				break
			}
			i++
			line = strings.TrimSuffix(trimmed, `\`) + lines[i]
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			continue
		}
		key := normalizeKey(strings.TrimSpace(line[:eq]))
		if key == "" {
			continue
		}
		out = append(out, assignment{key: key, value: cleanValue(line[eq+1:]), line: start})
	}
	return out
}

// normalizeKey mirrors Penlight's variabilize: anything that cannot be part
// of an identifier becomes an underscore.
func normalizeKey(k string) string {
	b := []byte(k)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// cleanValue trims the value, drops an inline comment (an unescaped # and
// everything after it) and unescapes \#.
func cleanValue(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] == '#' && (i == 0 || v[i-1] != '\\') {
			v = v[:i]
			break
		}
	}
	return strings.ReplaceAll(strings.TrimSpace(v), `\#`, "#")
}
