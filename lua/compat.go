package lua

import (
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"

	glua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/pm"

	"github.com/gong-proxy/gong/luanum"
)

// openCompat installs the LuaJIT and Lua 5.2 extensions Kong code relies on
// and gopher-lua lacks. Kong's LuaJIT is built with
// LUAJIT_ENABLE_LUA52COMPAT, hence load with env, xpcall with arguments and
// table.pack/unpack.
func openCompat(L *glua.LState) error {
	loaded, ok := L.GetField(L.Get(glua.RegistryIndex), "_LOADED").(*glua.LTable)
	if !ok {
		return fmt.Errorf("lua package.loaded missing")
	}
	tbl, ok := L.GetGlobal("table").(*glua.LTable)
	if !ok {
		return fmt.Errorf("lua table library missing")
	}
	str, ok := L.GetGlobal("string").(*glua.LTable)
	if !ok {
		return fmt.Errorf("lua string library missing")
	}
	mth, ok := L.GetGlobal("math").(*glua.LTable)
	if !ok {
		return fmt.Errorf("lua math library missing")
	}

	bit := L.SetFuncs(L.NewTable(), bitFuncs)
	L.SetGlobal("bit", bit)
	loaded.RawSetString("bit", bit)

	// OpenResty's table.* modules: require "table.new" returns the
	// function; LuaJIT also sets it on table.
	for name, fn := range tableModules {
		f := L.NewFunction(fn)
		tbl.RawSetString(name, f)
		loaded.RawSetString("table."+name, f)
	}
	tbl.RawSetString("pack", L.NewFunction(tablePack))
	tbl.RawSetString("unpack", L.GetGlobal("unpack"))

	jit := L.SetFuncs(L.NewTable(), jitFuncs)
	jit.RawSetString("version", glua.LString("LuaJIT 2.1.0-beta3"))
	jit.RawSetString("version_num", glua.LNumber(20100))
	jit.RawSetString("os", glua.LString("Linux"))
	jit.RawSetString("arch", glua.LString(jitArch()))
	jit.RawSetString("opt", L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{"start": noop}))
	L.SetGlobal("jit", jit)
	loaded.RawSetString("jit", jit)

	loaded.RawSetString("string.buffer", openStringBuffer(L))

	L.SetGlobal("load", L.NewFunction(baseLoad))
	L.SetGlobal("xpcall", L.NewFunction(baseXPCall))
	L.SetGlobal("tostring", L.NewFunction(baseToString))
	L.SetGlobal("tonumber", L.NewFunction(wrapToNumber(goFunc(L.GetGlobal("tonumber")))))
	str.RawSetString("rep", L.NewFunction(strRep))
	str.RawSetString("format", L.NewFunction(wrapFormat(goFunc(str.RawGetString("format")))))
	str.RawSetString("gsub", L.NewFunction(wrapGsub(goFunc(str.RawGetString("gsub")))))
	tbl.RawSetString("concat", L.NewFunction(tableConcat))
	L.SetGlobal(concatLocal, L.NewFunction(numberText))
	mth.RawSetString("log", L.NewFunction(mathLog))
	wrapIOWrite(L)
	return nil
}

// goFunc returns the Go body of a built-in so a wrapper can defer to it.
func goFunc(v glua.LValue) glua.LGFunction {
	if f, ok := v.(*glua.LFunction); ok && f.IsG {
		return f.GFunction
	}
	return func(L *glua.LState) int {
		L.RaiseError("built-in function missing")
		return 0
	}
}

func noop(*glua.LState) int { return 0 }

var jitFuncs = map[string]glua.LGFunction{
	"on":    noop,
	"off":   noop,
	"flush": noop,
	// status reports the JIT as off: there is none.
	"status": func(L *glua.LState) int {
		L.Push(glua.LFalse)
		return 1
	},
}

func jitArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x64"
	case "386":
		return "x86"
	}
	return runtime.GOARCH
}

// tableNewCap bounds table.new's preallocation: the sizes are hints, and a
// plugin's huge hint should not allocate before anything is stored.
const tableNewCap = 1 << 16

