package lua

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// rewriteEscapes turns the string escapes LuaJIT and Lua 5.2+ accept but
// gopher-lua's Lua 5.1 lexer does not into 5.1 ones, leaving everything
// else of the source as it is: \xNN becomes \DDD, \u{XXXX} becomes the
// \DDD bytes of its UTF-8 encoding, and \z drops itself and the white
// space after it. Long strings and comments are left alone, as Lua does.
// Newlines a \z drops are written after the string ends, so later lines
// keep their numbers.
func rewriteEscapes(src string) string {
	if !strings.Contains(src, `\x`) && !strings.Contains(src, `\z`) && !strings.Contains(src, `\u{`) {
		return src
	}
	var b strings.Builder
	b.Grow(len(src))
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '-' && strings.HasPrefix(src[i:], "--"):
			end := len(src)
			if level, ok := longBracket(src[i+2:]); ok {
				if j := strings.Index(src[i+2:], "]"+strings.Repeat("=", level)+"]"); j >= 0 {
					end = i + 2 + j + level + 2
				}
			} else if j := strings.IndexByte(src[i:], '\n'); j >= 0 {
				end = i + j
			}
			b.WriteString(src[i:end])
			i = end
		case c == '[':
			level, ok := longBracket(src[i:])
			if !ok {
				b.WriteByte(c)
				i++
				continue
			}
			end := len(src)
			if j := strings.Index(src[i:], "]"+strings.Repeat("=", level)+"]"); j >= 0 {
				end = i + j + level + 2
			}
			b.WriteString(src[i:end])
			i = end
		case c == '"' || c == '\'':
			i = rewriteString(&b, src, i)
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// longBracket reports whether s starts with a long bracket ([[, [=[, ...)
// and its level.
func longBracket(s string) (int, bool) {
	if !strings.HasPrefix(s, "[") {
		return 0, false
	}
	level := 0
	for level+1 < len(s) && s[level+1] == '=' {
		level++
	}
	return level, level+1 < len(s) && s[level+1] == '['
}

// rewriteString copies the short string starting at src[i] (its quote)
// and returns the index after it.
func rewriteString(b *strings.Builder, src string, i int) int {
	quote := src[i]
	b.WriteByte(quote)
	i++
	newlines := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == quote:
			b.WriteByte(c)
			b.WriteString(strings.Repeat("\n", newlines))
			return i + 1
		case c == '\n':
			b.WriteByte(c) // an unfinished string: the lexer reports it
			return i + 1
		case c != '\\' || i+1 >= len(src):
			b.WriteByte(c)
			i++
		case src[i+1] == 'x' && i+3 < len(src) && isHex(src[i+2]) && isHex(src[i+3]):
			n, _ := strconv.ParseUint(src[i+2:i+4], 16, 8)
			writeByteEscape(b, byte(n))
			i += 4
		case src[i+1] == 'z':
			i += 2
			for i < len(src) && strings.IndexByte(" \t\r\n\v\f", src[i]) >= 0 {
				if src[i] == '\n' {
					newlines++
				}
				i++
			}
		case src[i+1] == 'u' && i+2 < len(src) && src[i+2] == '{':
			end := strings.IndexByte(src[i:], '}')
			cp, err := strconv.ParseUint(src[i+3:i+max(end, 3)], 16, 32)
			if end < 0 || err != nil || cp > utf8.MaxRune {
				b.WriteString(src[i : i+2]) // left for the lexer to refuse
				i += 2
				continue
			}
			for _, x := range []byte(string(rune(cp))) {
				writeByteEscape(b, x)
			}
			i += end + 1
		default:
			b.WriteString(src[i : i+2]) // any other escape, \" and \\ included
			i += 2
		}
	}
	return i
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// writeByteEscape writes \DDD, three digits so a following digit is not
// taken into it.
func writeByteEscape(b *strings.Builder, x byte) {
	b.WriteByte('\\')
	s := strconv.Itoa(int(x))
	b.WriteString(strings.Repeat("0", 3-len(s)) + s)
}
