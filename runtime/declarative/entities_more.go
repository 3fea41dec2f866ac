package declarative

import (
	"slices"
	"strconv"
	"strings"
)

func validateUpstreamName(name string) string {
	shown := "Invalid name ('" + name + "')"
	if ok, _ := validateUTF8(name); !ok {
		shown = "Invalid name"
	}
	a, err := normalizeIP(name)
	switch {
	case err != "":
		return shown + "; must be a valid hostname"
	case a.typ != "name":
		return shown + "; no ip addresses allowed"
	case a.port >= 0:
		return shown + "; no port allowed"
	}
	return ""
}

func validateTarget(t string) string {
	if _, err := normalizeIP(t); err != "" {
		if ok, _ := validateUTF8(t); !ok {
			return "Invalid target; not a valid hostname or ip address"
		}
		return "Invalid target ('" + t + "'); not a valid hostname or ip address"
	}
	return ""
}

// normalizeTarget formats a target as kong/db/dao/targets.lua does:
// default port 8000, IPv4 without leading zeros, IPv6 expanded in brackets.
func normalizeTarget(t string) string {
	a, err := normalizeIP(t)
	if err != "" {
		return t
	}
	port := a.port
	if port < 0 {
		port = 8000
	}
	host := a.host
	if a.typ == "ipv6" {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

var hashOnValues = []string{"none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"}

func record(name string, def any, fields ...*field) *field {
	return &field{name: name, kind: tRecord, def: def, record: &schema{fields: fields}}
}

func seconds(name string, def float64) *field {
	return &field{name: name, kind: tNumber, between: &[2]float64{0, 65535}, def: def}
}

func byteInt(name string) *field { return integer(name, 0, 255, 0.0) }

func statuses(def ...float64) *field {
	f := array("http_statuses", integer("", 100, 999, nil))
	f.def = nums(def...)
	return f
}

// healthchecksField builds upstreams.lua's healthchecks record; each level
// carries its defaults so a partial record is completed.
func healthchecksField() *field {
	checkType := oneOf(withDefault(str("type"), "http"), "tcp", "http", "https", "grpc", "grpcs")
	// gong adds udp checks, which only active checks can run.
	activeType := oneOf(withDefault(str("type"), "http"), "tcp", "udp", "http", "https", "grpc", "grpcs")
	activeHealthy := record("healthy", nil, seconds("interval", 0), statuses(200, 302), byteInt("successes"))
	activeUnhealthy := record("unhealthy", nil, seconds("interval", 0),
		statuses(429, 404, 500, 501, 502, 503, 504, 505),
		byteInt("tcp_failures"), byteInt("timeouts"), byteInt("http_failures"))
	active := record("active", nil,
		activeType,
		seconds("timeout", 1),
		integer("concurrency", 1, 1<<31, 10.0),
		withDefault(pathField("http_path"), "/"),
		str("https_sni", validateSNI),
		required(boolean("https_verify_certificate", true)),
		headersField("headers", str("", validateHeaderName)),
		str("send"), str("expect"),
		activeHealthy, activeUnhealthy)
	passiveType := *checkType
	passive := record("passive", nil,
		&passiveType,
		record("healthy", nil, statuses(200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
			300, 301, 302, 303, 304, 305, 306, 307, 308), byteInt("successes")),
		record("unhealthy", nil, statuses(429, 500, 503),
			byteInt("tcp_failures"), byteInt("timeouts"), byteInt("http_failures")))
	hc := record("healthchecks", nil, active, passive,
		&field{name: "threshold", kind: tNumber, between: &[2]float64{0, 100}, def: 0.0})
	fillDefaults(hc)
	return hc
}

// fillDefaults gives each record field the default made of its members'
// defaults, as gen_fields in upstreams.lua does.
func fillDefaults(f *field) any {
	if f.kind != tRecord {
		return f.def
	}
	d := map[string]any{}
	for _, c := range f.record.fields {
		if v := fillDefaults(c); v != nil {
			d[c.name] = v
		} else if !c.required {
			d[c.name] = nil
		}
	}
	f.def = d
	return d
}

func (b *builder) upstreams() *schema {
	hashOn := oneOf(withDefault(str("hash_on"), "none"), hashOnValues...)
	hashFallback := oneOf(withDefault(str("hash_fallback"), "none"), hashOnValues...)
	simple := func(n string) *field { return str(n) }
	s := &schema{fields: append(append([]*field{idField()}, timestamps(tInteger)...),
		required(str("name", validateUpstreamName)),
		oneOf(withDefault(str("algorithm"), "round-robin"), "consistent-hashing", "least-connections", "round-robin", "latency"),
		hashOn, hashFallback,
		str("hash_on_header", validateHeaderName),
		str("hash_fallback_header", validateHeaderName),
		str("hash_on_cookie", validateCookieName),
		withDefault(pathField("hash_on_cookie_path"), "/"),
		simple("hash_on_query_arg"), simple("hash_fallback_query_arg"),
		simple("hash_on_uri_capture"), simple("hash_fallback_uri_capture"),
		integer("slots", 10, 1<<16, 10000.0),
		healthchecksField(),
		tags(),
		str("host_header", validateHostWithOptionalPort),
		reference("client_certificate"),
		boolean("use_srv_name", false),
		seconds("udp_affinity_ttl", 0),
	)}
	is := func(v string) func(any) bool { return isOneOf(v) }
	req := func(ifF *field, v, then string) check {
		return conditional{ifField: ifF, ifMatch: is(v), thenField: then, required: true}.check()
	}
	fallbackIn := func(v string, allowed ...string) check {
		return conditional{ifField: hashOn, ifMatch: is(v), thenField: "hash_fallback", then: func(x any) *ErrorNode {
			if s, ok := x.(string); ok && !slices.Contains(allowed, s) {
				return leaf("expected one of: " + strings.Join(allowed, ", "))
			}
			return nil
		}}.check()
	}
	s.checks = []check{
		req(hashOn, "header", "hash_on_header"),
		req(hashFallback, "header", "hash_fallback_header"),
		req(hashOn, "cookie", "hash_on_cookie"),
		req(hashFallback, "cookie", "hash_on_cookie"),
		fallbackIn("none", "none"),
		fallbackIn("cookie", "none"),
		fallbackIn("consumer", "none", "ip", "header", "cookie", "path", "query_arg", "uri_capture"),
		fallbackIn("ip", "none", "consumer", "header", "cookie", "path", "query_arg", "uri_capture"),
		fallbackIn("path", "none", "consumer", "header", "cookie", "query_arg", "ip", "uri_capture"),
		distinct("hash_on_header", "hash_fallback_header"),
		req(hashOn, "query_arg", "hash_on_query_arg"),
		req(hashFallback, "query_arg", "hash_fallback_query_arg"),
		distinct("hash_on_query_arg", "hash_fallback_query_arg"),
		req(hashOn, "uri_capture", "hash_on_uri_capture"),
		req(hashFallback, "uri_capture", "hash_fallback_uri_capture"),
		distinct("hash_on_uri_capture", "hash_fallback_uri_capture"),
		udpCheckSends,
	}
	s.shorthand = upstreamShorthands
	return s
}

// udpCheckSends requires a payload for udp active checks (gong's
// extension): a UDP server answers only what it is sent. It reads as
// Kong's conditional check on a nested field.
func udpCheckSends(m map[string]any, errs *ErrorNode) {
	hc, _ := m["healthchecks"].(map[string]any)
	active, _ := hc["active"].(map[string]any)
	if active == nil || active["type"] != "udp" || isNonEmpty(active["send"]) || errs.has("healthchecks") {
		return
	}
	errs.field("healthchecks").field("active").setMsg("send", "required field missing")
	errs.entityError("failed conditional validation given value of field 'healthchecks.active.type'")
}

// distinct is Kong's distinct entity check; it does not run when a field
// is missing.
func distinct(a, b string) check {
	return func(m map[string]any, errs *ErrorNode) {
		va, oka := m[a]
		vb, okb := m[b]
		if !oka || !okb || !isNonEmpty(va) || !isNonEmpty(vb) {
			return
		}
		if sa, ok := va.(string); ok && va == vb && sa != "" {
			errs.entityError("values of these fields must be distinct: " + quotedList([]string{a, b}))
		}
	}
}

// upstreamShorthands applies the algorithm and hash_on shorthands of
// upstreams.lua, in that order.
func upstreamShorthands(m map[string]any) *ErrorNode {
	for _, k := range []string{"algorithm", "hash_on"} {
		if v, ok := m[k]; ok && v != nil {
			if _, isStr := v.(string); !isStr {
				return &ErrorNode{Fields: map[string]*ErrorNode{k: leaf("expected a string")}}
			}
		}
	}
	if v, ok := m["algorithm"]; ok {
		if v == "least-connections" || v == "latency" {
			m["hash_on"] = nil
		}
	}
	if v, ok := m["hash_on"]; ok {
		switch v {
		case nil:
			m["hash_on"] = "none"
		case "none":
			m["algorithm"] = "round-robin"
		default:
			m["algorithm"] = "consistent-hashing"
		}
	}
	return nil
}

func (b *builder) targets() *schema {
	return &schema{fields: append(append([]*field{idField()}, timestamps(tNumber)...),
		required(reference("upstream")),
		required(str("target", validateTarget)),
		integer("weight", 0, 65535, 100.0),
		tags(),
	)}
}

func (b *builder) snis() *schema {
	return &schema{fields: append(append([]*field{idField()}, timestamps(tInteger)...),
		required(str("name", validateWildcardHost)),
		tags(),
		required(reference("certificate")),
	)}
}

func (b *builder) consumers() *schema {
	s := &schema{fields: append(append([]*field{idField()}, timestamps(tInteger)...),
		str("username"),
		str("custom_id"),
		tags(),
	)}
	s.checks = []check{atLeastOneOf("custom_id", "username")}
	return s
}

func (b *builder) plugins() *schema {
	s := &schema{fields: append(append([]*field{idField()}, timestamps(tInteger)...),
		required(str("name")),
		utf8Name("instance_name"),
		reference("route"),
		reference("service"),
		reference("consumer"),
		&field{name: "config", kind: tAny},
		// protocols defaults per plugin (Options.PluginProtocols): see
		// pluginProtocols.
		required(&field{name: "protocols", kind: tSet, elements: oneOf(str(""), protocols...)}),
		required(boolean("enabled", true)),
		tags(),
	)}
	s.subKey = "name"
	enabled := map[string]bool{}
	for _, p := range b.opts.Plugins {
		enabled[p] = true
	}
	plugin := &subschema{}
	s.subschema = func(k any) *subschema {
		name, ok := k.(string)
		if !ok || (b.opts.Plugins != nil && !enabled[name]) {
			return nil
		}
		return plugin
	}
	s.subErr = func(k any) string {
		return "plugin '" + luaString(k) + "' not enabled; add it to the 'plugins' configuration property"
	}
	s.checks = []check{b.pluginConfig}
	s.shorthand = b.pluginDefaults
	return s
}

// pluginDefaults runs before a plugin entity's fields are processed: it
// gives an entity without protocols its plugin's default
// (Options.PluginProtocols), else Kong's generic one, and replaces a valid
// config by the one Options.PluginConfig fills with defaults. Errors are
// left to pluginConfig, which reports them with the entity's others.
func (b *builder) pluginDefaults(m map[string]any) *ErrorNode {
	name, _ := m["name"].(string)
	if _, given := m["protocols"]; !given {
		def := []string{"grpc", "grpcs", "http", "https"}
		if b.opts.PluginProtocols != nil {
			if p := b.opts.PluginProtocols(name); p != nil {
				def = p
			}
		}
		m["protocols"] = strs(def...)
	}
	v := m["config"]
	if v == nil {
		v = map[string]any{}
	}
	if conf, ok := asRecord(v); ok {
		if b.opts.PluginConfig != nil {
			if filled, ferrs := b.opts.PluginConfig(name, conf); len(ferrs) == 0 && filled != nil {
				conf = filled
			}
		}
		m["config"] = conf
	}
	return nil
}

// pluginConfig reports the errors of the plugin's config record, through
// the Options.PluginConfig hook when there is one; pluginDefaults put the
// filled config in the record.
func (b *builder) pluginConfig(m map[string]any, errs *ErrorNode) {
	b.pluginProtocols(m, errs)
	v := m["config"]
	if v == nil {
		v = map[string]any{}
	}
	conf, ok := asRecord(v)
	if !ok {
		errs.setMsg("config", "expected a record")
		return
	}
	if b.opts.PluginConfig == nil {
		return
	}
	name, _ := m["name"].(string)
	if _, ferrs := b.opts.PluginConfig(name, conf); len(ferrs) > 0 {
		errs.set("config", errorTree(ferrs))
	}
}

// pluginProtocols refuses a protocol the plugin's own schema does not
// allow (Options.PluginAllowedProtocols), with the message Kong's set
// validation gives at that element.
func (b *builder) pluginProtocols(m map[string]any, errs *ErrorNode) {
	if b.opts.PluginAllowedProtocols == nil || errs.has("protocols") {
		return
	}
	name, _ := m["name"].(string)
	allowed := b.opts.PluginAllowedProtocols(name)
	list, _ := m["protocols"].([]any)
	if allowed == nil {
		return
	}
	n := &ErrorNode{}
	for i, p := range list {
		if s, _ := p.(string); !slices.Contains(allowed, s) {
			n.entry(i + 1).Message = "expected one of: " + strings.Join(allowed, ", ")
		}
	}
	errs.set("protocols", n)
}

// errorTree converts a Lua-style nested error table into an ErrorNode;
// digit keys become entries.
func errorTree(v any) *ErrorNode {
	switch x := v.(type) {
	case string:
		return leaf(x)
	case []any:
		n := &ErrorNode{}
		for i, e := range x {
			n.Entries = setEntry(n.Entries, i+1, errorTree(e))
		}
		return n
	case []string:
		n := &ErrorNode{}
		for i, e := range x {
			n.Entries = setEntry(n.Entries, i+1, leaf(e))
		}
		return n
	case map[string]any:
		n := &ErrorNode{}
		for k, e := range x {
			if i, err := strconv.Atoi(k); err == nil && i > 0 && isDigits(k) {
				n.Entries = setEntry(n.Entries, i, errorTree(e))
			} else {
				n.set(k, errorTree(e))
			}
		}
		return n
	}
	return leaf(luaString(v))
}
