package pdk

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/gong-proxy/gong/lua"
	"github.com/gong-proxy/gong/luanum"
	glua "github.com/yuin/gopher-lua"
)

// phasesWithCtx is log.lua's mask for set_serialize_value.
var phasesWithCtx = only(PhaseRewrite, PhaseAccess, PhaseHeaderFilter, PhaseResponse, PhaseBodyFilter, PhaseLog)

// logFuncs is kong.log (kong/pdk/log.lua): the level functions, then
// set_serialize_value and serialize. inspect is a callable table added by
// openLog, and kong.log(...) is notice through __call.
func (p *pdk) logFuncs() []Func {
	f := func(l LogLevel) func(*glua.LState, *State) int {
		return func(L *glua.LState, s *State) int {
			p.log(L, s, l, p.joinArgs(L, 1))
			return 0
		}
	}
	return []Func{
		{"debug", anyPhase, f(LevelDebug)},
		{"info", anyPhase, f(LevelInfo)},
		{"notice", anyPhase, f(LevelNotice)},
		{"warn", anyPhase, f(LevelWarn)},
		{"err", anyPhase, f(LevelErr)},
		{"crit", anyPhase, f(LevelCrit)},
		{"alert", anyPhase, f(LevelAlert)},
		{"emerg", anyPhase, f(LevelEmerg)},
		{"set_serialize_value", phasesWithCtx, logSetSerializeValue},
		{"serialize", only(PhaseLog), logSerialize},
	}
}

// openLog makes kong.log callable and adds kong.log.inspect with its on and
// off switches.
func (p *pdk) openLog(L *glua.LState, kong *glua.LTable) {
	log := kong.RawGetString("log").(*glua.LTable)
	mt := L.NewTable()
	mt.RawSetString("__call", L.NewFunction(func(L *glua.LState) int {
		p.log(L, p.b.State, LevelNotice, p.joinArgs(L, 2))
		return 0
	}))
	L.SetMetatable(log, mt)

	inspect := L.NewTable()
	inspect.RawSetString("on", L.NewFunction(func(*glua.LState) int { p.inspect = true; return 0 }))
	inspect.RawSetString("off", L.NewFunction(func(*glua.LState) int { p.inspect = false; return 0 }))
	imt := L.NewTable()
	imt.RawSetString("__call", L.NewFunction(func(L *glua.LState) int {
		if !p.inspect {
			return 0
		}
		parts := make([]string, 0, L.GetTop()-1)
		for i := 2; i <= L.GetTop(); i++ {
			parts = append(parts, inspectValue(L.Get(i), 0))
		}
		p.log(L, p.b.State, LevelNotice, strings.Join(parts, " "))
		return 0
	}))
	L.SetMetatable(inspect, imt)
	log.RawSetString("inspect", inspect)

	// deprecation(msg..., opts?) logs at warn; a trailing {after=,
	// removal=} table adds the versions as Penlight's
	// raise_deprecation words them.
	deprecation := L.NewTable()
	write := L.NewFunction(func(L *glua.LState) int {
		p.log(L, p.b.State, LevelWarn, p.joinArgs(L, 1))
		return 0
	})
	deprecation.RawSetString("write", write)
	dmt := L.NewTable()
	dmt.RawSetString("__call", L.NewFunction(func(L *glua.LState) int {
		top := L.GetTop()
		opts, _ := L.Get(top).(*glua.LTable)
		if opts != nil {
			top--
		}
		var b strings.Builder
		for i := 2; i <= top; i++ {
			b.WriteString(tostringValue(L, L.Get(i)))
		}
		if opts != nil {
			after, removal := opts.RawGetString("after"), opts.RawGetString("removal")
			switch {
			case after != glua.LNil && removal != glua.LNil:
				b.WriteString(" (deprecated after " + after.String() + ", scheduled for removal in " + removal.String() + ")")
			case after != glua.LNil:
				b.WriteString(" (deprecated after " + after.String() + ")")
			case removal != glua.LNil:
				b.WriteString(" (scheduled for removal in " + removal.String() + ")")
			}
		}
		p.log(L, p.b.State, LevelWarn, b.String())
		return 0
	}))
	L.SetMetatable(deprecation, dmt)
	log.RawSetString("deprecation", deprecation)

	p.openLogExtras(L, log)

	// trace is debug while KONG_IS_TESTING=1, else nothing.
	testing := os.Getenv("KONG_IS_TESTING") == "1"
	log.RawSetString("trace", L.NewFunction(func(L *glua.LState) int {
		if testing {
			p.log(L, p.b.State, LevelDebug, p.joinArgs(L, 1))
		}
		return 0
	}))
}

