package pdk

import (
	glua "github.com/yuin/gopher-lua"
	"os"
	"path/filepath"
	"testing"
)

// TestAppendFile: gong.append_file appends each write to what the file
// held, creates it 0600, and reports an open error in io.open's words.
func TestAppendFile(t *testing.T) {
	e := newEnv(t, PhaseLog, Options{})
	dir := t.TempDir()
	path := filepath.Join(dir, "f.log")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.vm.L.SetGlobal("path", glua.LString(path))
	e.vm.L.SetGlobal("dir", glua.LString(dir))
	got := runString(t, e.vm, `
		local af = require "gong.append_file"
		local f = assert(af.open(path))
		assert(f:write("a\n") == true)
		assert(f:write("b", "\n") == true)
		f:close()
		local new = assert(af.open(dir .. "/new.log"))
		new:close()
		local _, err = af.open(dir)
		local _, ioerr = io.open(dir, "a")
		return tostring(err == ioerr) .. " " .. err`)
	if want := "true open " + dir + ": is a directory"; got != want {
		t.Errorf("open errors: %q; want %q", got, want)
	}
	if data, _ := os.ReadFile(path); string(data) != "old\na\nb\n" {
		t.Errorf("file holds %q; want old, a and b lines", data)
	}
	if fi, err := os.Stat(filepath.Join(dir, "new.log")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new file: %v, %v; want mode 0600", fi, err)
	}
}