var tableModules = map[string]glua.LGFunction{
	"new": func(L *glua.LState) int {
		narr := min(max(L.CheckInt(1), 0), tableNewCap)
		nrec := min(max(L.CheckInt(2), 0), tableNewCap)
		L.Push(L.CreateTable(narr, nrec))
		return 1
	},
	"clear": func(L *glua.LState) int {
		t := L.CheckTable(1)
		var keys []glua.LValue
		t.ForEach(func(k, _ glua.LValue) { keys = append(keys, k) })
		for _, k := range keys {
			t.RawSet(k, glua.LNil)
		}
		return 0
	},
	"nkeys": func(L *glua.LState) int {
		n := 0
		L.CheckTable(1).ForEach(func(_, _ glua.LValue) { n++ })
		L.Push(glua.LNumber(n))
		return 1
	},
	"isempty": func(L *glua.LState) int {
		k, _ := L.CheckTable(1).Next(glua.LNil)
		L.Push(glua.LBool(k == glua.LNil))
		return 1
	},
	// isarray: keys are exactly 1..n (an empty table counts), as
	// OpenResty's LuaJIT defines it.
	"isarray": func(L *glua.LState) int {
		n, maxKey, ok := 0, 0.0, true
		L.CheckTable(1).ForEach(func(k, _ glua.LValue) {
			num, isNum := k.(glua.LNumber)
			if !isNum || float64(num) < 1 || float64(num) != math.Floor(float64(num)) {
				ok = false
				return
			}
			n++
			maxKey = max(maxKey, float64(num))
		})
		L.Push(glua.LBool(ok && maxKey == float64(n)))
		return 1
	},
	// clone is shallow and drops the metatable, as OpenResty's does.
	"clone": func(L *glua.LState) int {
		src := L.CheckTable(1)
		dst := L.CreateTable(src.Len(), 0)
		src.ForEach(func(k, v glua.LValue) { dst.RawSet(k, v) })
		L.Push(dst)
		return 1
	},
}

func tablePack(L *glua.LState) int {
	n := L.GetTop()
	t := L.CreateTable(n, 1)
	for i := 1; i <= n; i++ {
		t.RawSetInt(i, L.Get(i))
	}
	t.RawSetString("n", glua.LNumber(n))
	L.Push(t)
	return 1
}

// baseLoad is Lua 5.2's load(chunk [, chunkname [, mode [, env]]]): chunk
// is a string or a reader function; env, when a table, becomes the chunk's
// environment (setfenv). gopher-lua's own load takes only a reader.
func baseLoad(L *glua.LState) int {
	var src, name string
	switch chunk := L.Get(1).(type) {
	case glua.LString:
		src, name = string(chunk), "<string>"
	case *glua.LFunction:
		name = "=(load)"
		var b strings.Builder
		for {
			L.Push(chunk)
			L.Call(0, 1)
			piece := L.Get(-1)
			L.Pop(1)
			if piece == glua.LNil {
				break
			}
			s, ok := piece.(glua.LString)
			if !ok {
				L.Push(glua.LNil)
				L.Push(glua.LString("reader function must return a string"))
				return 2
			}
			if s == "" {
				break
			}
			b.WriteString(string(s))
		}
		src = b.String()
	default:
		L.TypeError(1, glua.LTFunction)
	}
	name = L.OptString(2, name)
	mode := L.OptString(3, "bt")
	if strings.HasPrefix(src, "\x1b") {
		msg := "attempt to load a binary chunk (mode is '" + mode + "')"
		if strings.Contains(mode, "b") {
			msg = "binary chunks are not supported"
		}
		L.Push(glua.LNil)
		L.Push(glua.LString(msg))
		return 2
	}
	if !strings.Contains(mode, "t") {
		L.Push(glua.LNil)
		L.Push(glua.LString("attempt to load a text chunk (mode is '" + mode + "')"))
		return 2
	}
	fn, err := L.Load(strings.NewReader(rewriteEscapes(src)), name)
	if err != nil {
		L.Push(glua.LNil)
		L.Push(glua.LString(strings.TrimSpace(err.Error())))
		return 2
	}
	switch env := L.Get(4).(type) {
	case *glua.LTable:
		fn.Env = env
	case *glua.LNilType:
	default:
		L.TypeError(4, glua.LTTable)
	}
	L.Push(fn)
	return 1
}

