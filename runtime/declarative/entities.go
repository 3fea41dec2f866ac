package declarative

import (
	"slices"
	"strconv"
	"strings"

	"github.com/gong-proxy/gong/runtime/schema"
)

// Entity types in Kong's load order (the topological sort of
// kong/db/schema/topological_sort.lua restricted to these types): ids,
// uniqueness and references are processed in this order.
var entityTypes = []string{
	"vaults", "ca_certificates", "certificates", "consumers", "services", "routes",
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
	"vaults": "prefix",
}

var protocols = []string{"grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp"}

const maxTimeout = 1<<31 - 2

// The helpers below shorten the entity definitions: each returns a field
// of runtime/schema with the attributes Kong's entity schemas give it.

func str(name string) *schema.Field { return schema.String(name) }

func integer(name string, lo, hi float64, def any) *schema.Field {
	f := schema.Integer(name).Between(lo, hi)
	if def != nil {
		f.Default(def)
	}
	return f
}

func boolean(name string, def any) *schema.Field {
	f := schema.Boolean(name)
	if def != nil {
		f.Default(def)
	}
	return f
}

func oneOf(f *schema.Field, vs ...string) *schema.Field { return f.OneOf(strs(vs...)...) }

func idField() *schema.Field { return schema.String("id").UUID().Auto() }

func timestamps(newField func(string) *schema.Field) []*schema.Field {
	return []*schema.Field{
		newField("created_at").Timestamp().Auto(),
		newField("updated_at").Timestamp().Auto(),
	}
}

// entityFields starts an entity's fields: id and timestamps, then fields.
func entityFields(stamp func(string) *schema.Field, fields ...*schema.Field) []*schema.Field {
	return append(append([]*schema.Field{idField()}, timestamps(stamp)...), fields...)
}

func utf8Name(name string) *schema.Field { return str(name).Custom(schema.ValidateUTF8Name) }

func tags() *schema.Field { return schema.Set("tags", str("").Custom(schema.ValidateTag)) }

func pathField(name string) *schema.Field {
	return str(name).StartsWith("/").MatchNone("//", "must not have empty segments").Custom(schema.ValidatePath)
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
	opts  Options
	now   int64 // Unix seconds, for certificate expiry
	cache map[string]*schema.Field
}

// entity returns the record schema of an entity type; nested records
// (written inside their parent) get foreign keys that must be null, as
// Kong's copy_record makes them.
func (b *builder) entity(typ string, nested bool) *schema.Field {
	key := typ
	if nested {
		key += "/nested"
	}
	if s := b.cache[key]; s != nil {
		return s
	}
	s := b.base(typ)
	if nested {
		for _, fk := range foreignKeys[typ] {
			s.Replace(str(fk.field).MustBeNull())
		}
	}
	s.AddFields(str("_comment"), schema.Array("_ignore", schema.Any("")))
	for _, c := range children(typ) {
		s.AddFields(schema.Array(c.ref, b.entity(c.ref, true)))
	}
	b.cache[key] = s
	return s
}

func (b *builder) base(typ string) *schema.Field {
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
	case "vaults":
		return b.vaults()
	}
	panic("declarative: unknown entity type " + typ)
}

// reference is a top-level foreign field: the endpoint key or id of the
// referenced entity, as a string.
func reference(name string) *schema.Field { return str(name) }

func notOneOf(vs ...string) func(any) bool {
	return func(v any) bool { s, _ := v.(string); return !slices.Contains(vs, s) }
}

func isOneOf(vs ...string) func(any) bool {
	return func(v any) bool { s, _ := v.(string); return slices.Contains(vs, s) }
}

func mustBeNull(v any) any {
	if v != nil {
		return "value must be null"
	}
	return nil
}

// conditional is Kong's conditional entity check with a Go if_match:
// when the if-field's value passes the field's own validators (null
// passes unless the field is required) and ifMatch, the then-field must be
// present (required) or pass then, which returns its error or nil.
type conditional struct {
	ifField   *schema.Field
	ifMatch   func(v any) bool
	thenField string
	required  bool
	then      func(v any) any
	thenErr   string
}

func (c conditional) check() schema.Check {
	return func(m map[string]any, errs schema.Errors) {
		v := m[c.ifField.Name()]
		if c.ifField.Validate(v) != nil || (v != nil && !c.ifMatch(v)) {
			return
		}
		var e any
		if c.required {
			if m[c.thenField] == nil {
				e = "required field missing"
			}
		} else {
			e = c.then(m[c.thenField])
		}
		if e == nil {
			return
		}
		errs[c.thenField] = e
		if c.thenErr != "" {
			schema.AddEntityError(errs, c.thenErr)
			return
		}
		schema.AddEntityError(errs, "failed conditional validation given value of field '"+c.ifField.Name()+"'")
	}
}