// log formats and filters one kong.log line: "[kong] file:line [plugin] msg"
// (log.lua's default format), the namespace omitted for the core logger.
func (p *pdk) log(L *glua.LState, s *State, level LogLevel, msg string) {
	if level > p.opts.LogLevel {
		return
	}
	if p.format != "" {
		ns := "core"
		if s != nil && s.Plugin != "" {
			ns = s.Plugin
		}
		l := logger{namespace: ns, format: parseLogFormat(p.format, ns)}
		p.emit(s, level, l.render(L, msg))
		return
	}
	var b strings.Builder
	b.WriteString("[kong] ")
	if w := strings.TrimSuffix(L.Where(1), ":"); w != "" {
		b.WriteString(w)
		b.WriteByte(' ')
	}
	if s != nil && s.Plugin != "" {
		b.WriteString("[" + s.Plugin + "] ")
	}
	b.WriteString(msg)
	p.emit(s, level, b.String())
}

// emit sends a line to the State's Logger, else to Options.Logger.
func (p *pdk) emit(s *State, level LogLevel, line string) {
	sink := p.opts.Logger
	if s != nil && s.Log != nil {
		sink = s.Log
	}
	if sink != nil {
		sink.Log(level, line)
	}
}

// joinArgs concatenates the arguments from index from on, each through the
// VM's tostring (LuaJIT number format), as log.lua does.
func (p *pdk) joinArgs(L *glua.LState, from int) string {
	var b strings.Builder
	for i := from; i <= L.GetTop(); i++ {
		b.WriteString(tostringValue(L, L.Get(i)))
	}
	return b.String()
}