// baseXPCall passes the arguments after the handler to f (Lua 5.2);
// gopher-lua's calls f with none.
func baseXPCall(L *glua.LState) int {
	fn := L.CheckAny(1)
	handler := L.CheckFunction(2)
	top := L.GetTop()
	L.Push(fn)
	for i := 3; i <= top; i++ {
		L.Push(L.Get(i))
	}
	if err := L.PCall(top-2, glua.MultRet, handler); err != nil {
		L.Push(glua.LFalse)
		if ae, ok := err.(*glua.ApiError); ok {
			L.Push(ae.Object)
		} else {
			L.Push(glua.LString(err.Error()))
		}
		return 2
	}
	L.Insert(glua.LTrue, top+1)
	return L.GetTop() - top
}

func baseToString(L *glua.LState) int {
	v := L.CheckAny(1)
	if n, ok := v.(glua.LNumber); ok {
		L.Push(glua.LString(luanum.Format(float64(n))))
		return 1
	}
	L.Push(L.ToStringMeta(v))
	return 1
}

// wrapToNumber adds exponent notation ("1e2", "2.5E-3"), which gopher-lua's
// tonumber rejects, for base-10 conversions.
func wrapToNumber(orig glua.LGFunction) glua.LGFunction {
	return func(L *glua.LState) int {
		if s, ok := L.Get(1).(glua.LString); ok && L.Get(2) == glua.LNil {
			if f, ok := parseExponent(strings.TrimSpace(string(s))); ok {
				L.Push(glua.LNumber(f))
				return 1
			}
		}
		return orig(L)
	}
}

func parseExponent(s string) (float64, bool) {
	if !strings.ContainsAny(s, "eE") {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-' {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// strRep replaces gopher-lua's string.rep, which allocates whatever
// size it is asked for, and adds the separator (Lua 5.2).
func strRep(L *glua.LState) int {
	s := L.CheckString(1)
	n := float64(L.CheckNumber(2))
	sep := L.OptString(3, "")
	if n < 1 || (s == "" && sep == "") {
		L.Push(glua.LString(""))
		return 1
	}
	n = math.Floor(n)
	CheckAlloc(L, n*float64(len(s))+(n-1)*float64(len(sep)))
	if sep == "" {
		L.Push(glua.LString(strings.Repeat(s, int(n))))
		return 1
	}
	var b strings.Builder
	b.Grow(int(n)*len(s) + int(n-1)*len(sep))
	for i := range int(n) {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(s)
	}
	L.Push(glua.LString(b.String()))
	return 1
}

// wrapGsub bounds string.gsub with a string replacement, whose result can
// be far larger than its arguments: the matches are found first and the
// result measured before gopher-lua builds it. That costs a second search,
// so only when the largest possible result (every position a match, every
// % a whole-subject capture) is past the unchecked size. A function or
// table replacement gives strings Lua already holds.
func wrapGsub(orig glua.LGFunction) glua.LGFunction {
	return func(L *glua.LState) int {
		subject := L.CheckString(1)
		repl, ok := L.Get(3).(glua.LString)
		if !ok {
			return orig(L)
		}
		n, r := float64(len(subject)), float64(len(repl))
		pct := float64(strings.Count(string(repl), "%"))
		if n+(n+1)*(r+pct*n) < smallAlloc {
			return orig(L)
		}
		pattern := L.CheckString(2)
		matches, err := pm.Find(pattern, []byte(subject), 0, L.OptInt(4, -1))
		if err != nil {
			return orig(L)
		}
		// A capture is part of its match, or a position: 20 digits at most.
		positions := strings.Contains(pattern, "()")
		size := n
		for _, m := range matches {
			capture := float64(m.Capture(1) - m.Capture(0))
			if positions {
				capture = max(capture, 20)
			}
			size += r + pct*capture
		}
		CheckAlloc(L, size)
		return orig(L)
	}
}

// mathLog adds the base argument (Lua 5.2).
func mathLog(L *glua.LState) int {
	x := float64(L.CheckNumber(1))
	var r float64
	switch {
	case L.Get(2) == glua.LNil:
		r = math.Log(x)
	case float64(L.CheckNumber(2)) == 2:
		r = math.Log2(x)
	case float64(L.CheckNumber(2)) == 10:
		r = math.Log10(x)
	default:
		r = math.Log(x) / math.Log(float64(L.CheckNumber(2)))
	}
	L.Push(glua.LNumber(r))
	return 1
}
