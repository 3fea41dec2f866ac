package declarative

import (
	"slices"
	"strconv"
	"strings"

	"github.com/gong-proxy/gong/runtime/schema"
)

func validateUpstreamName(name string) string {
	shown := "Invalid name ('" + name + "')"
	if ok, _ := schema.ValidUTF8(name); !ok {
		shown = "Invalid name"
	}
	a, err := schema.NormalizeIP(name)
	switch {
	case err != "":
		return shown + "; must be a valid hostname"
	case a.Type != "name":
		return shown + "; no ip addresses allowed"
	case a.Port >= 0:
		return shown + "; no port allowed"
	}
	return ""
}

func validateTarget(t string) string {
	if _, err := schema.NormalizeIP(t); err != "" {
		if ok, _ := schema.ValidUTF8(t); !ok {
			return "Invalid target; not a valid hostname or ip address"
		}
		return "Invalid target ('" + t + "'); not a valid hostname or ip address"
	}
	return ""
}

// normalizeTarget formats a target as kong/db/dao/targets.lua does:
// default port 8000, IPv4 without leading zeros, IPv6 expanded in brackets.
func normalizeTarget(t string) string {
	a, err := schema.NormalizeIP(t)
	if err != "" {
		return t
	}
	port := a.Port
	if port < 0 {
		port = 8000
	}
	host := a.Host
	if a.Type == "ipv6" {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

var hashOnValues = []string{"none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"}

func seconds(name string, def float64) *schema.Field {
	return schema.Number(name).Between(0, 65535).Default(def)
}

func byteInt(name string) *schema.Field { return integer(name, 0, 255, 0.0) }

func statuses(def ...float64) *schema.Field {
	return schema.Array("http_statuses", integer("", 100, 999, nil)).Default(nums(def...))
}

// healthchecksField builds upstreams.lua's healthchecks record; each level
// carries its defaults so a partial record is completed.
func healthchecksField() *schema.Field {
	checkType := oneOf(str("type").Default("http"), "tcp", "http", "https", "grpc", "grpcs")
	// gong adds udp checks, which only active checks can run.
	activeType := oneOf(str("type").Default("http"), "tcp", "udp", "http", "https", "grpc", "grpcs")
	activeHealthy := schema.Record("healthy", seconds("interval", 0), statuses(200, 302), byteInt("successes"))
	activeUnhealthy := schema.Record("unhealthy", seconds("interval", 0),
		statuses(429, 404, 500, 501, 502, 503, 504, 505),
		byteInt("tcp_failures"), byteInt("timeouts"), byteInt("http_failures"))
	active := schema.Record("active",
		activeType,
		seconds("timeout", 1),
		integer("concurrency", 1, 1<<31, 10.0),
		pathField("http_path").Default("/"),
		str("https_sni").Custom(schema.ValidateSNI),
		boolean("https_verify_certificate", true).Required(),
		headersField("headers", str("").Custom(schema.ValidateHeaderName)),
		str("send"), str("expect"),
		activeHealthy, activeUnhealthy)
	passive := schema.Record("passive",
		checkType,
		schema.Record("healthy", statuses(200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
			300, 301, 302, 303, 304, 305, 306, 307, 308), byteInt("successes")),
		schema.Record("unhealthy", statuses(429, 500, 503),
			byteInt("tcp_failures"), byteInt("timeouts"), byteInt("http_failures")))
	hc := schema.Record("healthchecks", active, passive,
		schema.Number("threshold").Between(0, 100).Default(0.0))
	fillDefaults(hc)
	return hc
}

// fillDefaults gives each record field the default made of its members'
// defaults, as gen_fields in upstreams.lua does.
func fillDefaults(f *schema.Field) any {
	if f.Type() != "record" {
		return f.DefaultValue()
	}
	d := map[string]any{}
	for _, c := range f.Fields() {
		if v := fillDefaults(c); v != nil {
			d[c.Name()] = v
		} else if !c.IsRequired() {
			d[c.Name()] = nil
		}
	}
	f.Default(d)
	return d
}

func (b *builder) upstreams() *schema.Field {
	hashOn := oneOf(str("hash_on").Default("none"), hashOnValues...)
	hashFallback := oneOf(str("hash_fallback").Default("none"), hashOnValues...)
	s := schema.Record("", entityFields(schema.Integer,
		str("name").Custom(validateUpstreamName).Required(),
		oneOf(str("algorithm").Default("round-robin"), "consistent-hashing", "least-connections", "round-robin", "latency"),
		hashOn, hashFallback,
		str("hash_on_header").Custom(schema.ValidateHeaderName),
		str("hash_fallback_header").Custom(schema.ValidateHeaderName),
		str("hash_on_cookie").Custom(schema.ValidateCookieName),
		pathField("hash_on_cookie_path").Default("/"),
		str("hash_on_query_arg"), str("hash_fallback_query_arg"),
		str("hash_on_uri_capture"), str("hash_fallback_uri_capture"),
		integer("slots", 10, 1<<16, 10000.0),
		healthchecksField(),
		tags(),
		str("host_header").Custom(schema.ValidateHostWithOptionalPort),
		reference("client_certificate"),
		boolean("use_srv_name", false),
		seconds("udp_affinity_ttl", 0),
	)...)
	req := func(ifF *schema.Field, v, then string) schema.Check {
		return conditional{ifField: ifF, ifMatch: isOneOf(v), thenField: then, required: true}.check()
	}
	fallbackIn := func(v string, allowed ...string) schema.Check {
		return conditional{ifField: hashOn, ifMatch: isOneOf(v), thenField: "hash_fallback", then: func(x any) any {
			if s, ok := x.(string); ok && !slices.Contains(allowed, s) {
				return "expected one of: " + strings.Join(allowed, ", ")
			}
			return nil
		}}.check()
	}
	s.Checks(
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
	)
	return s.Shorthand(upstreamShorthands)
}

// udpCheckSends requires a payload for udp active checks (gong's
// extension): a UDP server answers only what it is sent. It reads as
// Kong's conditional check on a nested field.
func udpCheckSends(m map[string]any, errs schema.Errors) {
	hc, _ := m["healthchecks"].(map[string]any)
	active, _ := hc["active"].(map[string]any)
	if active == nil || active["type"] != "udp" || schema.IsNonEmpty(active["send"]) || schema.HasError(errs, "healthchecks") {
		return
	}
	schema.SetError(errs, "healthchecks.active.send", "required field missing")
	schema.AddEntityError(errs, "failed conditional validation given value of field 'healthchecks.active.type'")
}

// distinct is Kong's distinct entity check; it does not run when a field
// is missing.
func distinct(a, b string) schema.Check {
	return func(m map[string]any, errs schema.Errors) {
		va, oka := m[a]
		vb, okb := m[b]
		if !oka || !okb || !schema.IsNonEmpty(va) || !schema.IsNonEmpty(vb) {
			return
		}
		if sa, ok := va.(string); ok && va == vb && sa != "" {
			schema.AddEntityError(errs, "values of these fields must be distinct: "+schema.QuotedList([]string{a, b}))
		}
	}
}

// upstreamShorthands applies the algorithm and hash_on shorthands of
// upstreams.lua, in that order.
func upstreamShorthands(m map[string]any) schema.Errors {
	for _, k := range []string{"algorithm", "hash_on"} {
		if v, ok := m[k]; ok && v != nil {
			if _, isStr := v.(string); !isStr {
				return schema.Errors{k: "expected a string"}
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

func (b *builder) targets() *schema.Field {
	return schema.Record("", entityFields(schema.Number,
		reference("upstream").Required(),
		str("target").Custom(validateTarget).Required(),
		integer("weight", 0, 65535, 100.0),
		tags(),
	)...)
}

func (b *builder) snis() *schema.Field {
	return schema.Record("", entityFields(schema.Integer,
		str("name").Custom(schema.ValidateWildcardHost).Required(),
		tags(),
		reference("certificate").Required(),
	)...)
}

func (b *builder) consumers() *schema.Field {
	return schema.Record("", entityFields(schema.Integer,
		str("username"),
		str("custom_id"),
		tags(),
	)...).Checks(atLeastOneOf("custom_id", "username"))
}

func (b *builder) plugins() *schema.Field {
	s := schema.Record("", entityFields(schema.Integer,
		str("name").Required(),
		utf8Name("instance_name"),
		reference("route"),
		reference("service"),
		reference("consumer"),
		schema.Any("config"),
		// protocols defaults per plugin (Options.PluginProtocols): see
		// pluginDefaults.
		schema.Set("protocols", oneOf(str(""), protocols...)).Required(),
		boolean("enabled", true).Required(),
		tags(),
	)...)
	enabled := map[string]bool{}
	for _, p := range b.opts.Plugins {
		enabled[p] = true
	}
	plugin := schema.NewSubschema(nil)
	s.Subschemas("name", func(k any) *schema.Subschema {
		name, ok := k.(string)
		if !ok || (b.opts.Plugins != nil && !enabled[name]) {
			return nil
		}
		return plugin
	}, func(k any) string {
		return "plugin '" + luaString(k) + "' not enabled; add it to the 'plugins' configuration property"
	})
	return s.Checks(b.pluginConfig).Shorthand(b.pluginDefaults)
}

// pluginDefaults runs before a plugin entity's fields are processed: it
// gives an entity without protocols its plugin's default
// (Options.PluginProtocols), else Kong's generic one, and replaces a valid
// config by the one Options.PluginConfig fills with defaults. Errors are
// left to pluginConfig, which reports them with the entity's others.
func (b *builder) pluginDefaults(m map[string]any) schema.Errors {
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
	if conf, ok := schema.AsRecord(v); ok {
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
func (b *builder) pluginConfig(m map[string]any, errs schema.Errors) {
	b.pluginProtocols(m, errs)
	v := m["config"]
	if v == nil {
		v = map[string]any{}
	}
	conf, ok := schema.AsRecord(v)
	if !ok {
		errs["config"] = "expected a record"
		return
	}
	if b.opts.PluginConfig == nil {
		return
	}
	name, _ := m["name"].(string)
	if _, ferrs := b.opts.PluginConfig(name, conf); len(ferrs) > 0 {
		errs["config"] = ferrs
	}
}

// pluginProtocols refuses a protocol the plugin's own schema does not
// allow (Options.PluginAllowedProtocols), with the message Kong's set
// validation gives at that element.
func (b *builder) pluginProtocols(m map[string]any, errs schema.Errors) {
	if b.opts.PluginAllowedProtocols == nil || schema.HasError(errs, "protocols") {
		return
	}
	name, _ := m["name"].(string)
	allowed := b.opts.PluginAllowedProtocols(name)
	list, _ := m["protocols"].([]any)
	if allowed == nil {
		return
	}
	bad := map[string]any{}
	for i, p := range list {
		if s, _ := p.(string); !slices.Contains(allowed, s) {
			bad[strconv.Itoa(i+1)] = "expected one of: " + strings.Join(allowed, ", ")
		}
	}
	if len(bad) > 0 {
		errs["protocols"] = bad
	}
}
