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
// 0600), or returns nil and the error; file:write(s, ...) appends its
// strings with one write(2), so lines from VMs sharing the file never
// interleave, and returns true or nil and the error; file:close() closes
// it. Unlike an io.open file it keeps no buffers between writes: io's
// write on a file open for appending flushes, seeks and makes a new 4 KiB
// read buffer each time.
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
		ud.Value = &appendFile{f: f}
		L.SetMetatable(ud, L.GetTypeMetatable(appendFileType))
		L.Push(ud)
		return 1
	}))
	L.Push(mod)
	return 1
}

// appendFile is an open file and the buffer that joins a write's
// strings.
type appendFile struct {
	f   *os.File
	buf []byte
}

// maxJoinBuffer is the largest buffer an appendFile keeps between writes.
const maxJoinBuffer = 64 << 10

func checkAppendFile(L *glua.LState) *appendFile {
	f, ok := L.CheckUserData(1).Value.(*appendFile)
	if !ok {
		L.ArgError(1, "gong.append_file file expected")
	}
	return f
}

func appendFileWrite(L *glua.LState) int {
	af := checkAppendFile(L)
	var err error
	if L.GetTop() == 2 {
		_, err = io.WriteString(af.f, L.CheckString(2))
	} else {
		buf := af.buf[:0]
		for i := 2; i <= L.GetTop(); i++ {
			buf = append(buf, L.CheckString(i)...)
		}
		_, err = af.f.Write(buf)
		if cap(buf) <= maxJoinBuffer {
			af.buf = buf
		}
	}
	if err != nil {
		L.Push(glua.LNil)
		L.Push(glua.LString(err.Error()))
		return 2
	}
	L.Push(glua.LTrue)
	return 1
}

func appendFileClose(L *glua.LState) int {
	checkAppendFile(L).f.Close()
	return 0
}
