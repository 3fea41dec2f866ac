package pdk

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gong-proxy/gong/lua"
	glua "github.com/yuin/gopher-lua"
)

// Modules returns the Go-native modules of the PDK for lua.GoModules:
// cjson and cjson.safe (openresty/lua-cjson), resty.ipmatcher, the ngx.re
// module, modules.go's replacements of FFI-based ones, and the narrow ffi
// and lua_system_constants of ffi.go.
//
// Objects are written in the VM's table iteration order (gopher-lua keeps
// insertion order; cjson follows LuaJIT's hash order, so no order is
// promised). Numbers use "%.14g" by default. The settings kept are
// encode_empty_table_as_object, decode_array_with_array_mt,
// encode_escape_forward_slash, encode_number_precision,
// encode_sparse_array, encode_max_depth and decode_max_depth, per module
// instance as in cjson.
func Modules() map[string]glua.LGFunction {
	return map[string]glua.LGFunction{
		"cjson":                    func(L *glua.LState) int { L.Push(newCJSON(L, defaultConfig(false))); return 1 },
		"cjson.safe":               func(L *glua.LState) int { L.Push(newCJSON(L, defaultConfig(true))); return 1 },
		"resty.ipmatcher":          openIPMatcher,
		"ngx.re":                   openNgxReModule,
		"resty.string":             openRestyString,
		"resty.random":             openRestyRandom,
		"resty.lrucache":           openLRUCache,
		"resty.lrucache.pureffi":   openLRUCache,
		"kong.tools.rand":          openToolsRand,
		"kong.tools.uuid":          openToolsUUID,
		"kong.tools.ip":            openToolsIP,
		"resty.http":               openRestyHTTP,
		"socket.url":               openSocketURL,
		"lsyslog":                  openLsyslog,
		"ffi":                      openFFI,
		"gong.bytes_to_str":        openBytesToStr,
		"ngx.ssl":                  openNgxSSL,
		"resty.openssl.x509":       openX509,
		"resty.openssl.x509.store": openX509Store,
		"lua_system_constants":     openSystemConstants,
		"gong.limits":              openLimits,
		"gong.queue_ledger":        openQueueLedger,
		"gong.log_record":          openLogRecord,
		"gong.append_file":         openAppendFile,
	}
}

// cjsonConfig is one cjson instance's settings.
type cjsonConfig struct {
	safe              bool
	emptyTableObject  bool
	decodeArrayMT     bool
	escapeSlash       bool
	precision         int
	sparseConvert     bool
	sparseRatio       int
	sparseSafe        int
	encodeMaxDepth    int
	decodeMaxDepth    int
	arrayMT, emptyMT  *glua.LTable
	emptyArray, nullV glua.LValue
	// entities caches the JSON of Session.Entities maps (logrecord.go).
	entities entityCache
	// recordSize is the length of the last record encodeRecord wrote, to
	// size the next one's buffer.
	recordSize int
}

func defaultConfig(safe bool) *cjsonConfig {
	return &cjsonConfig{safe: safe, emptyTableObject: true, escapeSlash: true, precision: 14,
		sparseRatio: 2, sparseSafe: 10, encodeMaxDepth: 1000, decodeMaxDepth: 1000}
}

// safeConfig is the default cjson.safe encoder kong.response.exit uses.
func safeConfig() *cjsonConfig { return defaultConfig(true) }

// arrayMT is L's cjson.array_mt.
func arrayMT(L *glua.LState) *glua.LTable {
	return registryValue(L, "gong.cjson.array_mt", func() glua.LValue { return L.NewTable() }).(*glua.LTable)
}

func emptyArrayMT(L *glua.LState) *glua.LTable {
	return registryValue(L, "gong.cjson.empty_array_mt", func() glua.LValue { return L.NewTable() }).(*glua.LTable)
}

