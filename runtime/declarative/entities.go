package declarative

import (
	"slices"
	"strconv"
	"strings"
)

// Entity types in Kong's load order (the topological sort of
// kong/db/schema/topological_sort.lua restricted to these types): ids,
// uniqueness and references are processed in this order.
var entityTypes = []string{
	"ca_certificates", "certificates", "consumers", "services", "routes",
	"plugins", "snis", "upstreams", "targets",
}

// foreignKey is a reference from one entity type to another.
type foreignKey struct {
	field, ref string
}

// foreignKeys lists each type's foreign fields; nesting follows them.
var foreignKeys = map[string][]foreignKey{
	"services":  {{"client_certificate", "certificates"}},
	"routes":    {{"service", "services"}},
	"plugins":   {{"route", "routes"}, {"service", "services"}, {"consumer", "consumers"}},
	"snis":      {{"certificate", "certificates"}},
	"upstreams": {{"client_certificate", "certificates"}},
	"targets":   {{"upstream", "upstreams"}},
}

// setReferences lists fields holding a set of ids of another type (gong
// extensions). Unlike foreign keys they are checked by id only and never
// nest.
var setReferences = map[string][]foreignKey{
	"routes": {{"client_ca_certificates", "ca_certificates"}},
}

// children lists, for a parent type, the child types that may be nested
// in it and the child's field pointing back, in load order.
func children(parent string) []foreignKey {
	var out []foreignKey
	for _, t := range entityTypes {
		for _, fk := range foreignKeys[t] {
			if fk.ref == parent {
				out = append(out, foreignKey{field: fk.field, ref: t})
			}
		}
	}
	return out
}

// endpointKey is the unique field by which entities are referenced.
var endpointKey = map[string]string{
	"services": "name", "routes": "name", "upstreams": "name",
	"consumers": "username", "snis": "name", "plugins": "instance_name",
}

var protocols = []string{"grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp"}

const maxTimeout = 1<<31 - 2

func str(name string, vs ...func(string) string) *field {
	return &field{name: name, kind: tString, str: vs}
}

func integer(name string, lo, hi float64, def any) *field {
	return &field{name: name, kind: tInteger, between: &[2]float64{lo, hi}, def: def}
}

func boolean(name string, def any) *field {
	return &field{name: name, kind: tBoolean, def: def}
}

func required(f *field) *field { f.required = true; return f }

func withDefault(f *field, def any) *field { f.def = def; return f }

func oneOf(f *field, vs ...string) *field { f.oneOf = vs; return f }

func set(name string, el *field) *field { return &field{name: name, kind: tSet, elements: el} }

func array(name string, el *field) *field { return &field{name: name, kind: tArray, elements: el} }

func idField() *field { return &field{name: "id", kind: tString, uuid: true, auto: true} }

func timestamps(kind kind) []*field {
	return []*field{
		{name: "created_at", kind: kind, timestamp: true, auto: true},
		{name: "updated_at", kind: kind, timestamp: true, auto: true},
	}
}

func utf8Name(name string) *field { return str(name, validateUTF8Name) }

func tags() *field { return set("tags", str("", validateTag)) }

func pathField(name string) *field {
	return str(name, startsWith("/"), matchNone("//", "must not have empty segments"), validatePath)
}

func startsWith(p string) func(string) string {
	return func(s string) string {
		if !strings.HasPrefix(s, p) {
			return "should start with: " + p
		}
		return ""
	}
}

func matchNone(sub, err string) func(string) string {
	return func(s string) string {
		if strings.Contains(s, sub) {
			return err
		}
		return ""
	}
}

func strs(vs ...string) []any {
	a := make([]any, len(vs))
	for i, v := range vs {
		a[i] = v
	}
	return a
}

func nums(vs ...float64) []any {
	a := make([]any, len(vs))
	for i, v := range vs {
		a[i] = v
	}
	return a
}

// builder makes the schemas for one Parse: they depend on the options.
type builder struct {
	opts   Options
	now    int64 // Unix seconds, for certificate expiry
	cache  map[string]*schema
	plugin func(name string, config map[string]any) (map[string]any, map[string]any)
}

