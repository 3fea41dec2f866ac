package pdk

import "testing"

func TestCJSONEncode(t *testing.T) {
	tests := []struct{ name, code, want string }{
		{"empty table", "return cjson.encode({})", "{}"},
		{"array_mt", "return cjson.encode(setmetatable({}, cjson.array_mt))", "[]"},
		{"empty_array_mt", "return cjson.encode(setmetatable({}, cjson.empty_array_mt))", "[]"},
		{"empty_array", "return cjson.encode({a = cjson.empty_array})", `{"a":[]}`},
		{"null", "return cjson.encode({cjson.null, ngx.null})", "[null,null]"},
		{"nested", "return cjson.encode({a = {b = {1, 2, {c = true}}}})", `{"a":{"b":[1,2,{"c":true}]}}`},
		{"one", "return cjson.encode(1)", "1"},
		{"fraction", "return cjson.encode(1.5)", "1.5"},
		{"1e15", "return cjson.encode(1e15)", "1e+15"},
		{"15 digits", "return cjson.encode(123456789012345)", "1.2345678901234e+14"},
		{"negative zero", "return cjson.encode(-0.0)", "-0"},
		{"big int", "return cjson.encode(2^53)", "9.007199254741e+15"},
		{"small", "return cjson.encode(0.1)", "0.1"},
		{"slash", `return cjson.encode("a/b")`, `"a\/b"`},
		{"controls", "return cjson.encode('\\0\\1\\b\\f\\n\\r\\t\\127\"\\\\')", `"\u0000\u0001\b\f\n\r\t\u007f\"\\"`},
		{"unicode raw", `return cjson.encode("héllo")`, `"héllo"`},
		{"runs between escapes", `return cjson.encode('ab"cd\\ef/gh\ni\1jk')`, `"ab\"cd\\ef\/gh\ni\u0001jk"`},
		{"number key", "return cjson.encode({[1.5] = 1})", `{"1.5":1}`},
		{"sparse ok", "return cjson.encode({[1] = 1, [3] = 3})", "[1,null,3]"},
		{"precision", "cjson.encode_number_precision(16); return cjson.encode(2^53)", "9007199254740992"},
		{"empty as array", "cjson.encode_empty_table_as_object(false); return cjson.encode({})", "[]"},
		{"no slash escape", `cjson.encode_escape_forward_slash(false); return cjson.encode("a/b")`, `"a/b"`},
		{"safe sparse", "return select(2, safe.encode({[20] = 1}))", "Cannot serialise table: excessively sparse array"},
		{"safe function", "return select(2, safe.encode({f = print}))", "Cannot serialise function: type not supported"},
		{"safe nan", "return select(2, safe.encode(0/0))", "Cannot serialise number: must not be NaN or Infinity"},
		{"safe key", "return select(2, safe.encode({[true] = 1}))", "Cannot serialise table: table key must be a number or string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, PhasePreread, Options{})
			got := runString(t, e.vm, "local cjson = require 'cjson'.new(); local safe = require 'cjson.safe'\n"+tt.code)
			if got != tt.want {
				t.Fatalf("%s = %s; want %s", tt.code, got, tt.want)
			}
		})
	}
}

func TestCJSONDecode(t *testing.T) {
	tests := []struct{ name, code, want string }{
		{"object", `local t = cjson.decode('{"a":[1,2.5,"x"],"b":{"c":false}}') return t.a[1] + t.a[2] .. t.a[3] .. tostring(t.b.c)`, "3.5xfalse"},
		{"null", `return tostring(cjson.decode('[null]')[1] == cjson.null)`, "true"},
		{"escapes", `return cjson.decode('"\\u00e9\\n\\/\\ud83d\\ude00"')`, "é\n/😀"},
		{"roundtrip", `return cjson.encode(cjson.decode('{"a":[]}'))`, `{"a":{}}`},
		{"array_mt", `cjson.decode_array_with_array_mt(true) return cjson.encode(cjson.decode('{"a":[]}'))`, `{"a":[]}`},
		{"empty input", `return select(2, safe.decode(''))`, "Expected value but found T_END at character 1"},
		{"bad token", `return select(2, safe.decode('abc'))`, "Expected value but found invalid token at character 1"},
		{"trailing", `return select(2, safe.decode('{} x'))`, "Expected the end but found invalid token at character 4"},
		{"missing colon", `return select(2, safe.decode('{"a" 1}'))`, "Expected colon but found T_NUMBER at character 6"},
		{"array end", `return select(2, safe.decode('[1 2]'))`, "Expected comma or array end but found T_NUMBER at character 4"},
		{"object end", `return select(2, safe.decode('{"a":1 "b"}'))`, "Expected comma or object end but found T_STRING at character 8"},
		{"key", `return select(2, safe.decode('{1:2}'))`, "Expected object key string but found T_NUMBER at character 2"},
		{"string end", `return select(2, safe.decode('"abc'))`, "Expected value but found unexpected end of string at character 1"},
		{"bad escape", `return select(2, safe.decode('"\\x"'))`, "Expected value but found invalid escape code at character 1"},
		{"leading zero", `return select(2, safe.decode('01'))`, "Expected value but found invalid number at character 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, PhasePreread, Options{})
			got := runString(t, e.vm, "local cjson = require 'cjson'.new(); local safe = require 'cjson.safe'\n"+tt.code)
			if got != tt.want {
				t.Fatalf("%s = %q; want %q", tt.code, got, tt.want)
			}
		})
	}
}

func TestCJSONRaises(t *testing.T) {
	e := newEnv(t, PhasePreread, Options{})
	wantLuaError(t, e.vm, "require('cjson').decode('[')", "Expected value but found T_END at character 2")
	wantLuaError(t, e.vm, "require('cjson').encode(print)", "Cannot serialise function: type not supported")
}
