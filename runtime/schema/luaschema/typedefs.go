package luaschema

import (
	"crypto/x509"
	"encoding/pem"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	glua "github.com/yuin/gopher-lua"

	"github.com/gong-proxy/gong/lua"
	"github.com/gong-proxy/gong/runtime/schema"
)

// Modules are the Go-native Lua modules plugin schema files require:
// "kong.db.schema" (with define) and "kong.db.schema.typedefs" (callable
// typedef tables; custom validators in Go). Pass them to lua.NewBundle
// with lua.GoModules.
func Modules() map[string]glua.LGFunction {
	return map[string]glua.LGFunction{
		"kong.db.schema":          openSchema,
		"kong.db.schema.typedefs": openTypedefs,
	}
}

func openSchema(L *glua.LState) int {
	m := L.NewTable()
	L.SetField(m, "define", L.NewFunction(schemaDefine))
	L.Push(m)
	return 1
}

// schemaDefine is Schema.define: the table becomes callable, and calling
// it with overrides returns the overrides filled with every key they do not
// set (kong/db/schema/init.lua).
func schemaDefine(L *glua.LState) int {
	t := L.CheckTable(1)
	L.SetMetatable(t, defineMeta(L))
	L.Push(t)
	return 1
}

const defineMetaKey = "gong.schema.define_mt"

func defineMeta(L *glua.LState) *glua.LTable {
	reg := L.Get(glua.RegistryIndex).(*glua.LTable)
	if mt, ok := reg.RawGetString(defineMetaKey).(*glua.LTable); ok {
		return mt
	}
	mt := L.NewTable()
	mt.RawSetString("__call", L.NewFunction(func(L *glua.LState) int {
		t := L.CheckTable(1)
		arg, ok := L.Get(2).(*glua.LTable)
		if !ok {
			arg = L.NewTable()
		}
		t.ForEach(func(k, v glua.LValue) {
			if arg.RawGet(k) == glua.LNil {
				arg.RawSet(k, v)
			}
		})
		L.Push(arg)
		return 1
	}))
	reg.RawSetString(defineMetaKey, mt)
	return mt
}

// validator is a typedef custom validator: "" when s is valid.
type validator func(s string) string

// goValidator wraps a validator as custom_validator(value) -> true | nil, err.
func goValidator(L *glua.LState, fn validator) *glua.LFunction {
	return L.NewFunction(func(L *glua.LState) int {
		s, ok := L.Get(1).(glua.LString)
		if !ok {
			L.Push(glua.LNil)
			L.Push(glua.LString("expected a string"))
			return 2
		}
		if msg := fn(string(s)); msg != "" {
			L.Push(glua.LNil)
			L.Push(glua.LString(msg))
			return 2
		}
		L.Push(glua.LTrue)
		return 1
	})
}

// protocols is constants.PROTOCOLS, sorted.
var protocols = []string{"grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp"}