func emptyArray(L *glua.LState) glua.LValue {
	return registryValue(L, "gong.cjson.empty_array", func() glua.LValue { return L.NewUserData() })
}

// bindVM fills the per-VM sentinels.
func (c *cjsonConfig) bindVM(L *glua.LState) {
	c.arrayMT, c.emptyMT, c.emptyArray, c.nullV = arrayMT(L), emptyArrayMT(L), emptyArray(L), Null(L)
}

func newCJSON(L *glua.LState, c *cjsonConfig) *glua.LTable {
	c.bindVM(L)
	m := L.NewTable()
	cjsonConfigs(L)[m] = c
	m.RawSetString("_NAME", glua.LString(map[bool]string{false: "cjson", true: "cjson.safe"}[c.safe]))
	m.RawSetString("_VERSION", glua.LString("2.1.0.14"))
	m.RawSetString("null", c.nullV)
	m.RawSetString("empty_array", c.emptyArray)
	m.RawSetString("array_mt", c.arrayMT)
	m.RawSetString("empty_array_mt", c.emptyMT)
	fail := func(L *glua.LState, err error) int {
		if c.safe {
			return pushErr(L, err.Error())
		}
		// luaL_error from a C function: no position prefix.
		L.Error(glua.LString(err.Error()), 0)
		return 0
	}
	boolSetting := func(name string, field *bool) {
		m.RawSetString(name, L.NewFunction(func(L *glua.LState) int {
			switch v := L.Get(1).(type) {
			case glua.LBool:
				*field = bool(v)
			case glua.LString:
				if v != "on" && v != "off" {
					L.ArgError(1, "invalid option '"+string(v)+"'")
				}
				*field = v == "on"
			}
			L.Push(glua.LBool(*field))
			return 1
		}))
	}
	intSetting := func(name string, field *int, lo, hi int) {
		m.RawSetString(name, L.NewFunction(func(L *glua.LState) int {
			if L.GetTop() >= 1 && L.Get(1) != glua.LNil {
				n := L.CheckInt(1)
				if n < lo || n > hi {
					L.ArgError(1, fmt.Sprintf("expected integer between %d and %d", lo, hi))
				}
				*field = n
			}
			L.Push(glua.LNumber(*field))
			return 1
		}))
	}
	boolSetting("encode_empty_table_as_object", &c.emptyTableObject)
	boolSetting("decode_array_with_array_mt", &c.decodeArrayMT)
	boolSetting("encode_escape_forward_slash", &c.escapeSlash)
	intSetting("encode_number_precision", &c.precision, 1, 16)
	intSetting("encode_max_depth", &c.encodeMaxDepth, 1, math.MaxInt32)
	intSetting("decode_max_depth", &c.decodeMaxDepth, 1, math.MaxInt32)
	m.RawSetString("encode_sparse_array", L.NewFunction(func(L *glua.LState) int {
		if v := L.Get(1); v != glua.LNil {
			c.sparseConvert = glua.LVAsBool(v)
		}
		if v := L.Get(2); v != glua.LNil {
			c.sparseRatio = L.CheckInt(2)
		}
		if v := L.Get(3); v != glua.LNil {
			c.sparseSafe = L.CheckInt(3)
		}
		L.Push(glua.LBool(c.sparseConvert))
		L.Push(glua.LNumber(c.sparseRatio))
		L.Push(glua.LNumber(c.sparseSafe))
		return 3
	}))
	m.RawSetString("encode", L.NewFunction(func(L *glua.LState) int {
		if L.GetTop() != 1 {
			L.ArgError(1, "expected 1 argument")
		}
		b, err := c.encode(L, L.Get(1))
		if err != nil {
			return fail(L, err)
		}
		L.Push(glua.LString(b))
		return 1
	}))
	m.RawSetString("decode", L.NewFunction(func(L *glua.LState) int {
		if L.GetTop() != 1 {
			L.ArgError(1, "expected 1 argument")
		}
		s, ok := L.Get(1).(glua.LString)
		if !ok {
			if n, isNum := L.Get(1).(glua.LNumber); isNum {
				s = glua.LString(strconv.FormatFloat(float64(n), 'g', -1, 64))
			} else {
				L.ArgError(1, "string expected, got "+L.Get(1).Type().String())
			}
		}
		d := &decoder{L: L, c: c, s: string(s)}
		v, err := d.decodeAll()
		if err != nil {
			return fail(L, err)
		}
		L.Push(v)
		return 1
	}))
	m.RawSetString("new", L.NewFunction(func(L *glua.LState) int {
		L.Push(newCJSON(L, defaultConfig(c.safe)))
		return 1
	}))
	return m
}

