package pdk

import (
	"strings"
	"time"

	"github.com/gong-proxy/gong/lua"
	"github.com/gong-proxy/gong/luanum"
	glua "github.com/yuin/gopher-lua"
)

// ngxConstants are stream-lua's log levels and status codes
// (ngx_stream_lua_consts.c); stream has no ngx.HTTP_*.
var ngxConstants = []struct {
	name  string
	value int
}{
	{"STDERR", 0}, {"EMERG", 1}, {"ALERT", 2}, {"CRIT", 3}, {"ERR", 4},
	{"WARN", 5}, {"NOTICE", 6}, {"INFO", 7}, {"DEBUG", 8},
	{"OK", 0}, {"ERROR", -1}, {"AGAIN", -2}, {"DONE", -4}, {"DECLINED", -5},
}

// openNgx builds the ngx subset: ctx and var, the clock, log, exit,
// get_phase, null and config.
func (p *pdk) openNgx(L *glua.LState) *glua.LTable {
	ngx := L.NewTable()
	for _, c := range ngxConstants {
		ngx.RawSetString(c.name, glua.LNumber(c.value))
	}
	ngx.RawSetString("null", Null(L))
	config := L.NewTable()
	config.RawSetString("subsystem", glua.LString("stream"))
	// stream-lua's own version number, not http's 10xxx.
	config.RawSetString("ngx_lua_version", glua.LNumber(20))
	ngx.RawSetString("config", config)

	fns := map[string]glua.LGFunction{
		"now": func(L *glua.LState) int {
			L.Push(glua.LNumber(float64(p.opts.Now().UnixMilli()) / 1000))
			return 1
		},
		"time": func(L *glua.LState) int {
			L.Push(glua.LNumber(p.opts.Now().Unix()))
			return 1
		},
		// The clock is read on every call, so there is no cache to refresh.
		"update_time": func(*glua.LState) int { return 0 },
		"today": func(L *glua.LState) int {
			L.Push(glua.LString(p.opts.Now().Local().Format(time.DateOnly)))
			return 1
		},
		"localtime": func(L *glua.LState) int {
			L.Push(glua.LString(p.opts.Now().Local().Format(time.DateTime)))
			return 1
		},
		"utctime": func(L *glua.LState) int {
			L.Push(glua.LString(p.opts.Now().UTC().Format(time.DateTime)))
			return 1
		},
		"get_phase": func(L *glua.LState) int {
			var cur Phase
			s := p.b.State
			if s != nil {
				cur = s.Phase
			}
			if s != nil && s.timer {
				L.Push(glua.LString("timer"))
				return 1
			}
			L.Push(glua.LString(ngxPhase(cur)))
			return 1
		},
		"log":   p.ngxLog,
		"exit":  p.ngxExit,
		"sleep": p.ngxSleep,
	}
	for name, fn := range fns {
		ngx.RawSetString(name, L.NewFunction(fn))
	}
	ngx.RawSetString("var", p.ngxVar(L))
	ngx.RawSetString("shared", p.openShared(L))
	ngx.RawSetString("re", openNgxRe(L))
	p.openNgxMore(L, ngx)
	ngx.RawSetString("timer", p.openTimer(L))
	ngx.RawSetString("socket", p.openSocket(L))
	ngx.RawSetString("req", p.openReq(L))

	// ngx.ctx is the bound State's table, read and assigned through the
	// metatable since it changes with every lease.
	mt := L.NewTable()
	mt.RawSetString("__index", L.NewFunction(func(L *glua.LState) int {
		s := p.b.State
		switch key := L.Get(2).String(); {
		case s == nil:
			L.Push(glua.LNil)
		case key == "ctx":
			L.Push(s.ngxCtxTable(L))
		case key == "status" && s.Session != nil:
			L.Push(glua.LNumber(s.Session.Status()))
		default:
			L.Push(glua.LNil)
		}
		return 1
	}))
	mt.RawSetString("__newindex", L.NewFunction(func(L *glua.LState) int {
		switch L.Get(2).String() {
		case "ctx":
		case "status":
			// The session status is nginx's to set in stream.
			L.RaiseError("ngx.status is read-only in the stream subsystem")
		default:
			L.RawSet(L.CheckTable(1), L.Get(2), L.Get(3))
			return 0
		}
		s := p.b.State
		if s == nil {
			L.RaiseError("no request found")
		}
		t, ok := L.Get(3).(*glua.LTable)
		if !ok {
			L.RaiseError("ctx should be a table while getting a %s", L.Get(3).Type())
		}
		s.ngxCtx = t
		return 0
	}))
	L.SetMetatable(ngx, mt)
	return ngx
}