// entity returns the record schema of an entity type; nested records
// (written inside their parent) get foreign keys that must be null, as
// Kong's copy_record makes them.
func (b *builder) entity(typ string, nested bool) *schema {
	key := typ
	if nested {
		key += "/nested"
	}
	if s := b.cache[key]; s != nil {
		return s
	}
	s := b.base(typ)
	for _, fk := range foreignKeys[typ] {
		f := s.lookup(fk.field, nil)
		if nested {
			*f = field{name: fk.field, kind: tString, mustBeNull: true}
		}
	}
	s.fields = append(s.fields,
		&field{name: "_comment", kind: tString},
		&field{name: "_ignore", kind: tArray, elements: &field{kind: tAny}})
	for _, c := range children(typ) {
		s.fields = append(s.fields, &field{name: c.ref, kind: tArray,
			elements: &field{kind: tRecord, record: b.entity(c.ref, true)}})
	}
	b.cache[key] = s
	return s
}

func (b *builder) base(typ string) *schema {
	switch typ {
	case "services":
		return b.services()
	case "routes":
		return b.routes()
	case "upstreams":
		return b.upstreams()
	case "targets":
		return b.targets()
	case "certificates":
		return b.certificates()
	case "snis":
		return b.snis()
	case "ca_certificates":
		return b.caCertificates()
	case "plugins":
		return b.plugins()
	case "consumers":
		return b.consumers()
	}
	panic("declarative: unknown entity type " + typ)
}

// reference is a top-level foreign field: the endpoint key or id of the
// referenced entity, as a string.
func reference(name string) *field { return &field{name: name, kind: tString} }

func notOneOf(vs ...string) func(any) bool {
	return func(v any) bool { s, _ := v.(string); return !slices.Contains(vs, s) }
}

func isOneOf(vs ...string) func(any) bool {
	return func(v any) bool { s, _ := v.(string); return slices.Contains(vs, s) }
}

func mustBeNull(v any) *ErrorNode {
	if v != nil {
		return leaf("value must be null")
	}
	return nil
}

func (b *builder) services() *schema {
	protocol := required(oneOf(withDefault(str("protocol"), "http"), protocols...))
	timeout := func(n string) *field { return integer(n, 1, maxTimeout, 60000.0) }
	s := &schema{fields: append(append([]*field{idField()}, timestamps(tInteger)...),
		utf8Name("name"),
		integer("retries", 0, 32767, 5.0),
		protocol,
		required(str("host", validateHost)),
		required(integer("port", 0, 65535, 80.0)),
		pathField("path"),
		timeout("connect_timeout"),
		timeout("write_timeout"),
		timeout("read_timeout"),
		tags(),
		reference("client_certificate"),
		boolean("tls_verify", nil),
		integer("tls_verify_depth", 0, 64, nil),
		array("ca_certificates", &field{kind: tString, uuid: true}),
		required(boolean("enabled", true)),
		boolean("proxy_protocol", nil),
	)}
	s.checks = []check{
		conditional{ifField: protocol, ifMatch: isOneOf("tcp", "tls", "udp", "grpc", "grpcs"), thenField: "path", then: mustBeNull}.check(),
		// gong's extension: a PROXY v2 header to TCP upstreams.
		conditional{ifField: protocol, ifMatch: notOneOf("tcp", "tls", "tls_passthrough"), thenField: "proxy_protocol", then: mustBeNull}.check(),
	}
	for _, f := range []string{"client_certificate", "tls_verify", "tls_verify_depth", "ca_certificates"} {
		s.checks = append(s.checks, conditional{ifField: protocol, ifMatch: notOneOf("https", "tls"), thenField: f, then: mustBeNull}.check())
	}
	s.shorthand = serviceURL
	return s
}

// serviceURL expands the write-only `url` field as services.lua does,
// parsing like LuaSocket's url.parse.
func serviceURL(m map[string]any) *ErrorNode {
	v, ok := m["url"]
	if !ok {
		return nil
	}
	if v == nil {
		delete(m, "url")
		return nil
	}
	raw, isStr := v.(string)
	if !isStr {
		return &ErrorNode{Fields: map[string]*ErrorNode{"url": leaf("expected a string")}}
	}
	if raw == "" {
		return &ErrorNode{Fields: map[string]*ErrorNode{"url": leaf("length must be at least 1")}}
	}
	delete(m, "url")
	u := parseSocketURL(raw)
	var port any
	if isDigits(u.port) {
		port, _ = strconv.ParseFloat(u.port, 64)
	} else if u.hasPort {
		port = u.port
	}
	protocol := u.scheme
	if protocol == "" {
		protocol = "http"
		if port == 443.0 {
			protocol = "https"
		}
	}
	if port == nil {
		port = 80.0
		if protocol == "https" {
			port = 443.0
		}
	}
	m["protocol"] = protocol
	m["port"] = port
	m["host"] = nil
	if u.host != "" {
		m["host"] = u.host
	}
	m["path"] = nil
	if u.path != "" {
		m["path"] = u.path
	}
	return nil
}

