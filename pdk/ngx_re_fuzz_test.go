package pdk

import (
	"strings"
	"testing"

	glua "github.com/yuin/gopher-lua"
)

// FuzzNgxReCompile translates arbitrary PCRE patterns with OpenResty's
// option letters for Go's regexp, as ngx.re does, and matches the result:
// a pattern either compiles or returns ngx.re's "pcre_compile() failed"
// error, and a compiled one finds matches inside the subject. The "x"
// option's whitespace and comment stripping is part of what is fuzzed.
func FuzzNgxReCompile(f *testing.F) {
	for _, s := range [][3]string{
		{`(\d+)-(?<name>\w+)`, "jo", "12-ab"},
		{`a # comment\n b [ #]`, "x", "ab #"},
		{`^abc$`, "aim", "x\nABC"},
		{`(?=x)`, "", "x"},
		{`\`, "x", ""},
		{`[#\]`, "xd", "]"},
		{`(a|b)*c`, "d", "ababc"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	L := glua.NewState(glua.Options{SkipOpenLibs: true})
	defer L.Close()
	f.Fuzz(func(t *testing.T, pattern, opts, subj string) {
		// Unknown letters raise a Lua error, as lua-resty-core does;
		// that is tested elsewhere.
		opts = strings.Map(func(r rune) rune {
			if strings.ContainsRune("ismxadjouUJD", r) {
				return r
			}
			return -1
		}, opts)
		c, err := compileRe(L, pattern, opts)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "pcre_compile() failed: ") {
				t.Fatalf("compile %q %q: unexpected error %v", pattern, opts, err)
			}
			return
		}
		for from := 0; from <= len(subj); from += 1 + len(subj)/3 {
			loc, err := c.findAt(subj, from)
			if err != nil {
				continue // the match timeout: a pattern that backtracks too long
			}
			if loc != nil && (loc[0] < from || loc[1] > len(subj) || loc[0] > loc[1]) {
				t.Fatalf("%q %q on %q from %d: match %v outside the subject", pattern, opts, subj, from, loc)
			}
		}
		all, err := c.findAll(subj, -1)
		if err != nil {
			return
		}
		for _, loc := range all {
			if loc[0] < 0 || loc[1] > len(subj) || loc[0] > loc[1] {
				t.Fatalf("%q %q on %q: match %v outside the subject", pattern, opts, subj, loc)
			}
		}
	})
}