// ngxVar is ngx.var: names are case-insensitive, reads go to the Session,
// writes are refused since gong declares no writable stream variable.
func (p *pdk) ngxVar(L *glua.LState) *glua.LTable {
	v := L.NewTable()
	mt := L.NewTable()
	mt.RawSetString("__index", L.NewFunction(func(L *glua.LState) int {
		name := strings.ToLower(L.CheckString(2))
		val, ok := sessionVar(L, p.b.State, name)
		return pushVar(L, val, ok)
	}))
	mt.RawSetString("__newindex", L.NewFunction(func(L *glua.LState) int {
		name := L.CheckString(2)
		if s := p.b.State; s == nil || s.Session == nil {
			L.RaiseError("no request found")
		}
		L.RaiseError("variable \"%s\" not found for writing; maybe it is a built-in variable that is not changeable or you forgot to use \"set $%s '';\" in the config file to define it first", name, name)
		return 0
	}))
	L.SetMetatable(v, mt)
	return v
}

// ngxLog is ngx.log(level, ...).
func (p *pdk) ngxLog(L *glua.LState) int {
	level := LogLevel(L.CheckInt(1))
	if level < LevelStderr || level > LevelDebug {
		L.RaiseError("bad log level")
	}
	p.luaLog(L, level, 2)
	return 0
}

// luaPrint replaces Lua's print as OpenResty does: ngx.log at notice
// level, so a plugin's print goes to the error log, not to stdout.
func (p *pdk) luaPrint(L *glua.LState) int {
	p.luaLog(L, LevelNotice, 1)
	return 0
}

// luaLog logs the arguments from index from on, concatenated, the way
// OpenResty's ngx.log and print do: "[lua] file:line: msg", with the
// calling function's name as "name(): " before msg when it has one.
func (p *pdk) luaLog(L *glua.LState, level LogLevel, from int) {
	null := Null(L)
	var b strings.Builder
	b.WriteString("[lua] ")
	if w := L.Where(1); w != "" {
		b.WriteString(w + " ")
	}
	if dbg, ok := lua.Frame(L, 1, "Sn"); ok && dbg.What == "Lua" && dbg.Name != "" {
		b.WriteString(dbg.Name + "(): ")
	}
	for i := from; i <= L.GetTop(); i++ {
		switch v := L.Get(i).(type) {
		case glua.LString:
			b.WriteString(string(v))
		case glua.LNumber:
			b.WriteString(luanum.Format(float64(v)))
		case glua.LBool, *glua.LNilType:
			b.WriteString(v.String())
		case *glua.LTable:
			if L.GetMetaField(v, "__tostring") == glua.LNil {
				L.RaiseError("bad argument #%d to 'log' (expected table to have __tostring metamethod)", i-from+1)
			}
			b.WriteString(tostringValue(L, v))
		default:
			if v != null {
				L.RaiseError("bad argument #%d to 'log' (string, number, boolean, or nil expected, got %s)", i-from+1, v.Type())
			}
			b.WriteString("null")
		}
	}
	if level <= p.opts.LogLevel {
		p.emit(p.b.State, level, b.String())
	}
}

// ngxExit is ngx.exit(status). In preread, ngx.OK (0) ends preread and
// proxying continues, ngx.ERROR is a 500, any other code is the session
// status; nothing is sent. In certificate, ngx.OK lets the handshake go on
// and any other code aborts it. Either way the handler ends, and the
// plugins after it do not run, as with kong.response.exit.
func (p *pdk) ngxExit(L *glua.LState) int {
	code := L.CheckInt(1)
	if code == -1 {
		code = 500
	}
	s := p.b.State
	if s != nil && s.Session != nil && s.Phase == PhaseCertificate {
		s.Session.Exit(code, nil)
		return L.Yield()
	}
	return exitSession(L, s, code, nil)
}
