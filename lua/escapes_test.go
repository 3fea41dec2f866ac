package lua

import (
	"context"
	"errors"
	"strings"
	"testing"

	glua "github.com/yuin/gopher-lua"
)

func TestRewriteEscapes(t *testing.T) {
	tests := []struct {
		name, code string
		want       string
	}{
		{"hex", `return "\x41\x62c"`, "Abc"},
		{"hex then digit", `return "\x411"`, "A1"},
		{"z skips white space", "return \"a\\z   \n   b\"", "ab"},
		{"unicode", `return "\u{48}\u{e9}"`, "H\u00e9"},
		{"other escapes stay", `return "q\"\\x41\n"`, "q\"\\x41\n"},
		{"single quotes", `return '\x41'`, "A"},
		{"long strings untouched", `return [[\x41]]`, `\x41`},
		{"comments untouched", "-- \"\\x41\nreturn '\\x42'", "B"},
		{"long comments untouched", "--[[ \"\\x41 ]] return '\\x43'", "C"},
	}
	b, err := NewBundle(nil)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := NewVM(b, PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proto, err := Compile(tt.name, tt.code)
			if err != nil {
				t.Fatal(err)
			}
			res, err := vm.Call(context.Background(), vm.L.NewFunctionFromProto(proto))
			if err != nil {
				t.Fatal(err)
			}
			if got := res[0].(glua.LString); string(got) != tt.want {
				t.Errorf("%s = %q; want %q", tt.code, got, tt.want)
			}
		})
	}
}

func TestRewriteEscapesKeepsLines(t *testing.T) {
	_, err := Compile("lines", "local s = \"a\\z\n\n  b\"\nlocal x = = 1\n")
	var le *Error
	if !errors.As(err, &le) || !strings.Contains(le.Msg, "line 4") {
		t.Errorf("syntax error after a \\z string: %v; want it on line 4", err)
	}
}