// atLeastOneOf is the at_least_one_of entity check.
func atLeastOneOf(names ...string) schema.Check {
	return func(m map[string]any, errs schema.Errors) {
		for _, n := range names {
			if schema.IsNonEmpty(m[n]) {
				return
			}
		}
		schema.AddEntityError(errs, "at least one of these fields must be non-empty: "+schema.QuotedList(names))
	}
}

func (b *builder) services() *schema.Field {
	protocol := oneOf(str("protocol").Default("http"), protocols...).Required()
	timeout := func(n string) *schema.Field { return integer(n, 1, maxTimeout, 60000.0) }
	s := schema.Record("", entityFields(schema.Integer,
		utf8Name("name"),
		integer("retries", 0, 32767, 5.0),
		protocol,
		str("host").Custom(schema.ValidateHost).Required(),
		integer("port", 0, 65535, 80.0).Required(),
		pathField("path"),
		timeout("connect_timeout"),
		timeout("write_timeout"),
		timeout("read_timeout"),
		tags(),
		reference("client_certificate"),
		boolean("tls_verify", nil),
		integer("tls_verify_depth", 0, 64, nil),
		schema.Array("ca_certificates", str("").UUID()),
		boolean("enabled", true).Required(),
		boolean("proxy_protocol", nil),
	)...)
	s.Checks(
		conditional{ifField: protocol, ifMatch: isOneOf("tcp", "tls", "udp", "grpc", "grpcs"), thenField: "path", then: mustBeNull}.check(),
		// gong's extension: a PROXY v2 header to TCP upstreams.
		conditional{ifField: protocol, ifMatch: notOneOf("tcp", "tls", "tls_passthrough"), thenField: "proxy_protocol", then: mustBeNull}.check(),
	)
	for _, f := range []string{"client_certificate", "tls_verify", "tls_verify_depth", "ca_certificates"} {
		s.Checks(conditional{ifField: protocol, ifMatch: notOneOf("https", "tls"), thenField: f, then: mustBeNull}.check())
	}
	return s.Shorthand(serviceURL)
}