// inspectValue renders v in inspect.lua's style on one line: strings
// quoted, tables as { 1, 2, key = value } with keys sorted.
func inspectValue(v glua.LValue, depth int) string {
	switch v := v.(type) {
	case glua.LString:
		return fmt.Sprintf("%q", string(v))
	case glua.LNumber:
		return luanum.Format(float64(v))
	case *glua.LTable:
		if depth > 16 {
			return "{...}"
		}
		var parts []string
		n := v.Len()
		for i := 1; i <= n; i++ {
			parts = append(parts, inspectValue(v.RawGetInt(i), depth+1))
		}
		var keyed []string
		v.ForEach(func(k, val glua.LValue) {
			if kn, ok := k.(glua.LNumber); ok && float64(kn) >= 1 && float64(kn) <= float64(n) && float64(kn) == float64(int(kn)) {
				return
			}
			ks := "[" + inspectValue(k, depth+1) + "]"
			if s, ok := k.(glua.LString); ok && isIdent(string(s)) {
				ks = string(s)
			}
			keyed = append(keyed, ks+" = "+inspectValue(val, depth+1))
		})
		sort.Strings(keyed)
		parts = append(parts, keyed...)
		if len(parts) == 0 {
			return "{}"
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	default:
		return v.String()
	}
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// serializeValue is one set_serialize_value call, applied at serialize time.
type serializeValue struct {
	key   string
	value glua.LValue
	mode  string
}

func logSetSerializeValue(L *glua.LState, s *State) int {
	key, ok := L.Get(1).(glua.LString)
	if !ok {
		L.RaiseError("key must be a string")
	}
	mode := "set"
	if opts, ok := L.Get(3).(*glua.LTable); ok {
		if m := opts.RawGetString("mode"); m != glua.LNil {
			mode = m.String()
			if _, isStr := m.(glua.LString); !isStr {
				mode = ""
			}
		}
	}
	if mode != "set" && mode != "add" && mode != "replace" {
		L.RaiseError("mode must be 'set', 'add' or 'replace'")
	}
	s.serializeValues = append(s.serializeValues, serializeValue{string(key), L.Get(2), mode})
	return 0
}

// logSerialize returns a new stream record from the Session, edited by the
// set_serialize_value entries in call order (log.lua edit_result). The
// opts.ngx and opts.kong substitutes are not supported.
func logSerialize(L *glua.LState, s *State) int {
	root := L.NewTable()
	if s.Session != nil {
		root = toLua(L, s.Session.Serialize().Map(), arrayMT(L)).(*glua.LTable)
		// CE has one workspace (kong.workspaces.get_workspace_name).
		root.RawSetString("workspace_name", glua.LString("default"))
	}
	if !s.Timing.Start.IsZero() {
		s.ngxCtxTable(L)
		if ms, ok := s.kongLatency(); ok {
			if lat, isTable := root.RawGetString("latencies").(*glua.LTable); isTable {
				lat.RawSetString("kong", glua.LNumber(ms))
			}
		}
	}
	if s.ngxCtx != nil || s.pendingBalancer != nil {
		if bd, ok := s.ngxCtxTable(L).RawGetString("balancer_data").(*glua.LTable); ok {
			if tries, ok := bd.RawGetString("tries").(*glua.LTable); ok {
				root.RawSetString("tries", tries)
			}
		}
	}
	null := Null(L)
	for _, item := range s.serializeValues {
		if !validSerializeValue(item.value, null, map[*glua.LTable]bool{}) {
			L.RaiseError("value must be nil, a number, string, boolean or a non-self-referencial table containing numbers, string and booleans")
		}
		editRecord(L, root, item)
	}
	L.Push(root)
	return 1
}

func validSerializeValue(v, null glua.LValue, visited map[*glua.LTable]bool) bool {
	switch v := v.(type) {
	case *glua.LNilType, glua.LBool, glua.LNumber, glua.LString:
		return true
	case *glua.LTable:
		if visited[v] {
			return false
		}
		visited[v] = true
		ok := true
		v.ForEach(func(k, val glua.LValue) {
			switch k.(type) {
			case glua.LString, glua.LNumber, glua.LBool:
			default:
				ok = false
			}
			ok = ok && validSerializeValue(val, null, visited)
		})
		return ok
	default:
		return v == null
	}
}

// editRecord applies one entry: a dotted path ("\." is a literal dot),
// creating tables in set and add mode, skipping a missing path in replace
// mode.
func editRecord(L *glua.LState, root *glua.LTable, item serializeValue) {
	key := item.key
	node := root
	start := 0
	unescape := func(s string) string { return strings.ReplaceAll(s, `\.`, ".") }
	for i := 1; i < len(key); i++ {
		if key[i] != '.' || key[i-1] == '\\' {
			continue
		}
		sub := unescape(key[start:i])
		start = i + 1
		next := node.RawGetString(sub)
		switch next.(type) {
		case *glua.LNilType:
			if item.mode == "replace" {
				return
			}
			t := L.NewTable()
			node.RawSetString(sub, t)
			next = t
		case *glua.LTable:
		default:
			L.RaiseError("The key '%s' could not be used as a serialize value. Subkey '%s' is not a table. It's %s",
				key, sub, tostringValue(L, next))
		}
		node = next.(*glua.LTable)
	}
	last := unescape(key[start:])
	existing := node.RawGetString(last)
	if item.mode == "set" || item.mode == "add" && existing == glua.LNil || item.mode == "replace" && existing != glua.LNil {
		node.RawSetString(last, item.value)
	}
}

// tostringValue is the VM's tostring(v).
func tostringValue(L *glua.LState, v glua.LValue) string {
	L.Push(L.GetGlobal("tostring"))
	L.Push(v)
	L.Call(1, 1)
	s := L.ToString(-1)
	L.Pop(1)
	return s
}

// logPart is one piece of a kong.log format: literal text, or one of the
// modifiers %file_src, %line_src, %func_name and %message.
type logPart struct {
	lit, mod string
}

// logModifiers are log.lua's; %namespace is replaced when a format is set.
var logModifiers = map[string]bool{"%file_src": true, "%line_src": true, "%func_name": true, "%message": true}

// parseLogFormat reads a format as log.lua does after putting the
// namespace in place of %namespace: a modifier is "%" and lowercase
// letters or "_", not preceded by another "%"; anything else is text.
func parseLogFormat(format, namespace string) []logPart {
	var parts []logPart
	var lit strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c == '%' && (i == 0 || format[i-1] != '%') {
			j := i + 1
			for j < len(format) && (format[j] >= 'a' && format[j] <= 'z' || format[j] == '_') {
				j++
			}
			switch m := format[i:j]; {
			case m == "%namespace":
				lit.WriteString(namespace)
				i = j - 1
				continue
			case logModifiers[m]:
				if lit.Len() > 0 {
					parts = append(parts, logPart{lit: lit.String()})
					lit.Reset()
				}
				parts = append(parts, logPart{mod: m})
				i = j - 1
				continue
			}
		}
		lit.WriteByte(c)
	}
	if lit.Len() > 0 {
		parts = append(parts, logPart{lit: lit.String()})
	}
	return parts
}

// logger is one kong.log instance: the namespace and, once set_format
// was called, its format. A nil format is Kong's default.
type logger struct {
	namespace string
	format    []logPart
}

// defaultNamespacedFormat is log.lua's format for kong.log.new loggers.
const defaultNamespacedFormat = "%file_src:%line_src [%namespace] %message"

// render formats msg with l's format, the caller being the Lua function
// at level 1 of L.
func (l *logger) render(L *glua.LState, msg string) string {
	var b strings.Builder
	b.WriteString("[kong] ")
	var dbg *glua.Debug
	info := func() *glua.Debug {
		if dbg == nil {
			dbg = &glua.Debug{}
			if d, ok := lua.Frame(L, 1, "Sln"); ok {
				dbg = d
			}
		}
		return dbg
	}
	for _, p := range l.format {
		switch p.mod {
		case "":
			b.WriteString(p.lit)
		case "%message":
			b.WriteString(msg)
		case "%file_src":
			src := info().Source
			b.WriteString(src[strings.LastIndexByte(src, '/')+1:])
		case "%line_src":
			if d := info(); d.CurrentLine > 0 {
				b.WriteString(strconv.Itoa(d.CurrentLine))
			}
		case "%func_name":
			b.WriteString(info().Name)
		}
	}
	return b.String()
}

// setFormat is a logger's set_format(fmt): nil restores the default.
func (l *logger) setFormat(L *glua.LState, def string) {
	f := def
	switch v := L.Get(1).(type) {
	case *glua.LNilType:
	case glua.LString:
		f = string(v)
	default:
		L.RaiseError("format must be a string")
	}
	l.format = parseLogFormat(f, l.namespace)
}

// openLogExtras adds kong.log.set_format, which sets the format of this
// VM's kong.log lines (core and plugin namespaces alike), and
// kong.log.new(namespace, format), a logger of its own namespace.
func (p *pdk) openLogExtras(L *glua.LState, log *glua.LTable) {
	log.RawSetString("set_format", L.NewFunction(func(L *glua.LState) int {
		f, ok := L.Get(1).(glua.LString)
		if L.Get(1) == glua.LNil {
			p.format = ""
			return 0
		}
		if !ok {
			L.RaiseError("format must be a string")
		}
		p.format = string(f)
		return 0
	}))
	log.RawSetString("new", L.NewFunction(func(L *glua.LState) int {
		ns, ok := L.Get(1).(glua.LString)
		if !ok {
			L.RaiseError("namespace must be a string")
		}
		if ns == "" {
			L.RaiseError("namespace cannot be an empty string")
		}
		l := &logger{namespace: string(ns)}
		format := defaultNamespacedFormat
		switch v := L.Get(2).(type) {
		case *glua.LNilType:
		case glua.LString:
			if v == "" {
				L.RaiseError("format cannot be an empty string if specified")
			}
			format = string(v)
		default:
			L.RaiseError("format must be a string if specified")
		}
		l.format = parseLogFormat(format, l.namespace)
		t := L.NewTable()
		for _, lv := range []struct {
			name  string
			level LogLevel
		}{{"debug", LevelDebug}, {"info", LevelInfo}, {"notice", LevelNotice}, {"warn", LevelWarn},
			{"err", LevelErr}, {"crit", LevelCrit}, {"alert", LevelAlert}, {"emerg", LevelEmerg}} {
			t.RawSetString(lv.name, L.NewFunction(func(L *glua.LState) int {
				if lv.level <= p.opts.LogLevel {
					p.emit(p.b.State, lv.level, l.render(L, p.joinArgs(L, 1)))
				}
				return 0
			}))
		}
		t.RawSetString("set_format", L.NewFunction(func(L *glua.LState) int {
			l.setFormat(L, defaultNamespacedFormat)
			return 0
		}))
		for _, k := range []string{"inspect", "deprecation", "trace", "set_serialize_value", "serialize"} {
			t.RawSetString(k, log.RawGetString(k))
		}
		L.Push(t)
		return 1
	}))
}