// openTypedefs builds kong.db.schema.typedefs (kong/db/schema/typedefs.lua):
// each typedef is a Schema.define table; indexing an unknown one raises.
func openTypedefs(L *glua.LState) int {
	null := nullValue(L)
	mt := defineMeta(L)
	td := L.NewTable()
	def := func(name string, attrs map[string]glua.LValue) *glua.LTable {
		t := L.NewTable()
		for k, v := range attrs {
			t.RawSetString(k, v)
		}
		L.SetMetatable(t, mt)
		td.RawSetString(name, t)
		return t
	}
	str := func(name string, fn validator) *glua.LTable {
		return def(name, map[string]glua.LValue{"type": glua.LString("string"), "custom_validator": goValidator(L, fn)})
	}
	list := func(items ...string) *glua.LTable {
		t := L.NewTable()
		for _, s := range items {
			t.Append(glua.LString(s))
		}
		return t
	}
	between := func(lo, hi float64) *glua.LTable {
		t := L.NewTable()
		t.Append(glua.LNumber(lo))
		t.Append(glua.LNumber(hi))
		return t
	}
	patErr := func(pattern, err string) *glua.LTable {
		t := L.NewTable()
		e := L.NewTable()
		e.RawSetString("pattern", glua.LString(pattern))
		e.RawSetString("err", glua.LString(err))
		t.Append(e)
		return t
	}
	S := func(s string) glua.LValue { return glua.LString(s) }

	def("http_method", map[string]glua.LValue{"type": S("string"), "match": S("^%u+$")})
	protocol := def("protocol", map[string]glua.LValue{"type": S("string"), "one_of": list(protocols...)})
	str("host", schema.ValidateHost)
	str("redis_host", schema.ValidateHost)
	str("host_with_optional_port", schema.ValidateHostWithOptionalPort)
	str("wildcard_host", schema.ValidateWildcardHost)
	str("ip", validateIP)
	str("ip_or_cidr", schema.ValidateIPOrCIDR)
	cidr := str("cidr_v4", validateIPOrCIDRv4)
	td.RawSetString("cidr", cidr)
	def("port", map[string]glua.LValue{"type": S("integer"), "between": between(0, 65535)})
	def("path", map[string]glua.LValue{"type": S("string"), "starts_with": S("/"),
		"match_none": patErr("//", "must not have empty segments"), "custom_validator": goValidator(L, schema.ValidatePath)})
	str("url", validateURL)
	str("header_name", schema.ValidateHeaderName)
	def("timeout", map[string]glua.LValue{"type": S("integer"), "between": between(0, math.Pow(2, 31)-2)})
	def("uuid", map[string]glua.LValue{"type": S("string"), "uuid": glua.LTrue, "auto": glua.LTrue})
	def("auto_timestamp_s", map[string]glua.LValue{"type": S("integer"), "timestamp": glua.LTrue, "auto": glua.LTrue})
	def("auto_timestamp_ms", map[string]glua.LValue{"type": S("number"), "timestamp": glua.LTrue, "auto": glua.LTrue})
	for _, n := range []struct{ name, ref string }{{"no_route", "routes"}, {"no_service", "services"}, {"no_consumer", "consumers"}} {
		def(n.name, map[string]glua.LValue{"type": S("foreign"), "reference": S(n.ref), "eq": null})
	}
	def("name", map[string]glua.LValue{"type": S("string"), "unique": glua.LTrue, "custom_validator": goValidator(L, validateName)})
	def("utf8_name", map[string]glua.LValue{"type": S("string"), "unique": glua.LTrue, "custom_validator": goValidator(L, schema.ValidateUTF8Name)})
	str("sni", schema.ValidateSNI)
	str("redis_server_name", schema.ValidateSNI)
	str("certificate", validateCertificate)
	str("key", validateKey)
	tag := def("tag", map[string]glua.LValue{"type": S("string"), "required": glua.LTrue, "custom_validator": goValidator(L, schema.ValidateTag)})
	def("tags", map[string]glua.LValue{"type": S("set"), "elements": tag})
	def("protocols", map[string]glua.LValue{"type": S("set"), "required": glua.LTrue,
		"default": list(schema.HTTPProtocols()...), "elements": protocol})
	def("protocols_http", map[string]glua.LValue{"type": S("set"), "required": glua.LTrue,
		"default": list(schema.HTTPProtocols()...), "elements": func() *glua.LTable {
			t := L.NewTable()
			t.RawSetString("type", S("string"))
			t.RawSetString("one_of", list(schema.HTTPProtocols()...))
			return t
		}()})
	headerValues := L.NewTable()
	headerValues.RawSetString("type", S("array"))
	strEl := L.NewTable()
	strEl.RawSetString("type", S("string"))
	headerValues.RawSetString("elements", strEl)
	def("headers", map[string]glua.LValue{"type": S("map"), "keys": td.RawGetString("header_name"), "values": headerValues})
	matchAny := L.NewTable()
	matchAny.RawSetString("patterns", list("^%d+[%.%d]*$", "^%d+[%.%d]*%-?.*$"))
	matchAny.RawSetString("err", S("invalid version number: must be in format of X.Y.Z"))
	def("semantic_version", map[string]glua.LValue{"type": S("string"), "match_any": matchAny,
		"match_none": patErr("%.%.", "must not have empty version segments")})
	luaKeys := L.NewTable()
	luaKeys.RawSetString("type", S("string"))
	luaKeys.RawSetString("len_min", glua.LNumber(1))
	luaValues := L.NewTable()
	luaValues.RawSetString("type", S("string"))
	luaValues.RawSetString("len_min", glua.LNumber(1))
	luaValues.RawSetString("custom_validator", goValidator(L, validateLua))
	def("lua_code", map[string]glua.LValue{"type": S("map"), "keys": luaKeys, "values": luaValues})
	def("ttl", map[string]glua.LValue{"type": S("number"), "between": between(0, 100000000)})
	td.RawSetString("queue", queueSchema(L, mt))
	td.RawSetString("propagation", propagationSchema(L, mt))

	meta := L.NewTable()
	meta.RawSetString("__index", L.NewFunction(func(L *glua.LState) int {
		L.RaiseError("schema typedef error: definition %s does not exist", L.Get(2).String())
		return 0
	}))
	L.SetMetatable(td, meta)
	L.Push(td)
	return 1
}

// queueSchema is kong/tools/queue_schema.lua.
// propagationFormats are the tracing header formats Kong knows; b3 and
// b3-single share one extractor, so b3-single is only injected.
var propagationFormats = []string{"b3", "b3-single", "w3c", "jaeger", "ot", "aws", "datadog", "gcp", "instana"}

