package lua

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// Two VMs append lines of several pieces to one file at once, each line
// with one f:write: no line is broken by the other's pieces, and numbers
// are written as LuaJIT writes them.
func TestFileWriteIsOneWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	const lines = 2000
	code := fmt.Sprintf(`for i = 1, %d do
  local f = assert(io.open(%q, "a"))
  assert(f:write("line ", i, " of ", "%%s", " ", 0.1 + 0.2, "\n"))
  f:close()
end`, lines, path)
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b"} {
		vm := newTestVM(t, nil, PoolOptions{})
		wg.Go(func() { runLua(t, vm, fmt.Sprintf(code, name)) })
	}
	wg.Wait()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^line \d+ of [ab] 0\.3$`)
	got := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(got) != 2*lines {
		t.Fatalf("%d lines; want %d", len(got), 2*lines)
	}
	for _, l := range got {
		if !line.MatchString(l) {
			t.Fatalf("line %q: pieces of two writes mixed, or a number not as LuaJIT writes it", l)
		}
	}
}

// A table among the pieces is refused, as before.
func TestFileWriteRefusesTables(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	vm := newTestVM(t, nil, PoolOptions{})
	got := runLua(t, vm, fmt.Sprintf(`local f = assert(io.open(%q, "w"))
local ok, err = pcall(f.write, f, "a", {})
f:close()
return ok, err`, path))
	if len(got) != 2 || got[0].String() != "false" || !strings.Contains(got[1].String(), "string expected, got table") {
		t.Errorf("f:write(\"a\", {}) = %v; want false and a type error", got)
	}
}
