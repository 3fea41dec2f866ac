package pdk

import (
	"errors"
	"syscall"

	glua "github.com/yuin/gopher-lua"
)

// openFFI is the narrow part of LuaJIT's ffi that Kong's file-log uses to
// append to a file without buffering: ffi.C.open, write, close and
// strerror on raw file descriptors, ffi.errno, ffi.new("int", n) (a plain
// number here) and ffi.string. ffi.cdef accepts declarations and ignores
// them; no other C function or ctype exists, and asking for one is an
// error naming it.
func openFFI(L *glua.LState) int {
	var errno syscall.Errno
	setErrno := func(err error) int {
		if !errors.As(err, &errno) {
			errno = syscall.EIO
		}
		return -1
	}
	c := L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"open": func(L *glua.LState) int {
			fd, err := syscall.Open(L.CheckString(1), L.CheckInt(2)|syscall.O_CLOEXEC, uint32(L.OptInt(3, 0)))
			if err != nil {
				fd = setErrno(err)
			}
			L.Push(glua.LNumber(fd))
			return 1
		},
		"write": func(L *glua.LState) int {
			buf := L.CheckString(2)
			if n := L.OptInt(3, len(buf)); n < len(buf) {
				buf = buf[:max(n, 0)]
			}
			n, err := syscall.Write(L.CheckInt(1), []byte(buf))
			if err != nil {
				n = setErrno(err)
			}
			L.Push(glua.LNumber(n))
			return 1
		},
		"close": func(L *glua.LState) int {
			rc := 0
			if err := syscall.Close(L.CheckInt(1)); err != nil {
				rc = setErrno(err)
			}
			L.Push(glua.LNumber(rc))
			return 1
		},
		"strerror": func(L *glua.LState) int {
			L.Push(glua.LString(syscall.Errno(L.CheckInt(1)).Error()))
			return 1
		},
	})
	L.SetMetatable(c, L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"__index": func(L *glua.LState) int {
			L.RaiseError("missing declaration for symbol '%s'", L.CheckString(2))
			return 0
		},
	}))
	mod := L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"cdef": func(L *glua.LState) int { return 0 },
		"errno": func(L *glua.LState) int {
			L.Push(glua.LNumber(errno))
			return 1
		},
		"new": func(L *glua.LState) int {
			if ct := L.CheckString(1); ct != "int" {
				L.RaiseError("ffi.new: ctype '%s' is not supported, only 'int'", ct)
			}
			L.Push(glua.LNumber(L.OptInt(2, 0)))
			return 1
		},
		"string": func(L *glua.LState) int {
			L.Push(glua.LString(L.CheckString(1)))
			return 1
		},
	})
	L.SetField(mod, "C", c)
	L.Push(mod)
	return 1
}

// openSystemConstants is lua_system_constants: functions returning the
// platform's open(2) flags and mode bits, for ffi.C.open.
func openSystemConstants(L *glua.LState) int {
	mod := L.NewTable()
	for name, v := range map[string]int{
		"O_RDONLY": syscall.O_RDONLY, "O_WRONLY": syscall.O_WRONLY, "O_RDWR": syscall.O_RDWR,
		"O_CREAT": syscall.O_CREAT, "O_APPEND": syscall.O_APPEND, "O_TRUNC": syscall.O_TRUNC,
		"S_IRUSR": syscall.S_IRUSR, "S_IWUSR": syscall.S_IWUSR, "S_IXUSR": syscall.S_IXUSR,
		"S_IRGRP": 0o040, "S_IWGRP": 0o020, "S_IXGRP": 0o010,
		"S_IROTH": 0o004, "S_IWOTH": 0o002, "S_IXOTH": 0o001,
	} {
		L.SetField(mod, name, L.NewFunction(func(L *glua.LState) int {
			L.Push(glua.LNumber(v))
			return 1
		}))
	}
	L.Push(mod)
	return 1
}
