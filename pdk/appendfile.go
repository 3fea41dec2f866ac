package pdk

import (
	"io"
	"os"

	glua "github.com/yuin/gopher-lua"
)

// appendFileType is the metatable name of gong.append_file's files.
const appendFileType = "gong.append_file"

// openAppendFile is gong.append_file, file-log's writer: open(path)
// opens path for appending as io.open(path, "a") does (created with mode
// 0600), or returns nil and the error; file:write(s) appends s with one
// write(2), so lines from VMs sharing the file never interleave, and
// returns true or nil and the error; file:close() closes it. Unlike an
// io.open file it keeps no buffers: io's write on a file open for
// appending flushes, seeks and makes a new 4 KiB read buffer each time.
func openAppendFile(L *glua.LState) int {
	mt := L.NewTypeMetatable(appendFileType)
	L.SetField(mt, "__index", L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"write": appendFileWrite, "close": appendFileClose,
	}))
	mod := L.NewTable()
	L.SetField(mod, "open", L.NewFunction(func(L *glua.LState) int {
		f, err := os.OpenFile(L.CheckString(1), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			L.Push(glua.LNil)
			L.Push(glua.LString(err.Error()))
			return 2
		}
		ud := L.NewUserData()
		ud.Value = f
		L.SetMetatable(ud, L.GetTypeMetatable(appendFileType))
		L.Push(ud)
		return 1
	}))
	L.Push(mod)
	return 1
}

func checkAppendFile(L *glua.LState) *os.File {
	f, ok := L.CheckUserData(1).Value.(*os.File)
	if !ok {
		L.ArgError(1, "gong.append_file file expected")
	}
	return f
}

func appendFileWrite(L *glua.LState) int {
	f := checkAppendFile(L)
	if _, err := io.WriteString(f, L.CheckString(2)); err != nil {
		L.Push(glua.LNil)
		L.Push(glua.LString(err.Error()))
		return 2
	}
	L.Push(glua.LTrue)
	return 1
}

func appendFileClose(L *glua.LState) int {
	checkAppendFile(L).Close()
	return 0
}