// encode renders v as cjson does (lua_cjson.c json_append_data).
func (c *cjsonConfig) encode(L *glua.LState, v glua.LValue) ([]byte, error) {
	if c.nullV == nil {
		c.bindVM(L)
	}
	var b []byte
	err := c.appendValue(L, &b, v, 0)
	return b, err
}

func (c *cjsonConfig) appendValue(L *glua.LState, b *[]byte, v glua.LValue, depth int) error {
	// Sizes only grow: a value that needs the buffer to grow past the
	// memory limit is refused here, strings by their escaped length.
	if _, isString := v.(glua.LString); !isString {
		lua.CheckAppend(L, *b, 32)
	}
	switch v := v.(type) {
	case *glua.LNilType:
		*b = append(*b, "null"...)
	case glua.LBool:
		*b = strconv.AppendBool(*b, bool(v))
	case glua.LNumber:
		return c.appendNumber(b, float64(v))
	case glua.LString:
		c.appendString(L, b, string(v))
	case *glua.LTable:
		depth++
		if depth > c.encodeMaxDepth {
			return fmt.Errorf("Cannot serialise, excessive nesting (%d)", depth)
		}
		return c.appendTable(L, b, v, depth)
	case *glua.LUserData:
		switch v {
		case c.nullV:
			*b = append(*b, "null"...)
		case c.emptyArray:
			*b = append(*b, "[]"...)
		default:
			return errors.New("Cannot serialise userdata: type not supported")
		}
	default:
		return fmt.Errorf("Cannot serialise %s: type not supported", v.Type())
	}
	return nil
}

// appendNumber appends f as cjson writes a number: "%.<precision>g"
// (encode_number_precision), NaN and infinities refused.
func (c *cjsonConfig) appendNumber(b *[]byte, f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return errors.New("Cannot serialise number: must not be NaN or Infinity")
	}
	// An integer of at most precision digits prints as %g prints it.
	if f == math.Trunc(f) && math.Abs(f) < pow10[min(c.precision, len(pow10)-1)] && (f != 0 || !math.Signbit(f)) {
		*b = strconv.AppendInt(*b, int64(f), 10)
		return nil
	}
	*b = strconv.AppendFloat(*b, f, 'g', c.precision, 64) // what "%.*g" printed
	return nil
}

// pow10 are the powers of ten up to 10^15, below which every integer is
// a float64 exactly.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// escapes is cjson's char2escape: control characters, '"', '\\', '/' and
// DEL; other bytes, UTF-8 included, are copied, in runs between escapes.
func (c *cjsonConfig) appendString(L *glua.LState, b *[]byte, s string) {
	// Only a string that could make the buffer's growth a large
	// allocation is measured first (lua.CheckAppend).
	if worst := len(*b) + 6*len(s) + 2; worst > cap(*b) && worst >= smallAllocHint {
		lua.CheckAppend(L, *b, c.escapedLen(s))
	}
	*b = append(*b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !jsonEscaped[ch] && (ch != '/' || !c.escapeSlash) {
			continue
		}
		*b = append(*b, s[start:i]...)
		start = i + 1
		switch ch {
		case '"':
			*b = append(*b, `\"`...)
		case '\\':
			*b = append(*b, `\\`...)
		case '/':
			*b = append(*b, `\/`...)
		case '\b':
			*b = append(*b, `\b`...)
		case '\f':
			*b = append(*b, `\f`...)
		case '\n':
			*b = append(*b, `\n`...)
		case '\r':
			*b = append(*b, `\r`...)
		case '\t':
			*b = append(*b, `\t`...)
		default:
			*b = fmt.Appendf(*b, `\u%04x`, ch)
		}
	}
	*b = append(*b, s[start:]...)
	*b = append(*b, '"')
}