// serviceURL expands the write-only `url` field as services.lua does,
// parsing like LuaSocket's url.parse.
func serviceURL(m map[string]any) schema.Errors {
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
		return schema.Errors{"url": "expected a string"}
	}
	if raw == "" {
		return schema.Errors{"url": "length must be at least 1"}
	}
	delete(m, "url")
	u := parseSocketURL(raw)
	var port any
	if u.port != "" && strings.Trim(u.port, "0123456789") == "" {
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

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

type socketURL struct {
	scheme, host, port, path string
	hasPort                  bool
}

// parseSocketURL follows LuaSocket's url.parse closely enough for the
// fields services use: scheme, authority (host, port) and path.
func parseSocketURL(s string) socketURL {
	var u socketURL
	if i := strings.IndexByte(s, ':'); i > 0 && strings.IndexByte(alnum, s[0]) >= 0 && strings.Trim(s[:i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") == "" {
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

func endpointRecord(name string) *schema.Field {
	rec := schema.Record("",
		str("ip").Custom(schema.ValidateIPOrCIDR),
		integer("port", 0, 65535, nil),
	).Checks(atLeastOneOf("ip", "port"))
	return schema.Set(name, rec)
}

// downstreamTLSFields are gong's route extensions for TLS termination
// (client certificates and ALPN); only routes that terminate TLS use them.
var downstreamTLSFields = []string{"client_ca_certificates", "client_verify_depth", "alpn_protocols"}

// streamOnly redefines an http field that stream routes must leave null.
func streamOnly(f *schema.Field) *schema.Field {
	return f.MustBeNull().Err("cannot set '" + f.Name() + "' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp'")
}

func headersField(name string, keys *schema.Field) *schema.Field {
	return schema.Map(name, keys, schema.Array("", str("")))
}

func (b *builder) routes() *schema.Field {
	flavor := b.opts.RouterFlavor
	if flavor == "" {
		flavor = "traditional_compatible"
	}
	sniEl := str("").Custom(schema.ValidateWildcardHost)
	if flavor == "traditional" {
		sniEl = str("").Custom(schema.ValidateSNI)
	}
	protocolsF := schema.Set("protocols", oneOf(str(""), protocols...)).Required().LenMin(1).
		Default(strs("http", "https")).
		MutuallyExclusiveSubsets(strs("http", "https"), strs("tcp", "tls", "udp"), strs("tls_passthrough"), strs("grpc", "grpcs"))
	hostHeader := str("").Custom(func(s string) string {
		if msg := schema.ValidateHeaderName(s); msg != "" {
			return msg
		}
		if strings.EqualFold(s, "host") {
			return "cannot contain 'host' header, which must be specified in the 'hosts' attribute"
		}
		return ""
	})
	s := schema.Record("", entityFields(schema.Integer,
		utf8Name("name"),
		protocolsF,
		schema.Integer("https_redirect_status_code").OneOf(nums(426, 301, 302, 307, 308)...).Default(426.0).Required(),
		boolean("strip_path", true).Required(),
		boolean("preserve_host", false).Required(),
		boolean("request_buffering", true).Required(),
		boolean("response_buffering", true).Required(),
		tags(),
		reference("service"),
		schema.Set("snis", sniEl),
		endpointRecord("sources"),
		endpointRecord("destinations"),
		schema.Set("methods", str("").Custom(httpMethod)),
		schema.Array("hosts", str("").Custom(validateRouteHost)),
		schema.Array("paths", str("").Custom(validateRouterPath)),
		headersField("headers", hostHeader),
		schema.Integer("regex_priority").Default(0.0),
		oneOf(str("path_handling").Default("v0"), "v0", "v1"),
		schema.Set("client_ca_certificates", str("").UUID()),
		integer("client_verify_depth", 0, 64, nil),
		schema.Set("alpn_protocols", str("").LenMax(255)),
	)...)
	expressions := flavor == "expressions"
	if expressions {
		s.AddFields(
			str("expression"),
			integer("priority", 0, 1<<46-1, 0.0).Required())
	}
	s.Checks(conditional{
		ifField: protocolsF,
		ifMatch: func(v any) bool {
			a, _ := schema.AsList(v)
			for _, p := range a {
				if s, _ := p.(string); slices.Contains([]string{"grpcs", "https", "tls", "tls_passthrough"}, s) {
					return false
				}
			}
			return true
		},
		thenField: "snis",
		then: func(v any) any {
			if a, ok := schema.AsList(v); ok && len(a) > 0 {
				return "length must be 0"
			}
			return nil
		},
		thenErr: "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'",
	}.check())
	for _, f := range downstreamTLSFields {
		s.Checks(conditional{
			ifField:   protocolsF,
			ifMatch:   func(v any) bool { a, _ := schema.AsList(v); return !slices.Contains(a, any("tls")) },
			thenField: f,
			then:      mustBeNull,
			thenErr:   "'" + f + "' can only be set when 'protocols' includes 'tls'",
		}.check())
	}
	if flavor != "traditional" {
		s.Checks(routeFieldsCheck(b.opts.RouteExpression))
	}
	streamFields := []string{"sources", "destinations", "snis"}
	if expressions {
		streamFields = append(streamFields, "expression")
	}
	passthroughFields := []string{"snis"}
	if expressions {
		passthroughFields = append(passthroughFields, "expression")
	}
	stream := schema.NewSubschema(
		[]*schema.Field{
			streamOnly(schema.Set("methods", str(""))),
			streamOnly(schema.Array("hosts", str(""))),
			streamOnly(schema.Array("paths", str(""))),
			streamOnly(schema.Map("headers", nil, nil)),
		},
		protocolsAtLeastOne(protocolsF, []string{"tcp", "tls", "udp"}, streamFields,
			"must set one of "+schema.QuotedList(streamFields)+" when 'protocols' is 'tcp', 'tls' or 'udp'"),
		protocolsAtLeastOne(protocolsF, []string{"tls_passthrough"}, passthroughFields,
			"must set snis when 'protocols' is 'tls_passthrough'"),
	)
	var httpFields, grpcFields []*schema.Field
	if !expressions {
		for _, f := range []string{"sources", "destinations"} {
			httpFields = append(httpFields, schema.Set(f, nil).MustBeNull().
				Err("cannot set '"+f+"' when 'protocols' is 'http' or 'https'"))
			grpcFields = append(grpcFields, schema.Set(f, nil).MustBeNull().
				Err("cannot set '"+f+"' when 'protocols' is 'grpc' or 'grpcs'"))
		}
	}
	http := schema.NewSubschema(httpFields, httpAtLeastOne(protocolsF, "https", "http",
		[]string{"methods", "hosts", "headers", "paths", "snis"}, []string{"methods", "hosts", "headers", "paths"}, expressions))
	grpcFields = append(grpcFields,
		schema.Boolean("strip_path").Default(false).MustNotBe(true).Required().
			Err("cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'"),
		schema.Set("methods", str("")).MustBeNull().
			Err("cannot set 'methods' when 'protocols' is 'grpc' or 'grpcs'"))
	grpc := schema.NewSubschema(grpcFields, httpAtLeastOne(protocolsF, "grpcs", "grpc",
		[]string{"hosts", "headers", "paths", "snis"}, []string{"hosts", "headers", "paths"}, expressions))
	return s.Subschemas("protocols", func(k any) *schema.Subschema {
		switch k {
		case "tcp", "tls", "udp", "tls_passthrough":
			return stream
		case "http", "https":
			return http
		case "grpc", "grpcs":
			return grpc
		}
		return nil
	}, func(k any) string {
		if a, ok := k.([]any); ok {
			if len(a) == 0 {
				return "unknown type: nil"
			}
			k = a[0]
		}
		return "unknown type: " + luaString(k)
	})
}

// HostnameType classifies a host as kong/tools/ip.lua hostname_type
// does: "ipv4", "ipv6" or "name".
func HostnameType(s string) string { return schema.HostnameType(s) }

// luaString is Lua's tostring for decoded values, where nil is Lua's.
func luaString(v any) string {
	if v == nil {
		return "nil"
	}
	return schema.Tostring(v)
}

// protocolsAtLeastOne is conditional_at_least_one_of with an if_match of
// "every protocol is one of set".
func protocolsAtLeastOne(protocolsF *schema.Field, set, fields []string, msg string) schema.Check {
	return func(m map[string]any, errs schema.Errors) {
		v := m["protocols"]
		if v == nil || protocolsF.Validate(v) != nil {
			return
		}
		a, _ := schema.AsList(v)
		for _, p := range a {
			if s, _ := p.(string); !slices.Contains(set, s) {
				return
			}
		}
		for _, f := range fields {
			if schema.IsNonEmpty(m[f]) {
				return
			}
		}
		schema.AddEntityError(errs, msg)
	}
}

// httpAtLeastOne is the http and grpc subschemas' check: with the secure
// protocol listed, one of secureFields; else with the plain one, one of
// plainFields.
func httpAtLeastOne(protocolsF *schema.Field, secure, plain string, secureFields, plainFields []string, expressions bool) schema.Check {
	if expressions {
		secureFields = append(slices.Clone(secureFields), "expression")
		plainFields = append(slices.Clone(plainFields), "expression")
	}
	return func(m map[string]any, errs schema.Errors) {
		v := m["protocols"]
		if v == nil || protocolsF.Validate(v) != nil {
			return
		}
		a, _ := schema.AsList(v)
		fields, name := secureFields, secure
		if !slices.Contains(a, any(secure)) {
			if !slices.Contains(a, any(plain)) {
				return
			}
			fields, name = plainFields, plain
		}
		for _, f := range fields {
			if schema.IsNonEmpty(m[f]) {
				return
			}
		}
		schema.AddEntityError(errs, "must set one of "+schema.QuotedList(fields)+" when 'protocols' is '"+name+"'")
	}
}

// routeFieldsCheck is the custom check of routes.lua for the
// traditional_compatible and expressions flavors. The expression of a
// stream route is compiled by expression, when not nil (Kong compiles
// http routes' too; gong serves no http route).
func routeFieldsCheck(expression func(string) error) schema.Check {
	return func(m map[string]any, errs schema.Errors) {
		if schema.HasError(errs, "id", "protocols", "snis", "sources", "destinations", "methods", "hosts", "paths", "headers", "expression", "regex_priority", "priority") {
			return
		}
		exprEmpty := m["expression"] == nil
		othersEmpty := true
		for _, f := range []string{"snis", "sources", "destinations", "methods", "hosts", "paths", "headers"} {
			if schema.IsNonEmpty(m[f]) {
				othersEmpty = false
			}
		}
		const prefix = "Router Expression failed validation: "
		const fields = "'methods', 'hosts', 'paths', 'headers', 'snis', 'sources' or 'destinations'"
		switch {
		case exprEmpty && othersEmpty:
		case !exprEmpty && !othersEmpty:
			schema.AddEntityError(errs, prefix+"cannot set 'expression' with "+fields+" simultaneously")
		case !exprEmpty && m["regex_priority"] != nil && m["regex_priority"] != 0.0:
			schema.AddEntityError(errs, prefix+"cannot set 'regex_priority' with 'expression' simultaneously")
		case !othersEmpty && m["priority"] != nil && m["priority"] != 0.0:
			schema.AddEntityError(errs, prefix+"cannot set 'priority' with "+fields+" simultaneously")
		case !exprEmpty && expression != nil && isStreamRoute(m["protocols"]):
			text, _ := m["expression"].(string)
			if err := expression(text); err != nil {
				schema.AddEntityError(errs, prefix+err.Error())
			}
		}
	}
}

// isStreamRoute is transform.lua is_stream_route: the first protocol is
// a stream one.
func isStreamRoute(protocols any) bool {
	a, _ := schema.AsList(protocols)
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
	return schema.ValidateHostWithOptionalPort(strings.ReplaceAll(s, "*", "abc"))
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
	return schema.PercentError(s)
}
