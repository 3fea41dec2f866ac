package pdk

import (
	"strings"
	"testing"

	glua "github.com/yuin/gopher-lua"
)

// FuzzCJSON decodes arbitrary text with cjson.safe's settings and encodes
// what it decoded: neither may panic, and once encoded, a value must come
// back the same through another decode and encode.
func FuzzCJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,2,{"b":null}],"c":"\u00e9\n","d":true,"e":-1.5e+300}`,
		`[[[[[]]]]]`, `"\ud83d\ude00"`, `"\ud800"`, `1e400`, `-0`, `{"a":1,"a":2}`,
		`[1,null,3]`, `{"1":1,"2":2}`, `  "x"  `, `[01]`, `{"\/":"\b\f\r\t"}`,
		strings.Repeat("[", 1001) + strings.Repeat("]", 1001),
	} {
		f.Add(s)
	}
	L := glua.NewState(glua.Options{SkipOpenLibs: true})
	defer L.Close()
	c := defaultConfig(true)
	c.bindVM(L)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := (&decoder{L: L, c: c, s: s}).decodeAll()
		if err != nil {
			return
		}
		once, err := c.encode(L, v)
		if err != nil {
			// Only numbers out of range (1e400 decodes to infinity)
			// cannot be encoded again.
			if !strings.Contains(err.Error(), "must not be NaN or Infinity") {
				t.Fatalf("decoded %q but cannot encode it: %v", s, err)
			}
			return
		}
		again, err := (&decoder{L: L, c: c, s: string(once)}).decodeAll()
		if err != nil {
			t.Fatalf("cannot decode %q, the encoding of %q: %v", once, s, err)
		}
		twice, err := c.encode(L, again)
		if err != nil {
			t.Fatalf("%q encodes as %q, which decodes to a value that cannot be encoded: %v", s, once, err)
		}
		third, err := (&decoder{L: L, c: c, s: string(twice)}).decodeAll()
		if err != nil || !sameLua(again, third) {
			t.Fatalf("%q encodes as %q, then as %q, which decodes differently (%v)", s, once, twice, err)
		}
	})
}

// sameLua compares decoded values: tables by content, whatever the order
// their keys are encoded in.
func sameLua(a, b glua.LValue) bool {
	ta, ok := a.(*glua.LTable)
	if !ok {
		return a == b
	}
	tb, ok := b.(*glua.LTable)
	if !ok || ta.Len() != tb.Len() || ta.Metatable != tb.Metatable {
		return false
	}
	same := true
	n := 0
	ta.ForEach(func(k, v glua.LValue) {
		n++
		same = same && sameLua(v, tb.RawGet(k))
	})
	tb.ForEach(func(glua.LValue, glua.LValue) { n-- })
	return same && n == 0
}
