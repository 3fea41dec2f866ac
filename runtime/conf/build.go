package conf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Cipher lists of Kong's ssl_cipher_suite presets (kong/conf_loader/constants.lua).
const (
	intermediateCiphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" +
		"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:" +
		"ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:" +
		"DHE-RSA-CHACHA20-POLY1305"
	oldCiphers = intermediateCiphers + ":ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:" +
		"ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:" +
		"ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA256:DHE-RSA-AES256-SHA256:" +
		"AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA:DES-CBC3-SHA"
	fipsCiphers = "TLSv1.2+FIPS:kRSA+FIPS:!eNULL:!aNULL"
)

var tlsVersions = []string{"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}

// ECDHCurves are the ssl_ecdh_curve names gong accepts: OpenSSL's, with
// their NIST aliases.
var ECDHCurves = []string{"X25519MLKEM768", "X25519", "prime256v1", "P-256", "secp256r1", "secp384r1", "P-384", "secp521r1", "P-521"}

// TracingInstrumentations are the parts of a connection gong can trace.
var TracingInstrumentations = []string{"connection", "tls", "router", "plugins", "balancer", "upstream_tls"}

// kongInstrumentations map Kong's tracing_instrumentations names to
// gong's; "" marks those with nothing to trace in a stream proxy, which
// draw a warning.
var kongInstrumentations = map[string]string{
	"request":              "connection",
	"router":               "router",
	"balancer":             "balancer",
	"plugin_rewrite":       "plugins",
	"plugin_access":        "plugins",
	"plugin_header_filter": "plugins",
	"http_client":          "",
	"db_query":             "",
	"dns_query":            "",
}

func build(values map[string]Value, secrets map[string][]secret, opts Options) (*Config, []Problem, Errors) {
	t := &typer{values: values, secrets: secrets, dir: opts.Dir, env: opts.Env, read: map[string]bool{}}
	c := t.config()
	return c, t.warnings, t.problems
}

func (t *typer) config() *Config {
	c := &Config{values: t.values}
	c.Prefix = t.path("prefix")
	if c.Prefix == "" {
		t.fail("prefix", "prefix must be set")
	}
	t.prefix = c.Prefix
	c.LogLevel = t.enum("log_level", "debug", "info", "notice", "warn", "error", "crit", "alert", "emerg")
	c.ProxyStreamErrorLog = t.logPath("proxy_stream_error_log")
	c.AdminAccessLog = t.logPath("admin_access_log")
	c.AdminErrorLog = t.logPath("admin_error_log")
	c.StatusAccessLog = t.logPath("status_access_log")
	c.StatusErrorLog = t.logPath("status_error_log")
	t.accept("proxy_access_log", "proxy_error_log", "anonymous_reports")

	c.Plugins = t.array("plugins")
	if id := t.str("node_id"); id != "" && !uuidRE.MatchString(id) {
		t.fail("node_id", "node_id must be a valid UUID")
	}
	c.NodeID = t.str("node_id")
	if role := t.str("role"); role != "traditional" {
		t.fail("role", "role has an invalid value: '%s' (gong runs only as role = traditional)", role)
	}

	c.StreamListeners = t.listeners("stream_listen", streamFlags)
	c.AdminListeners = t.listeners("admin_listen", httpFlags)
	c.StatusListeners = t.listeners("status_listen", httpFlags)
	t.warnSharedPorts(map[string][]Listener{"stream_listen": c.StreamListeners, "admin_listen": c.AdminListeners, "status_listen": c.StatusListeners})
	c.AdminTLS.Certs = t.certPairs("admin_ssl_cert", "admin_ssl_cert_key")
	c.StatusTLS.Certs = t.certPairs("status_ssl_cert", "status_ssl_cert_key")
	if ca := t.str("admin_ssl_client_ca"); ca != "" {
		c.AdminTLS.ClientCA = t.pemValue(ca)
		if b, _ := pem.Decode(c.AdminTLS.ClientCA); b == nil || b.Type != "CERTIFICATE" {
			t.fail("admin_ssl_client_ca", "admin_ssl_client_ca: failed loading certificate from %s", ca)
		}
	}
	c.AdminToken = t.str("admin_token")
	c.AdminAllowedHosts = t.array("admin_allowed_hosts")
	c.APILimits = APILimits{ReadTimeout: t.positiveDuration("admin_read_timeout"),
		WriteTimeout:   t.positiveDuration("admin_write_timeout"),
		IdleTimeout:    t.positiveDuration("admin_idle_timeout"),
		MaxConnections: t.integer("admin_max_connections", 1, "admin_max_connections must be greater than 0")}
	c.Vault = t.vaults()
	t.listeners("proxy_listen", httpFlags)
	t.listeners("admin_gui_listen", httpFlags)
	t.accept("cluster_listen")
	c.PortMaps = t.portMaps()

	t.accept("nginx_user", "nginx_daemon", "nginx_main_worker_rlimit_nofile", "nginx_events_multi_accept")
	c.Stream = t.streamSettings()
	c.Stream.WorkerConnections = t.workerConnections()
	c.Stream.WorkerProcesses = t.workerProcesses()
	c.Stream.WorkerShutdownTimeout = t.positiveDuration("nginx_main_worker_shutdown_timeout")
	c.ProxyStreamAccessLog = t.accessLog(c.Stream.LogFormats)

	c.Database = t.database()
	c.DeclarativeConfig = t.path("declarative_config")
	c.DeclarativeConfigString = t.str("declarative_config_string")
	c.MemCacheSize = t.size("mem_cache_size")
	c.Stream.LuaSharedDicts = t.luaSharedDicts(c.MemCacheSize)
	t.accept("lmdb_environment_path", "lmdb_map_size")

	c.TLS = t.downstreamTLS()
	c.ClientSSL = t.clientSSL()
	c.LuaSSL = LuaSSL{
		TrustedCertificates: t.array("lua_ssl_trusted_certificate"),
		VerifyDepth:         t.integer("lua_ssl_verify_depth", 0, "lua_ssl_verify_depth must be 0 or greater"),
		Protocols:           t.tlsProtocols("lua_ssl_protocols"),
	}

	c.TrustedIPs, c.TrustUnix = t.trustedIPs()
	t.accept("real_ip_header", "real_ip_recursive")
	for _, k := range []string{"upstream_keepalive_pool_size", "upstream_keepalive_max_requests", "upstream_keepalive_idle_timeout"} {
		t.integer(k, 0, k+" must be 0 or greater")
	}

	c.DNS = t.dns()
	t.accept("new_dns_client", "resolver_address", "resolver_hosts_file", "resolver_family",
		"resolver_valid_ttl", "resolver_stale_ttl", "resolver_lru_cache_size", "resolver_mem_cache_size",
		"resolver_error_ttl")

	c.LuaPackagePath = t.str("lua_package_path")
	c.LuaSocketPoolSize = t.integer("lua_socket_pool_size", 1, "lua_socket_pool_size must be greater than 0")
	c.UntrustedLua = t.enum("untrusted_lua", "on", "off", "sandbox")
	c.LuaMemoryLimit = t.size("lua_memory_limit")
	c.LuaMaxVMs = t.integer("lua_max_vms", 1, "lua_max_vms must be greater than 0")
	c.LuaMaxPinnedVMs = t.integer("lua_max_pinned_vms", 0, "lua_max_pinned_vms must be 0 or greater")
	if c.LuaMaxVMs > 0 && c.LuaMaxPinnedVMs >= c.LuaMaxVMs {
		t.fail("lua_max_pinned_vms", "lua_max_pinned_vms must be less than lua_max_vms")
	}
	t.accept("lua_package_cpath", "untrusted_lua_sandbox_requires", "untrusted_lua_sandbox_environment")
	// Read by kong.tools.sandbox from kong.configuration.
	t.accept("untrusted_lua_sandbox_vaults")

	c.RouterFlavor = t.routerFlavor()
	t.enum("worker_consistency", "strict", "eventual")
	t.integer("worker_state_update_frequency", 1, "worker_state_update_frequency must be greater than 0")

	c.Tracing = t.tracing()
	return c
}

func (t *typer) listeners(key string, family listenFamily) []Listener {
	v, _ := t.lookup(key)
	ls, msg := parseListeners(key, splitArray(v), family)
	if msg != "" {
		t.fail(key, "%s", msg)
	}
	return ls
}

func (t *typer) portMaps() map[int]int {
	entries := t.array("port_maps")
	if len(entries) == 0 {
		return nil
	}
	m := map[int]int{}
	for _, e := range entries {
		hostStr, gongStr, ok := strings.Cut(e, ":")
		host, err1 := strconv.Atoi(strings.TrimSpace(hostStr))
		port, err2 := strconv.Atoi(strings.TrimSpace(gongStr))
		if !ok || err1 != nil || err2 != nil || host < 1 || host > 65535 || port < 1 || port > 65535 {
			t.fail("port_maps", "invalid port mapping (`port_maps`): %s", e)
			continue
		}
		m[port] = host
	}
	return m
}

func (t *typer) streamSettings() StreamSettings {
	s := StreamSettings{
		PrereadBufferSize:    int(t.size("nginx_stream_preread_buffer_size")),
		PrereadTimeout:       t.duration("nginx_sproxy_preread_timeout"),
		ProxyProtocolTimeout: t.duration("nginx_sproxy_proxy_protocol_timeout"),
		ProxyTimeout:         t.duration("nginx_sproxy_proxy_timeout"),
		LogFormats:           map[string]string{"basic": BasicLogFormat},
	}
	s.HalfClose, _ = t.onOff("nginx_sproxy_proxy_half_close")
	if v, set := t.onOff("nginx_sproxy_proxy_ssl_verify"); set {
		s.ProxySSLVerify = &v
	}
	s.ProxySSLVerifyDepth = 1
	if _, ok := t.values["nginx_sproxy_proxy_ssl_verify_depth"]; ok {
		s.ProxySSLVerifyDepth = t.integer("nginx_sproxy_proxy_ssl_verify_depth", 0, "nginx_sproxy_proxy_ssl_verify_depth must be 0 or greater")
	} else {
		t.accept("nginx_sproxy_proxy_ssl_verify_depth")
	}
	s.ProxySSLTrustedCertificate = t.path("nginx_sproxy_proxy_ssl_trusted_certificate")
	if v, ok := t.lookup("nginx_stream_log_format"); ok {
		name, format, ok := parseLogFormat(v)
		if !ok {
			t.fail("nginx_stream_log_format", "nginx_stream_log_format must be of form: <name> '<format>', got '%s'", v)
		} else {
			s.LogFormats[name] = format
		}
	}
	return s
}

// workerConnections reads nginx_events_worker_connections: a positive
// number caps the sessions in flight, TCP and UDP together; auto (0) sets
// no cap of gong's own (see docs/caps.md).
func (t *typer) workerConnections() int { return t.autoOrPositive("nginx_events_worker_connections") }

// maxWorkerProcesses bounds nginx_worker_processes as nginx bounds its
// workers (NGX_MAX_PROCESSES): each is an event loop with its buffer.
const maxWorkerProcesses = 1024

// workerProcesses reads nginx_worker_processes: at most
// maxWorkerProcesses, or auto (0), one per core.
func (t *typer) workerProcesses() int {
	const key = "nginx_worker_processes"
	n := t.autoOrPositive(key)
	if n > maxWorkerProcesses {
		t.fail(key, "%s must be at most %d", key, maxWorkerProcesses)
		return 0
	}
	return n
}

// autoOrPositive reads a positive integer, or auto (0).
func (t *typer) autoOrPositive(key string) int {
	if v, _ := t.lookup(key); v == "" || v == "auto" {
		return 0
	}
	return t.integer(key, 1, key+" must be 'auto' or a positive integer")
}

// kongSharedDicts are the lua_shared_dict zones Kong's stream template
// declares (mem_cache_size sizes the two entity caches).
var kongSharedDicts = map[string]int64{
	"stream_kong": 5 << 20, "stream_kong_db_cache_miss": 12 << 20, "stream_kong_locks": 8 << 20,
	"stream_kong_process_events": 5 << 20, "stream_kong_cluster_events": 5 << 20,
	"stream_kong_healthchecks": 5 << 20, "stream_kong_rate_limiting_counters": 12 << 20,
	"stream_kong_core_db_cache_miss": 12 << 20, "stream_kong_secrets": 5 << 20,
	"stream_prometheus_metrics": 5 << 20,
}

// luaSharedDicts reads nginx_stream_lua_shared_dict, "<name> <size>", over
// Kong's zones. Since a property holds one value, several zones are
// separated by ";", each optionally starting with the directive's name,
// as the injected directive's value would be.
func (t *typer) luaSharedDicts(memCacheSize int64) map[string]int64 {
	const key = "nginx_stream_lua_shared_dict"
	dicts := map[string]int64{}
	for k, v := range kongSharedDicts {
		dicts[k] = v
	}
	if memCacheSize > 0 {
		dicts["stream_kong_db_cache"], dicts["stream_kong_core_db_cache"] = memCacheSize, memCacheSize
	}
	v, _ := t.lookup(key)
	for _, entry := range strings.Split(v, ";") {
		f := strings.Fields(entry)
		if len(f) > 0 && f[0] == "lua_shared_dict" {
			f = f[1:]
		}
		if len(f) == 0 {
			continue
		}
		size, ok := parseSize(f[len(f)-1])
		if len(f) != 2 || !ok || size <= 0 {
			t.fail(key, "%s must be of form: <name> <size>, got '%s'", key, strings.TrimSpace(entry))
			continue
		}
		dicts[f[0]] = size
	}
	return dicts
}

// parseLogFormat reads nginx's "log_format name 'part' 'part' ..." value:
// quoted parts are joined; a bare word counts as a part too.
func parseLogFormat(v string) (name, format string, ok bool) {
	name, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	rest = strings.TrimSpace(rest)
	if name == "" || rest == "" {
		return "", "", false
	}
	var b strings.Builder
	for rest != "" {
		if q := rest[0]; q == '\'' || q == '"' {
			end := strings.IndexByte(rest[1:], q)
			if end < 0 {
				return "", "", false
			}
			b.WriteString(rest[1 : end+1])
			rest = strings.TrimSpace(rest[end+2:])
			continue
		}
		word, after, _ := strings.Cut(rest, " ")
		b.WriteString(word)
		rest = strings.TrimSpace(after)
	}
	return name, b.String(), true
}

func (t *typer) accessLog(formats map[string]string) AccessLog {
	v, ok := t.lookup("proxy_stream_access_log")
	if !ok || v == "off" {
		return AccessLog{Off: true}
	}
	f := strings.Fields(v)
	if len(f) < 2 {
		t.fail("proxy_stream_access_log", "proxy_stream_access_log must be 'off' or '<path> <format>' (stream logs have no default format), got '%s'", v)
		return AccessLog{Off: true}
	}
	if _, ok := formats[f[1]]; !ok {
		t.fail("proxy_stream_access_log", "proxy_stream_access_log uses the unknown log format '%s' (define it with nginx_stream_log_format)", f[1])
	}
	return AccessLog{Path: absPath(t.prefix, f[0]), Format: f[1]}
}

func (t *typer) downstreamTLS() TLS {
	var s TLS
	suite, _ := t.lookup("ssl_cipher_suite")
	s.CipherSuite = suite
	ciphers := t.str("ssl_ciphers")
	protocols := t.tlsProtocols("ssl_protocols")
	prefer := t.boolean("ssl_prefer_server_ciphers")
	switch suite {
	case "modern":
		s.Protocols = []string{"TLSv1.3"}
	case "intermediate":
		s.Protocols, s.Ciphers = []string{"TLSv1.2", "TLSv1.3"}, strings.Split(intermediateCiphers, ":")
	case "old":
		s.Protocols, s.Ciphers, s.PreferServerCiphers = tlsVersions, strings.Split(oldCiphers, ":"), true
	case "fips":
		s.Protocols, s.Ciphers, s.PreferServerCiphers = []string{"TLSv1.2"}, strings.Split(fipsCiphers, ":"), true
	case "custom":
		s.Protocols, s.PreferServerCiphers = protocols, prefer
		if ciphers != "" {
			s.Ciphers = strings.Split(ciphers, ":")
		}
	default:
		t.fail("ssl_cipher_suite", "Undefined cipher suite %s", suite)
	}
	if v, _ := t.lookup("nginx_stream_ssl_ecdh_curve"); v != "" && v != "auto" {
		for _, c := range strings.Split(v, ":") {
			if !slices.Contains(ECDHCurves, c) {
				t.fail("nginx_stream_ssl_ecdh_curve", "nginx_stream_ssl_ecdh_curve has an invalid value: '%s' (auto or a colon-separated list of %s)", c, strings.Join(ECDHCurves, ", "))
				continue
			}
			s.Curves = append(s.Curves, c)
		}
	}
	s.SessionTickets = t.boolean("ssl_session_tickets")
	s.SessionTimeout = t.duration("ssl_session_timeout")
	t.size("ssl_session_cache_size")
	t.accept("ssl_dhparam")

	s.Certs = t.certPairs("ssl_cert", "ssl_cert_key")
	return s
}

// certPairs loads a list of certificates and the list of their keys, as
// ssl_cert and ssl_cert_key (or admin_ssl_cert, ...) give them.
func (t *typer) certPairs(certKey, keyKey string) []CertPair {
	certs, keys := t.array(certKey), t.array(keyKey)
	var out []CertPair
	switch {
	case len(certs) > 0 && len(keys) == 0:
		t.fail(certKey, "%s must be specified", keyKey)
	case len(keys) > 0 && len(certs) == 0:
		t.fail(keyKey, "%s must be specified", certKey)
	case len(certs) != len(keys):
		t.fail(certKey, "%s was specified %d times while %s was specified %d times", certKey, len(certs), keyKey, len(keys))
	default:
		for i := range certs {
			if p, ok := t.certPair(certKey, certs[i], keyKey, keys[i]); ok {
				out = append(out, p)
			}
		}
	}
	return out
}

func (t *typer) tlsProtocols(key string) []string {
	v, _ := t.lookup(key)
	var out []string
	for _, p := range strings.Fields(v) {
		if !slices.Contains(tlsVersions, p) {
			t.fail(key, "%s has an invalid value: '%s' (%s)", key, p, strings.Join(tlsVersions, ", "))
			continue
		}
		out = append(out, p)
	}
	return out
}

func (t *typer) clientSSL() ClientSSL {
	s := ClientSSL{Enabled: t.boolean("client_ssl")}
	cert, key := t.str("client_ssl_cert"), t.str("client_ssl_cert_key")
	if !s.Enabled {
		return s
	}
	switch {
	case cert == "":
		t.fail("client_ssl", "client_ssl_cert must be specified")
	case key == "":
		t.fail("client_ssl", "client_ssl_cert_key must be specified")
	default:
		if p, ok := t.certPair("client_ssl_cert", cert, "client_ssl_cert_key", key); ok {
			s.Cert = &p
		}
	}
	return s
}

// certPair loads a certificate and its key, each given as a path, PEM
// text or base64-encoded PEM, as Kong accepts them.
func (t *typer) certPair(certKey, cert, keyKey, key string) (CertPair, bool) {
	certPEM := t.pemValue(cert)
	ok := true
	if b, _ := pem.Decode(certPEM); b == nil || b.Type != "CERTIFICATE" {
		ok = false
	} else if _, err := x509.ParseCertificate(b.Bytes); err != nil {
		ok = false
	}
	if !ok {
		t.fail(certKey, "%s: failed loading certificate from %s", certKey, cert)
	}
	keyPEM := t.pemValue(key)
	if b, _ := pem.Decode(keyPEM); b == nil || !strings.Contains(b.Type, "PRIVATE KEY") {
		t.fail(keyKey, "%s: failed loading key from %s", keyKey, key)
		return CertPair{}, false
	}
	if !ok {
		return CertPair{}, false
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.fail(keyKey, "%s does not match %s: %v", keyKey, certKey, err)
		return CertPair{}, false
	}
	return CertPair{CertPEM: certPEM, KeyPEM: keyPEM}, true
}

func (t *typer) pemValue(v string) []byte {
	if strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN") {
		return []byte(v)
	}
	if data, err := os.ReadFile(absPath(t.dir, v)); err == nil {
		return data
	}
	if data, err := base64.StdEncoding.DecodeString(v); err == nil {
		return data
	}
	return nil
}