type socketURL struct {
	scheme, host, port, path string
	hasPort                  bool
}

// parseSocketURL follows LuaSocket's url.parse closely enough for the
// fields services use: scheme, authority (host, port) and path.
func parseSocketURL(s string) socketURL {
	var u socketURL
	if i := strings.IndexByte(s, ':'); i > 0 && isAlnum(s[0]) && strings.Trim(s[:i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") == "" {
		u.scheme, s = s[:i], s[i+1:]
	}
	var authority string
	hasAuthority := false
	if rest, ok := strings.CutPrefix(s, "//"); ok {
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		authority, s, hasAuthority = rest[:end], rest[end:], true
	}
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	u.path = s
	if !hasAuthority {
		return u
	}
	if i := strings.IndexByte(authority, '@'); i >= 0 {
		authority = authority[i+1:]
	}
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && !strings.ContainsRune(authority[i+1:], ']') {
		u.port, u.hasPort = authority[i+1:], true
		authority = authority[:i]
	}
	if strings.HasPrefix(authority, "[") && strings.HasSuffix(authority, "]") && len(authority) > 2 {
		authority = authority[1 : len(authority)-1]
	}
	u.host = authority
	return u
}

func endpointRecord(name string) *field {
	rec := &schema{fields: []*field{
		str("ip", validateIPOrCIDR),
		integer("port", 0, 65535, nil),
	}}
	rec.checks = []check{atLeastOneOf("ip", "port")}
	return set(name, &field{kind: tRecord, record: rec})
}

// downstreamTLSFields are gong's route extensions for TLS termination
// (client certificates and ALPN); only routes that terminate TLS use them.
var downstreamTLSFields = []string{"client_ca_certificates", "client_verify_depth", "alpn_protocols"}

// lenMax is Kong's len_max for strings, in bytes.
func lenMax(n int) func(string) string {
	return func(s string) string {
		if len(s) > n {
			return "length must be at most " + strconv.Itoa(n)
		}
		return ""
	}
}

func streamOnly(name string, kind kind, el *field) *field {
	return &field{name: name, kind: kind, elements: el, mustBeNull: true,
		err: "cannot set '" + name + "' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp'"}
}

func headersField(name string, keys *field) *field {
	return &field{name: name, kind: tMap, keys: keys,
		values: &field{kind: tArray, elements: &field{kind: tString}}}
}

func (b *builder) routes() *schema {
	flavor := b.opts.RouterFlavor
	if flavor == "" {
		flavor = "traditional_compatible"
	}
	sniEl := str("", validateWildcardHost)
	if flavor == "traditional" {
		sniEl = str("", validateSNI)
	}
	protocolsF := &field{name: "protocols", kind: tSet, required: true, hasLenMin: true, lenMin: 1,
		elements: oneOf(str(""), protocols...), def: strs("http", "https"),
		mutex: [][]string{{"http", "https"}, {"tcp", "tls", "udp"}, {"tls_passthrough"}, {"grpc", "grpcs"}}}
	hostHeader := str("", validateHeaderName, func(s string) string {
		if strings.EqualFold(s, "host") {
			return "cannot contain 'host' header, which must be specified in the 'hosts' attribute"
		}
		return ""
	})
	s := &schema{fields: append(append([]*field{idField()}, timestamps(tInteger)...),
		utf8Name("name"),
		protocolsF,
		required(&field{name: "https_redirect_status_code", kind: tInteger, oneOfNum: []float64{426, 301, 302, 307, 308}, def: 426.0}),
		required(boolean("strip_path", true)),
		required(boolean("preserve_host", false)),
		required(boolean("request_buffering", true)),
		required(boolean("response_buffering", true)),
		tags(),
		reference("service"),
		set("snis", sniEl),
		endpointRecord("sources"),
		endpointRecord("destinations"),
		set("methods", str("", httpMethod)),
		array("hosts", str("", validateRouteHost)),
		array("paths", str("", validateRouterPath)),
		headersField("headers", hostHeader),
		&field{name: "regex_priority", kind: tInteger, def: 0.0},
		oneOf(withDefault(str("path_handling"), "v0"), "v0", "v1"),
		set("client_ca_certificates", &field{kind: tString, uuid: true}),
		integer("client_verify_depth", 0, 64, nil),
		set("alpn_protocols", str("", lenMax(255))),
	)}
	expressions := flavor == "expressions"
	if expressions {
		s.fields = append(s.fields,
			str("expression"),
			required(integer("priority", 0, 1<<46-1, 0.0)))
	}
	s.checks = []check{conditional{
		ifField: protocolsF,
		ifMatch: func(v any) bool {
			a, _ := asArray(v)
			for _, p := range a {
				if s, _ := p.(string); slices.Contains([]string{"grpcs", "https", "tls", "tls_passthrough"}, s) {
					return false
				}
			}
			return true
		},
		thenField: "snis",
		then: func(v any) *ErrorNode {
			if a, ok := asArray(v); ok && len(a) > 0 {
				return leaf("length must be 0")
			}
			return nil
		},
		thenErr: "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'",
	}.check()}
	for _, f := range downstreamTLSFields {
		s.checks = append(s.checks, conditional{
			ifField:   protocolsF,
			ifMatch:   func(v any) bool { a, _ := asArray(v); return !slices.Contains(a, any("tls")) },
			thenField: f,
			then:      mustBeNull,
			thenErr:   "'" + f + "' can only be set when 'protocols' includes 'tls'",
		}.check())
	}
	if flavor != "traditional" {
		s.checks = append(s.checks, routeFieldsCheck(b.opts.RouteExpression))
	}
	streamFields := []string{"sources", "destinations", "snis"}
	if expressions {
		streamFields = append(streamFields, "expression")
	}
	passthroughFields := []string{"snis"}
	if expressions {
		passthroughFields = append(passthroughFields, "expression")
	}
	stream := &subschema{
		fields: map[string]*field{
			"methods": streamOnly("methods", tSet, str("")),
			"hosts":   streamOnly("hosts", tArray, str("")),
			"paths":   streamOnly("paths", tArray, str("")),
			"headers": streamOnly("headers", tMap, nil),
		},
		checks: []check{
			protocolsAtLeastOne(protocolsF, []string{"tcp", "tls", "udp"}, streamFields,
				"must set one of "+quotedList(streamFields)+" when 'protocols' is 'tcp', 'tls' or 'udp'"),
			protocolsAtLeastOne(protocolsF, []string{"tls_passthrough"}, passthroughFields,
				"must set snis when 'protocols' is 'tls_passthrough'"),
		},
	}
	http := &subschema{fields: map[string]*field{}, checks: []check{httpAtLeastOne(protocolsF, "https", "http",
		[]string{"methods", "hosts", "headers", "paths", "snis"}, []string{"methods", "hosts", "headers", "paths"}, expressions)}}
	grpc := &subschema{
		fields: map[string]*field{
			"strip_path": required(&field{name: "strip_path", kind: tBoolean, def: false, mustNotBe: true,
				err: "cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'"}),
			"methods": {name: "methods", kind: tSet, elements: str(""), mustBeNull: true,
				err: "cannot set 'methods' when 'protocols' is 'grpc' or 'grpcs'"},
		},
		checks: []check{httpAtLeastOne(protocolsF, "grpcs", "grpc",
			[]string{"hosts", "headers", "paths", "snis"}, []string{"hosts", "headers", "paths"}, expressions)},
	}
	if !expressions {
		for _, f := range []string{"sources", "destinations"} {
			http.fields[f] = &field{name: f, kind: tSet, mustBeNull: true,
				err: "cannot set '" + f + "' when 'protocols' is 'http' or 'https'"}
			grpc.fields[f] = &field{name: f, kind: tSet, mustBeNull: true,
				err: "cannot set '" + f + "' when 'protocols' is 'grpc' or 'grpcs'"}
		}
	}
	s.subKey = "protocols"
	s.subschema = func(k any) *subschema {
		switch k {
		case "tcp", "tls", "udp", "tls_passthrough":
			return stream
		case "http", "https":
			return http
		case "grpc", "grpcs":
			return grpc
		}
		return nil
	}
	s.subErr = func(k any) string {
		if a, ok := k.([]any); ok {
			if len(a) == 0 {
				return "unknown type: nil"
			}
			k = a[0]
		}
		return "unknown type: " + luaString(k)
	}
	return s
}

// luaString is Lua's tostring for decoded values.
func luaString(v any) string {
	switch x := v.(type) {
	case nil:
		return "nil"
	case string, float64, bool:
		return toString(x)
	}
	return "table"
}

// protocolsAtLeastOne is conditional_at_least_one_of with an if_match of
// "every protocol is one of set".
func protocolsAtLeastOne(protocolsF *field, set, fields []string, msg string) check {
	return func(m map[string]any, errs *ErrorNode) {
		v := m["protocols"]
		if v == nil || validateField(protocolsF, v) != nil {
			return
		}
		a, _ := asArray(v)
		for _, p := range a {
			if s, _ := p.(string); !slices.Contains(set, s) {
				return
			}
		}
		for _, f := range fields {
			if isNonEmpty(m[f]) {
				return
			}
		}
		errs.entityError(msg)
	}
}

// httpAtLeastOne is the http and grpc subschemas' check: with the secure
// protocol listed, one of secureFields; else with the plain one, one of
// plainFields.
func httpAtLeastOne(protocolsF *field, secure, plain string, secureFields, plainFields []string, expressions bool) check {
	if expressions {
		secureFields = append(slices.Clone(secureFields), "expression")
		plainFields = append(slices.Clone(plainFields), "expression")
	}
	return func(m map[string]any, errs *ErrorNode) {
		v := m["protocols"]
		if v == nil || validateField(protocolsF, v) != nil {
			return
		}
		a, _ := asArray(v)
		fields, name := secureFields, secure
		if !slices.Contains(a, any(secure)) {
			if !slices.Contains(a, any(plain)) {
				return
			}
			fields, name = plainFields, plain
		}
		for _, f := range fields {
			if isNonEmpty(m[f]) {
				return
			}
		}
		errs.entityError("must set one of " + quotedList(fields) + " when 'protocols' is '" + name + "'")
	}
}

// routeFieldsCheck is the custom check of routes.lua for the
// traditional_compatible and expressions flavors. The expression of a
// stream route is compiled by expression, when not nil (Kong compiles
// http routes' too; gong serves no http route).
func routeFieldsCheck(expression func(string) error) check {
	return func(m map[string]any, errs *ErrorNode) {
		if anyErr(errs, "id", "protocols", "snis", "sources", "destinations", "methods", "hosts", "paths", "headers", "expression", "regex_priority", "priority") {
			return
		}
		exprEmpty := m["expression"] == nil
		othersEmpty := true
		for _, f := range []string{"snis", "sources", "destinations", "methods", "hosts", "paths", "headers"} {
			if isNonEmpty(m[f]) {
				othersEmpty = false
			}
		}
		const prefix = "Router Expression failed validation: "
		const fields = "'methods', 'hosts', 'paths', 'headers', 'snis', 'sources' or 'destinations'"
		switch {
		case exprEmpty && othersEmpty:
		case !exprEmpty && !othersEmpty:
			errs.entityError(prefix + "cannot set 'expression' with " + fields + " simultaneously")
		case !exprEmpty && m["regex_priority"] != nil && m["regex_priority"] != 0.0:
			errs.entityError(prefix + "cannot set 'regex_priority' with 'expression' simultaneously")
		case !othersEmpty && m["priority"] != nil && m["priority"] != 0.0:
			errs.entityError(prefix + "cannot set 'priority' with " + fields + " simultaneously")
		case !exprEmpty && expression != nil && isStreamRoute(m["protocols"]):
			text, _ := m["expression"].(string)
			if err := expression(text); err != nil {
				errs.entityError(prefix + err.Error())
			}
		}
	}
}

// isStreamRoute is transform.lua is_stream_route: the first protocol is
// a stream one.
func isStreamRoute(protocols any) bool {
	a, _ := asArray(protocols)
	if len(a) == 0 {
		return false
	}
	p, _ := a[0].(string)
	return slices.Contains([]string{"tcp", "tls", "udp", "tls_passthrough"}, p)
}

func httpMethod(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return "invalid value: " + s
		}
	}
	return ""
}

// validateRouteHost is the element validator of typedefs.hosts.
func validateRouteHost(s string) string {
	if strings.Count(s, "*") > 1 {
		return "invalid wildcard: must have at most one wildcard"
	}
	if strings.Contains(s, "*") && !strings.HasPrefix(s, "*.") && !strings.HasSuffix(s, ".*") {
		return "invalid wildcard: must be placed at leftmost or rightmost label"
	}
	return validateHostWithOptionalPort(strings.ReplaceAll(s, "*", "abc"))
}

// validateRouterPath is typedefs.router_path, without the PCRE compile of
// regex paths and without the normalisation check of plain paths.
func validateRouterPath(s string) string {
	if !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "~/") {
		return "should start with: / (fixed path) or ~/ (regex path)"
	}
	if strings.Contains(s, "//") {
		return "must not have empty segments"
	}
	return percentError(s)
}
