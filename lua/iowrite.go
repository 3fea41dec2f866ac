package lua

import (
	"strings"

	glua "github.com/yuin/gopher-lua"

	"github.com/gong-proxy/gong/luanum"
)

// wrapIOWrite makes file:write and io.write hand all their arguments to
// the file in one write, as LuaJIT's buffered stdio does for a line.
// gopher-lua writes each argument on its own, so sessions appending
// f:write(a, b, "\n") to one file at once interleaved their pieces.
// Numbers are written as LuaJIT writes them ("%.14g").
func wrapIOWrite(L *glua.LState) {
	if mt, ok := L.GetTypeMetatable("FILE*").(*glua.LTable); ok {
		if methods, ok := mt.RawGetString("__index").(*glua.LTable); ok {
			methods.RawSetString("write", L.NewFunction(joinedWrite(goFunc(methods.RawGetString("write")), 2)))
		}
	}
	if io, ok := L.GetGlobal("io").(*glua.LTable); ok {
		io.RawSetString("write", L.NewFunction(joinedWrite(goFunc(io.RawGetString("write")), 1)))
	}
}

// joinedWrite calls write with the arguments from first on joined into
// one string.
func joinedWrite(write glua.LGFunction, first int) glua.LGFunction {
	return func(L *glua.LState) int {
		top := L.GetTop()
		var b strings.Builder
		for i := first; i <= top; i++ {
			L.CheckTypes(i, glua.LTNumber, glua.LTString)
			switch v := L.Get(i).(type) {
			case glua.LNumber:
				b.WriteString(luanum.Format(float64(v)))
			default:
				b.WriteString(glua.LVAsString(v))
			}
		}
		if top >= first {
			L.SetTop(first - 1)
			L.Push(glua.LString(b.String()))
		}
		return write(L)
	}
}