func (t *typer) trustedIPs() ([]netip.Prefix, bool) {
	var out []netip.Prefix
	unix := false
	for _, e := range t.array("trusted_ips") {
		if e == "unix:" {
			unix = true
			continue
		}
		p, ok := parseIPOrCIDR(e)
		if !ok {
			t.fail("trusted_ips", "trusted_ips must be a comma separated list in the form of IPv4 or IPv6 address or CIDR block or 'unix:', got '%s'", e)
			continue
		}
		out = append(out, p)
	}
	return out, unix
}

func parseIPOrCIDR(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err == nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

func (t *typer) dns() DNS {
	d := DNS{HostsFile: t.path("dns_hostsfile")}
	for _, r := range t.array("dns_resolver") {
		addr, ok := parseResolver(r)
		if !ok {
			t.fail("dns_resolver", "dns_resolver must be a comma separated list in the form of IPv4/6 or IPv4/6:port, got '%s'", r)
			continue
		}
		d.Resolvers = append(d.Resolvers, addr)
	}
	if d.HostsFile != "" {
		if _, err := os.Stat(d.HostsFile); err != nil {
			t.fail("dns_hostsfile", "dns_hostsfile: file does not exist")
		}
	}
	for _, o := range t.array("dns_order") {
		u := strings.ToUpper(o)
		switch u {
		case "LAST", "A", "AAAA", "CNAME", "SRV":
			d.Order = append(d.Order, u)
		default:
			t.fail("dns_order", "dns_order: invalid entry '%s'", o)
		}
	}
	d.ValidTTL = t.seconds("dns_valid_ttl")
	d.StaleTTL = t.seconds("dns_stale_ttl")
	d.CacheSize = t.integer("dns_cache_size", 1, "dns_cache_size must be greater than 0")
	d.NotFoundTTL = t.seconds("dns_not_found_ttl")
	d.ErrorTTL = t.seconds("dns_error_ttl")
	d.NoSync = t.boolean("dns_no_sync")
	return d
}

// parseResolver accepts ip, ip:port and [ipv6]:port; the port defaults to 53.
func parseResolver(s string) (string, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 53).String(), true
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return "", false
	}
	return ap.String(), true
}