// smallAllocHint: appendString measures a string's escaped length for
// lua.CheckAppend only when the worst case could bring the buffer to this
// size. lua.CheckAlloc lets everything under 64 KiB through, and
// CheckAppend asks for a quarter more than it needs: 16 KiB stays well
// below.
const smallAllocHint = 16 << 10

// jsonEscaped are the bytes appendString always escapes; '/' depends on
// encode_escape_forward_slash.
var jsonEscaped = func() (t [256]bool) {
	for ch := 0; ch < 0x20; ch++ {
		t[ch] = true
	}
	t['"'], t['\\'], t[0x7f] = true, true, true
	return t
}()

// escapedLen is the length appendString gives s.
func (c *cjsonConfig) escapedLen(s string) int {
	n := len(s) + 2
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '"' || ch == '\\' || ch == '/' && c.escapeSlash || ch == '\b' || ch == '\f' || ch == '\n' || ch == '\r' || ch == '\t':
			n++
		case ch < 0x20 || ch == 0x7f:
			n += 5
		}
	}
	return n
}

// arrayLength is lua_array_length: -1 for an object, else the array length;
// an excessively sparse array is an error unless sparse conversion is on.
func (c *cjsonConfig) arrayLength(t *glua.LTable) (int, error) {
	maxIdx, items := 0, 0
	object := false
	t.ForEach(func(k, _ glua.LValue) {
		n, ok := k.(glua.LNumber)
		if !ok || float64(n) < 1 || float64(n) != math.Floor(float64(n)) {
			object = true
			return
		}
		if int(n) > maxIdx {
			maxIdx = int(n)
		}
		items++
	})
	if object {
		return -1, nil
	}
	if c.sparseRatio > 0 && maxIdx > items*c.sparseRatio && maxIdx > c.sparseSafe {
		if !c.sparseConvert {
			return 0, errors.New("Cannot serialise table: excessively sparse array")
		}
		return -1, nil
	}
	return maxIdx, nil
}

func (c *cjsonConfig) appendTable(L *glua.LState, b *[]byte, t *glua.LTable, depth int) error {
	mt, _ := L.GetMetatable(t).(*glua.LTable)
	if mt != nil && mt == c.arrayMT {
		return c.appendArray(L, b, t, t.Len(), depth)
	}
	n, err := c.arrayLength(t)
	if err != nil {
		return err
	}
	if n > 0 || n == 0 && !c.emptyTableObject {
		return c.appendArray(L, b, t, n, depth)
	}
	if n == 0 && mt != nil && mt == c.emptyMT {
		*b = append(*b, "[]"...)
		return nil
	}
	*b = append(*b, '{')
	first := true
	var ferr error
	t.ForEach(func(k, v glua.LValue) {
		if ferr != nil {
			return
		}
		if !first {
			*b = append(*b, ',')
		}
		first = false
		switch k := k.(type) {
		case glua.LString:
			c.appendString(L, b, string(k))
		case glua.LNumber:
			*b = append(*b, '"')
			if err := c.appendNumber(b, float64(k)); err != nil {
				ferr = err
				return
			}
			*b = append(*b, '"')
		default:
			ferr = errors.New("Cannot serialise table: table key must be a number or string")
			return
		}
		*b = append(*b, ':')
		ferr = c.appendValue(L, b, v, depth)
	})
	if ferr != nil {
		return ferr
	}
	*b = append(*b, '}')
	return nil
}

