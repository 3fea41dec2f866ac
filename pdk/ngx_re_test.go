package pdk

import (
	"testing"
	"time"
)

// TestNgxRe runs PCRE-style cases through ngx.re: options, captures,
// named groups, ctx.pos, templates, and the PCRE constructs that run on
// the backtracking engine.
func TestNgxRe(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	tests := []struct {
		name, code, want string
	}{
		{"match groups", `local m = ngx.re.match("hello 1234", "([a-z]+) (\\d+)"); return m[0] .. "|" .. m[1] .. "|" .. m[2]`, "hello 1234|hello|1234"},
		{"no match", `return tostring(ngx.re.match("abc", "\\d"))`, "nil"},
		{"unmatched group is false", `local m = ngx.re.match("ab", "(a)(x)?b"); return tostring(m[2])`, "false"},
		{"named group", `local m = ngx.re.match("2024-05", "(?<y>\\d+)-(?<m>\\d+)"); return m.y .. m.m .. m[1]`, "2024052024"},
		{"caseless i", `return ngx.re.match("HeLLo", "hello", "i")[0]`, "HeLLo"},
		{"jo accepted", `return ngx.re.match("abc", "b", "jo")[0]`, "b"},
		{"dotall s", `return ngx.re.match("a\nb", "a.b", "s")[0]`, "a\nb"},
		{"no dotall", `return tostring(ngx.re.match("a\nb", "a.b"))`, "nil"},
		{"multiline m", `return ngx.re.match("x\nline2", "^line\\d$", "m")[0]`, "line2"},
		{"extended x", `return ngx.re.match("ab12", "[a-z]+ # letters\n \\d+", "x")[0]`, "ab12"},
		{"anchored a", `return tostring(ngx.re.match("xab", "ab", "a")) .. ngx.re.match("abx", "ab", "a")[0]`, "nilab"},
		{"ctx pos", `local ctx = {pos = 3}; local m = ngx.re.match("a1b2", "[a-z]\\d", "", ctx); return m[0] .. ctx.pos`, "b25"},
		{"res table reused", `local res = {}; local m = ngx.re.match("ab", "(a)", "", nil, res); return tostring(m == res) .. res[1]`, "truea"},
		{"find", `local from, to = ngx.re.find("hello world", "wor"); return from .. "," .. to`, "7,9"},
		{"find nth", `local from, to = ngx.re.find("abc123", "([a-z]+)(\\d+)", "", nil, 2); return from .. "," .. to`, "4,6"},
		{"find no match", `return tostring(ngx.re.find("abc", "z"))`, "nil"},
		{"gmatch", `local out = {}; for m in ngx.re.gmatch("a1 b2 c3", "([a-z])(\\d)") do out[#out+1] = m[1] .. m[2] end; return table.concat(out, ",")`, "a1,b2,c3"},
		{"sub template", `local s, n = ngx.re.sub("hello world", "(o)", "[$1]"); return s .. n`, "hell[o] world1"},
		{"gsub template", `local s, n = ngx.re.gsub("hello world", "o", "0"); return s .. n`, "hell0 w0rld2"},
		{"gsub braces and dollar", `return (ngx.re.gsub("ab", "(?<l>[a-z])", "${1}${l}$$"))`, "aa$bb$"},
		{"gsub function", `return (ngx.re.gsub("a1b22", "\\d+", function(m) return #m[0] end))`, "a1b2"},
		{"gsub empty matches", `return (ngx.re.gsub("abc", "", "-"))`, "-a-b-c-"},
		{"gsub anchored", `return (ngx.re.gsub("aab", "a", "x", "a"))`, "xxb"},
		{"statsd pattern", `local m = ngx.re.match("200-299", "(\\d\\d\\d)-(\\d\\d\\d)"); return m[1] + m[2]`, "499"},
		// PCRE constructs RE2 lacks run on the backtracking engine.
		{"backreference", `local m = ngx.re.match("xyabab", "(ab)\\1"); return m[0] .. "|" .. m[1]`, "abab|ab"},
		{"named backreference", `return ngx.re.match("say hello hello", "(?<w>\\w+) \\k<w>").w`, "hello"},
		{"lookahead", `return ngx.re.match("price: 42 USD", "\\d+(?= USD)")[0]`, "42"},
		{"negative lookahead", `return ngx.re.match("foobar foobaz", "foo(?!bar)\\w+")[0]`, "foobaz"},
		{"lookbehind", `local s, n = ngx.re.gsub("a%b b", "(?<!%)b", "x"); return s .. n`, "a%b x1"},
		{"kong.log format split", `local t = require("ngx.re").split("%file_src:%line_src %%x %message", "(?<!%)(%[a-z_]+)"); return table.concat(t, "|")`,
			"|%file_src|:|%line_src| %%x |%message|"},
		{"atomic group", `return tostring(ngx.re.match("aaab", "(?>a+)ab")) .. " " .. ngx.re.match("aaab", "(?>a+)b")[0]`, "nil aaab"},
		{"possessive quantifier", `return tostring(ngx.re.match("aaa", "a++a")) .. " " .. ngx.re.match("aaab", "a++b")[0]`, "nil aaab"},
		{"backtracking groups and offsets", `local m = ngx.re.match("é-xx-xx", "(?<p>x+)-\\k<p>"); local from, to = ngx.re.find("é-xx-xx", "(x+)-\\1"); return m[0] .. m[1] .. from .. to`, "xx-xxxx48"},
		{"backtracking gsub template", `return (ngx.re.gsub("abab cdcd", "(\\w\\w)\\1", "<$1>"))`, "<ab> <cd>"},
		{"backtracking gmatch", `local out = {}; for m in ngx.re.gmatch("aa b cc d", "(\\w)\\1") do out[#out+1] = m[0] end; return table.concat(out, ",")`, "aa,cc"},
		{"backtracking caseless", `return ngx.re.match("ABab", "(ab)\\1", "i")[0]`, "ABab"},
		{"neither engine", `local m, err = ngx.re.match("a", "(?R)"); return tostring(m) .. " " .. tostring(err ~= nil)`, "nil true"},
		{"split", `local t = require("ngx.re").split("a,b,,c", ","); return #t .. table.concat(t, "|")`, "4a|b||c"},
		{"split max", `local t = require("ngx.re").split("a,b,c", ",", nil, nil, 2); return table.concat(t, "|")`, "a|b,c"},
		{"split captures", `local t = require("ngx.re").split("a1b", "(\\d)"); return table.concat(t, "|")`, "a|1|b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runString(t, e.vm, tt.code); got != tt.want {
				t.Fatalf("%s\n got %q\nwant %q", tt.code, got, tt.want)
			}
		})
	}
	wantLuaError(t, e.vm, `ngx.re.match("a", "a", "z")`, `unknown flag "z" (flags "z")`)
	wantLuaError(t, e.vm, `ngx.re.sub("a", "a", "$x")`, `invalid capturing variable name found in "$x"`)
}