// propagationSchema is typedefs.propagation: the tracing header formats a
// plugin extracts, clears and injects, and the default one.
func propagationSchema(L *glua.LState, mt *glua.LTable) *glua.LTable {
	strs := func(items ...string) *glua.LTable {
		t := L.NewTable()
		for _, s := range items {
			t.Append(glua.LString(s))
		}
		return t
	}
	record := func(attrs map[string]glua.LValue) *glua.LTable {
		t := L.NewTable()
		for k, v := range attrs {
			t.RawSetString(k, v)
		}
		return t
	}
	S := func(s string) glua.LValue { return glua.LString(s) }
	array := func(elem *glua.LTable) glua.LValue {
		return record(map[string]glua.LValue{"type": S("array"), "elements": elem})
	}
	extractors := strs(slices.DeleteFunc(slices.Clone(propagationFormats), func(f string) bool { return f == "b3-single" })...)
	headerName := record(map[string]glua.LValue{"type": S("string"), "match": S("^[%w%-_]+$"),
		"err": S("bad header name, allowed characters are A-Z, a-z, 0-9, '_', and '-'")})
	fields := L.NewTable()
	for _, f := range []struct {
		name string
		def  glua.LValue
	}{
		{"extract", array(record(map[string]glua.LValue{"type": S("string"), "one_of": extractors}))},
		{"clear", array(headerName)},
		{"inject", array(record(map[string]glua.LValue{"type": S("string"), "one_of": strs(append([]string{"preserve"}, propagationFormats...)...)}))},
		{"default_format", record(map[string]glua.LValue{"type": S("string"), "one_of": strs(propagationFormats...), "required": glua.LTrue})},
	} {
		fields.Append(record(map[string]glua.LValue{f.name: f.def}))
	}
	p := record(map[string]glua.LValue{"type": S("record"), "fields": fields})
	L.SetMetatable(p, mt)
	return p
}

func queueSchema(L *glua.LState, mt *glua.LTable) *glua.LTable {
	fields := L.NewTable()
	add := func(name, typ string, def glua.LValue, lo, hi float64, oneOf ...float64) {
		f := L.NewTable()
		f.RawSetString("type", glua.LString(typ))
		if def != glua.LNil {
			f.RawSetString("default", def)
		}
		if lo != hi {
			b := L.NewTable()
			b.Append(glua.LNumber(lo))
			b.Append(glua.LNumber(hi))
			f.RawSetString("between", b)
		}
		if len(oneOf) > 0 {
			o := L.NewTable()
			for _, n := range oneOf {
				o.Append(glua.LNumber(n))
			}
			f.RawSetString("one_of", o)
		}
		item := L.NewTable()
		item.RawSetString(name, f)
		fields.Append(item)
	}
	N := func(n float64) glua.LValue { return glua.LNumber(n) }
	add("max_batch_size", "integer", N(1), 1, 1000000)
	add("max_coalescing_delay", "number", N(1), 0, 3600)
	add("max_entries", "integer", N(10000), 1, 1000000)
	add("max_bytes", "integer", glua.LNil, 0, 0)
	add("max_retry_time", "number", N(60), 0, 0)
	add("initial_retry_delay", "number", N(0.01), 0.001, 1000000)
	add("max_retry_delay", "number", N(60), 0.001, 1000000)
	add("concurrency_limit", "integer", N(1), 0, 0, -1, 1)
	q := L.NewTable()
	q.RawSetString("type", glua.LString("record"))
	q.RawSetString("fields", fields)
	L.SetMetatable(q, mt)
	return q
}

func isIPv4(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 || p == "" {
			return false
		}
	}
	return true
}

func validateIP(s string) string {
	if isIPv4(s) || (strings.Contains(s, ":") && net.ParseIP(s) != nil) {
		return ""
	}
	return "not an ip address: " + s
}

// validIPOrCIDR is kong.tools.ip is_valid_ip_or_cidr (v4only for
// is_valid_ip_or_cidr_v4).
func validIPOrCIDR(s string, v4only bool) bool {
	addr, prefix, hasPrefix := strings.Cut(s, "/")
	v4 := isIPv4(addr)
	v6 := !v4 && strings.Contains(addr, ":") && net.ParseIP(addr) != nil
	if !v4 && (v4only || !v6) {
		return false
	}
	if !hasPrefix {
		return true
	}
	n, err := strconv.Atoi(prefix)
	if err != nil || n < 0 || prefix == "" {
		return false
	}
	if v4 {
		return n <= 32
	}
	return n <= 128
}

func validateIPOrCIDRv4(s string) string {
	if validIPOrCIDR(s, true) {
		return ""
	}
	return "invalid ipv4 cidr range: '" + s + "'"
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9.\-_~]+$`)
)

func validateName(name string) string {
	if !nameRE.MatchString(name) {
		return "invalid value '" + name + "': it must only contain alphanumeric and '., -, _, ~' characters"
	}
	return ""
}

// validateURL is typedefs validate_url over socket.url.parse.
func validateURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "could not parse url. " + err.Error()
	}
	if u.Host == "" {
		return "missing host in url"
	}
	if u.Scheme == "" {
		return "missing scheme in url"
	}
	return ""
}

func validateCertificate(s string) string {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return "invalid certificate: PEM_read_bio_X509_AUX() failed"
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return "invalid certificate: " + err.Error()
	}
	return ""
}

func validateKey(s string) string {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return "invalid key: pkey.new:load_key: failed to load key"
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return ""
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return ""
	}
	if _, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return ""
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err == nil {
		return ""
	}
	return "invalid key: pkey.new:load_key: failed to load key"
}

// validateLua is the compile check of sandbox.validate_safe.
func validateLua(code string) string {
	if _, err := lua.Compile("=(lua_code)", code); err != nil {
		return "Error parsing function: " + err.Error()
	}
	return ""
}