func (t *typer) routerFlavor() string {
	return t.enum("router_flavor", "traditional", "traditional_compatible", "expressions")
}

func (t *typer) tracing() Tracing {
	var tr Tracing
	instr := t.array("tracing_instrumentations")
	switch {
	case len(instr) == 1 && instr[0] == "off":
	case len(instr) == 1 && instr[0] == "all":
		tr.Instrumentations = TracingInstrumentations
	case slices.Contains(instr, "off"):
		t.fail("tracing_instrumentations", "invalid tracing types: off, other types are mutually exclusive")
	default:
		allowed := append([]string{"off", "all"}, TracingInstrumentations...)
		for _, i := range instr {
			if slices.Contains(TracingInstrumentations, i) {
				tr.Instrumentations = append(tr.Instrumentations, i)
				continue
			}
			mapped, known := kongInstrumentations[i]
			switch {
			case !known:
				t.fail("tracing_instrumentations", "invalid tracing type: %s (%s, or Kong's names)", i, strings.Join(allowed, ", "))
			case mapped == "":
				t.warn("tracing_instrumentations", "tracing_instrumentations: '%s' has no stream counterpart in gong and traces nothing", i)
			case !slices.Contains(tr.Instrumentations, mapped):
				tr.Instrumentations = append(tr.Instrumentations, mapped)
			}
		}
	}
	if rate, ok := t.number("tracing_sampling_rate"); ok {
		if rate < 0 || rate > 1 {
			t.fail("tracing_sampling_rate", "tracing_sampling_rate must be between 0 and 1")
		}
		tr.SamplingRate = rate
	}
	tr.OTLPProtocol = t.enum("tracing_otlp_protocol", "http/protobuf", "grpc")
	tr.OTLPEndpoint = t.str("tracing_otlp_endpoint")
	// Without tracing_otlp_endpoint, a kong.yml opentelemetry plugin
	// entry names the collector, as in Kong; without either nothing is
	// traced.
	switch {
	case tr.OTLPEndpoint != "" && tr.OTLPProtocol == "http/protobuf":
		if u, err := url.Parse(tr.OTLPEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.fail("tracing_otlp_endpoint", "tracing_otlp_endpoint must be an http or https URL with tracing_otlp_protocol = http/protobuf, got '%s'", tr.OTLPEndpoint)
		}
	}
	tr.OTLPHeaders = t.pairs("tracing_otlp_headers", ":", "<name>:<value>")
	tr.OTLPTimeout = t.milliseconds("tracing_otlp_timeout")
	tr.ResourceAttributes = t.pairs("tracing_resource_attributes", "=", "<key>=<value>")
	tr.BatchSpanCount = t.integer("tracing_batch_span_count", 1, "tracing_batch_span_count must be greater than 0")
	tr.BatchFlushDelay = t.seconds("tracing_batch_flush_delay")
	return tr
}

func (t *typer) milliseconds(key string) (d time.Duration) {
	ms := t.integer(key, 1, key+" must be greater than 0")
	return time.Duration(ms) * time.Millisecond
}

// pairs reads a comma-separated list of "<key><sep><value>" items.
func (t *typer) pairs(key, sep, form string) map[string]string {
	items := t.array(key)
	if len(items) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, it := range items {
		k, v, ok := strings.Cut(it, sep)
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			t.fail(key, "%s: invalid entry '%s', expected %s", key, it, form)
			continue
		}
		m[k] = v
	}
	return m
}