func TestNgxCodecs(t *testing.T) {
	tests := []struct{ code, want string }{
		{`return ngx.encode_base64("hello?")`, "aGVsbG8/"},
		{`return ngx.encode_base64("a", true)`, "YQ"},
		{`return ngx.decode_base64("YQ==") .. ngx.decode_base64("YQ")`, "aa"},
		{`return tostring(ngx.decode_base64("%%%"))`, "nil"},
		{`return ngx.md5("abc")`, "900150983cd24fb0d6963f7d28e17f72"},
		{`return #ngx.md5_bin("abc") .. #ngx.sha1_bin("abc")`, "1620"},
		{`return ngx.encode_base64(ngx.hmac_sha1("key", "The quick brown fox jumps over the lazy dog"))`, "3nybhbi3iqa8ino29wqQcBydtNk="},
		{`return ngx.crc32_short("hello") .. "," .. ngx.crc32_long("hello")`, "907060870,907060870"},
		{`return ngx.escape_uri("a b/c?d~")`, "a%20b%2Fc%3Fd~"},
		{`return ngx.escape_uri("a b/c?d", 0)`, "a%20b/c%3Fd"},
		{`return ngx.unescape_uri("a%20b+c%zz")`, "a b c%zz"},
		{`return ngx.encode_args({b = "x y", a = true, c = false, d = {1, 2}})`, "a&b=x%20y&d=1&d=2"},
		{`local t = ngx.decode_args("a=1&b&a=2&c=x%20y"); return t.a[1] .. t.a[2] .. tostring(t.b) .. t.c`, "12truex y"},
		{`return ngx.quote_sql_str("it's\n")`, `'it\'s\n'`},
		{`return ngx.http_time(1290079655)`, "Thu, 18 Nov 2010 11:27:35 GMT"},
		{`return ngx.cookie_time(1290079655)`, "Thu, 18-Nov-10 11:27:35 GMT"},
		{`return ngx.parse_http_time("Thu, 18 Nov 2010 11:27:35 GMT")`, "1290079655"},
		{`return tostring(ngx.parse_http_time("yesterday"))`, "nil"},
		{`return ngx.worker.id() .. ngx.worker.count() .. tostring(ngx.worker.exiting()) .. tostring(ngx.worker.pid() > 0)`, "01falsetrue"},
		{`return ngx.config.subsystem .. ngx.config.nginx_version .. ngx.config.prefix()`, "stream1027001/usr/local/kong/"},
	}
	e := newEnv(t, PhasePreread, Options{Configuration: Configuration{"prefix": "/usr/local/kong"}})
	checkLua(t, e.vm, tests)
}

// TestNgxReTimeout: a pathological pattern on the backtracking engine
// fails with an error once reMatchTimeout has passed, instead of stalling
// the VM.
func TestNgxReTimeout(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	start := time.Now()
	got := runString(t, e.vm, `local m, err = ngx.re.match(string.rep("a", 40) .. "!", "^(\\w+\\1?)+$"); return tostring(m) .. " " .. tostring(err)`)
	if want := "nil " + errReTimeout.Error(); got != want {
		t.Fatalf("got %q; want %q", got, want)
	}
	if took := time.Since(start); took > 20*reMatchTimeout {
		t.Errorf("the match stopped after %v; want about %v", took, reMatchTimeout)
	}
	got = runString(t, e.vm, `local s, n, err = ngx.re.gsub(string.rep("a", 40) .. "!", "(\\w+\\1?)+$", "x"); return tostring(s) .. " " .. tostring(err)`)
	if want := "nil " + errReTimeout.Error(); got != want {
		t.Fatalf("gsub: got %q; want %q", got, want)
	}
}