func (c *cjsonConfig) appendArray(L *glua.LState, b *[]byte, t *glua.LTable, n, depth int) error {
	*b = append(*b, '[')
	for i := 1; i <= n; i++ {
		if i > 1 {
			*b = append(*b, ',')
		}
		if err := c.appendValue(L, b, t.RawGetInt(i), depth); err != nil {
			return err
		}
	}
	*b = append(*b, ']')
	return nil
}

// decoder follows lua_cjson.c's parser so errors read as cjson's:
// "Expected <what> but found <token> at character <n>".
type decoder struct {
	L     *glua.LState
	c     *cjsonConfig
	s     string
	pos   int
	depth int
}

type tokKind int

const (
	tObjBegin tokKind = iota
	tObjEnd
	tArrBegin
	tArrEnd
	tString
	tNumber
	tBoolean
	tNull
	tColon
	tComma
	tEnd
	tError
)

var tokNames = []string{"T_OBJ_BEGIN", "T_OBJ_END", "T_ARR_BEGIN", "T_ARR_END", "T_STRING",
	"T_NUMBER", "T_BOOLEAN", "T_NULL", "T_COLON", "T_COMMA", "T_END"}

type token struct {
	kind  tokKind
	index int
	str   string // string value, or the error text of tError
	num   float64
	b     bool
}

func (d *decoder) errorf(what string, t token) error {
	found := t.str
	if t.kind != tError {
		found = tokNames[t.kind]
	}
	return fmt.Errorf("Expected %s but found %s at character %d", what, found, t.index+1)
}

func (d *decoder) next() token {
	for d.pos < len(d.s) && strings.IndexByte(" \t\n\r", d.s[d.pos]) >= 0 {
		d.pos++
	}
	t := token{index: d.pos}
	if d.pos >= len(d.s) {
		t.kind = tEnd
		return t
	}
	ch := d.s[d.pos]
	single := map[byte]tokKind{'{': tObjBegin, '}': tObjEnd, '[': tArrBegin, ']': tArrEnd, ':': tColon, ',': tComma}
	if k, ok := single[ch]; ok {
		d.pos++
		t.kind = k
		return t
	}
	switch {
	case ch == '"':
		return d.str(t)
	case ch == '-' || ch >= '0' && ch <= '9':
		return d.number(t)
	case strings.HasPrefix(d.s[d.pos:], "true"):
		d.pos += 4
		t.kind, t.b = tBoolean, true
	case strings.HasPrefix(d.s[d.pos:], "false"):
		d.pos += 5
		t.kind = tBoolean
	case strings.HasPrefix(d.s[d.pos:], "null"):
		d.pos += 4
		t.kind = tNull
	default:
		t.kind, t.str = tError, "invalid token"
	}
	return t
}

func (d *decoder) number(t token) token {
	end := d.pos
	for end < len(d.s) && strings.IndexByte("0123456789+-.eE", d.s[end]) >= 0 {
		end++
	}
	lit := d.s[d.pos:end]
	digits := strings.TrimPrefix(lit, "-")
	f, err := strconv.ParseFloat(lit, 64)
	// cjson refuses hex, leading zeros and a bare sign (json_is_invalid_number).
	if err != nil && !errors.Is(err, strconv.ErrRange) || len(digits) > 1 && digits[0] == '0' && digits[1] >= '0' && digits[1] <= '9' {
		t.kind, t.str = tError, "invalid number"
		return t
	}
	d.pos = end
	t.kind, t.num = tNumber, f
	return t
}

func (d *decoder) str(t token) token {
	var b strings.Builder
	i := d.pos + 1
	for {
		if i >= len(d.s) {
			t.kind, t.str = tError, "unexpected end of string"
			return t
		}
		ch := d.s[i]
		if ch == '"' {
			break
		}
		if ch != '\\' {
			b.WriteByte(ch)
			i++
			continue
		}
		if i+1 >= len(d.s) {
			t.kind, t.str = tError, "unexpected end of string"
			return t
		}
		esc := d.s[i+1]
		switch esc {
		case '"', '\\', '/':
			b.WriteByte(esc)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, n := decodeUnicodeEscape(d.s[i:])
			if n == 0 {
				t.kind, t.str = tError, "invalid unicode escape code"
				return t
			}
			b.WriteRune(r)
			i += n
			continue
		default:
			t.kind, t.str = tError, "invalid escape code"
			return t
		}
		i += 2
	}
	d.pos = i + 1
	t.kind, t.str = tString, b.String()
	return t
}

// decodeUnicodeEscape reads \uXXXX, or a surrogate pair \uD8XX\uDCXX, from
// s; n is the bytes consumed, 0 when invalid.
func decodeUnicodeEscape(s string) (rune, int) {
	hex := func(s string) (rune, bool) {
		if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(s[2:6], 16, 32)
		return rune(v), err == nil
	}
	r, ok := hex(s)
	if !ok {
		return 0, 0
	}
	if r >= 0xdc00 && r <= 0xdfff {
		return 0, 0
	}
	if r >= 0xd800 && r <= 0xdbff {
		lo, ok := hex(s[6:])
		if !ok || lo < 0xdc00 || lo > 0xdfff {
			return 0, 0
		}
		return 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00), 12
	}
	if !utf8.ValidRune(r) {
		return 0, 0
	}
	return r, 6
}

func (d *decoder) decodeAll() (glua.LValue, error) {
	v, err := d.value(d.next())
	if err != nil {
		return nil, err
	}
	if t := d.next(); t.kind != tEnd {
		return nil, d.errorf("the end", t)
	}
	return v, nil
}

func (d *decoder) value(t token) (glua.LValue, error) {
	switch t.kind {
	case tString:
		return glua.LString(t.str), nil
	case tNumber:
		return glua.LNumber(t.num), nil
	case tBoolean:
		return glua.LBool(t.b), nil
	case tNull:
		return d.c.nullV, nil
	case tObjBegin, tArrBegin:
		d.depth++
		if d.depth > d.c.decodeMaxDepth {
			return nil, fmt.Errorf("Found too many nested data structures (%d) at character %d", d.depth, t.index+1)
		}
		defer func() { d.depth-- }()
		if t.kind == tObjBegin {
			return d.object()
		}
		return d.array()
	}
	return nil, d.errorf("value", t)
}

func (d *decoder) object() (glua.LValue, error) {
	obj := d.L.NewTable()
	t := d.next()
	if t.kind == tObjEnd {
		return obj, nil
	}
	for {
		if t.kind != tString {
			return nil, d.errorf("object key string", t)
		}
		key := t.str
		if t = d.next(); t.kind != tColon {
			return nil, d.errorf("colon", t)
		}
		v, err := d.value(d.next())
		if err != nil {
			return nil, err
		}
		obj.RawSetString(key, v)
		t = d.next()
		if t.kind == tObjEnd {
			return obj, nil
		}
		if t.kind != tComma {
			return nil, d.errorf("comma or object end", t)
		}
		t = d.next()
	}
}

func (d *decoder) array() (glua.LValue, error) {
	arr := d.L.NewTable()
	if d.c.decodeArrayMT {
		d.L.SetMetatable(arr, d.c.arrayMT)
	}
	t := d.next()
	if t.kind == tArrEnd {
		return arr, nil
	}
	for i := 1; ; i++ {
		v, err := d.value(t)
		if err != nil {
			return nil, err
		}
		arr.RawSetInt(i, v)
		t = d.next()
		if t.kind == tArrEnd {
			return arr, nil
		}
		if t.kind != tComma {
			return nil, d.errorf("comma or array end", t)
		}
		t = d.next()
	}
}
