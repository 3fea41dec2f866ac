package conf

import (
	"net/netip"

	"github.com/gong-proxy/gong/vault"
	"sort"
	"strings"
	"time"
)

// Config is a validated kong.conf. It is immutable once Load returns it.
type Config struct {
	Prefix   string // absolute
	LogLevel string

	ProxyStreamAccessLog AccessLog
	ProxyStreamErrorLog  string // path, absolute, or "off"
	AdminAccessLog       string
	AdminErrorLog        string
	StatusAccessLog      string
	StatusErrorLog       string

	// Plugins is the plugins property as written, "bundled" included; see
	// EnabledPlugins.
	Plugins []string
	NodeID  string

	StreamListeners []Listener
	AdminListeners  []Listener
	StatusListeners []Listener
	// AdminTLS and StatusTLS serve those listeners that have the ssl flag.
	AdminTLS  HTTPTLS
	StatusTLS HTTPTLS
	// AdminToken, when set, must come with every Admin API request in a
	// Kong-Admin-Token header (a gong extension).
	AdminToken string
	// AdminAllowedHosts are the names (or addresses) Admin API requests may
	// carry in Host besides the address they reached (admin_allowed_hosts;
	// "*" allows any), against DNS rebinding.
	AdminAllowedHosts []string
	// APILimits bound the Admin and Status API servers.
	APILimits APILimits
	// Vault is the vaults and vault_* properties, from which the vault
	// references of kong.yml and Lua are resolved.
	Vault vault.Settings
	// PortMaps maps a port gong listens on to the port clients reach it on;
	// stream routes match the mapped port.
	PortMaps map[int]int

	// Database is where entities come from when Strategy is "postgres".
	Database Database

	DeclarativeConfig       string // absolute path, or ""
	DeclarativeConfigString string
	MemCacheSize            int64

	TLS       TLS
	ClientSSL ClientSSL
	LuaSSL    LuaSSL

	// TrustedIPs are the peers whose PROXY protocol header is believed.
	TrustedIPs []netip.Prefix
	TrustUnix  bool

	DNS DNS

	LuaPackagePath    string
	LuaSocketPoolSize int
	UntrustedLua      string
	// LuaMemoryLimit is the heap size in bytes past which the longest
	// running Lua handler is stopped; 0 is no limit (gong's addition).
	LuaMemoryLimit int64
	// LuaMaxVMs caps the Lua VMs of a configuration's pool; a phase that
	// finds them all leased waits for one (gong's addition).
	LuaMaxVMs int
	// LuaMaxPinnedVMs caps the VMs sessions keep from preread to log
	// because their ctx values cannot be carried out (gong's addition).
	LuaMaxPinnedVMs int

	RouterFlavor string

	Stream  StreamSettings
	Tracing Tracing

	values map[string]Value
}

// Value is one resolved property, before typing.
type Value struct {
	Raw    string
	Source Source
}

// AccessLog is proxy_stream_access_log: a path and the name of a format.
type AccessLog struct {
	Off    bool
	Path   string // absolute
	Format string // "basic" or a name defined with nginx_stream_log_format
}

// TLS is the downstream TLS of ssl listeners.
type TLS struct {
	CipherSuite         string   // modern, intermediate, old, fips or custom
	Ciphers             []string // OpenSSL names, from the suite or ssl_ciphers
	Protocols           []string // TLSv1 ... TLSv1.3, from the suite or ssl_protocols
	PreferServerCiphers bool
	// Curves are nginx_stream_ssl_ecdh_curve's key exchanges, in OpenSSL's
	// names; empty for auto.
	Curves         []string
	SessionTickets bool
	SessionTimeout time.Duration
	// Certs are the ssl_cert/ssl_cert_key pairs, loaded; empty means gong
	// generates its default certificates under Prefix/ssl.
	Certs []CertPair
}

// CertPair is a certificate chain and its key, PEM encoded.
type CertPair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// HTTPTLS is the TLS of the Admin or Status API's ssl listeners.
type HTTPTLS struct {
	// Certs are admin_ssl_cert/admin_ssl_cert_key (status_...); empty
	// means gong generates default certificates under Prefix/ssl.
	Certs []CertPair
	// ClientCA, when set, is the PEM of the CAs a client certificate must
	// be signed by (admin_ssl_client_ca, a gong extension).
	ClientCA []byte
}

// ClientSSL is the client certificate presented to TLS upstreams.
type ClientSSL struct {
	Enabled bool
	Cert    *CertPair
}

// LuaSSL is the TLS of plugin sockets.
type LuaSSL struct {
	TrustedCertificates []string // "system", paths or PEM
	VerifyDepth         int
	Protocols           []string
}

// DNS configures the resolution of service hosts and targets.
type DNS struct {
	Resolvers   []string // "ip:port"; empty = /etc/resolv.conf
	HostsFile   string
	Order       []string // upper case: LAST, SRV, A, AAAA, CNAME
	ValidTTL    time.Duration
	StaleTTL    time.Duration
	CacheSize   int
	NotFoundTTL time.Duration
	ErrorTTL    time.Duration
	NoSync      bool // dns_no_sync: no sharing of one query among concurrent callers
}

// StreamSettings are the nginx stream directives gong honours, from the
// nginx_stream_* and nginx_sproxy_* properties.
type StreamSettings struct {
	PrereadBufferSize    int
	PrereadTimeout       time.Duration
	ProxyProtocolTimeout time.Duration
	// ProxyTimeout is nginx_sproxy_proxy_timeout (10m by default). In
	// Kong it is the idle timeout of the hop every ssl listener's session
	// takes before its service's own timeout applies, so it caps the idle
	// timeout of those sessions; see SessionIdle.
	ProxyTimeout time.Duration
	// HalfClose is nginx_sproxy_proxy_half_close (nginx's
	// proxy_half_close, off by default): on, an EOF from one side is
	// passed on to the other and the session lasts until both ends have
	// closed; off, the first side to end ends the session.
	HalfClose bool
	// ProxySSLVerify is the upstream verification of services that leave
	// tls_verify unset; nil means off.
	ProxySSLVerify             *bool
	ProxySSLVerifyDepth        int
	ProxySSLTrustedCertificate string
	// LogFormats are the access-log formats by name, "basic" included.
	LogFormats map[string]string
	// LuaSharedDicts are the ngx.shared zones and their sizes in bytes:
	// Kong's own stream zones, then nginx_stream_lua_shared_dict's.
	LuaSharedDicts map[string]int64
	// WorkerConnections caps the sessions in flight, TCP and UDP
	// together (nginx_events_worker_connections); 0 is auto: no cap.
	WorkerConnections int
	// WorkerProcesses is how many event loops serve plain TCP sessions
	// (nginx_worker_processes, nginx's worker_processes); 0 is auto: one
	// per core (GOMAXPROCS).
	WorkerProcesses int
	// WorkerShutdownTimeout bounds a graceful quit
	// (nginx_main_worker_shutdown_timeout, nginx's
	// worker_shutdown_timeout): sessions still open then are closed.
	WorkerShutdownTimeout time.Duration
}

// SessionIdle is a proxied session's idle timeout: the service's
// (max(read_timeout, write_timeout), as Kong sets nginx's proxy_timeout),
// and on an ssl listener no more than ProxyTimeout. Kong's ssl listeners
// relay every session through an internal hop whose proxy_timeout is
// nginx_sproxy_proxy_timeout, whichever is shorter ends the session.
func (s StreamSettings) SessionIdle(service time.Duration, sslListener bool) time.Duration {
	if sslListener && s.ProxyTimeout > 0 && (service <= 0 || s.ProxyTimeout < service) {
		return s.ProxyTimeout
	}
	return service
}

// BasicLogFormat is Kong's stream access-log format "basic".
const BasicLogFormat = `$remote_addr [$time_local] $protocol $status $bytes_sent $bytes_received $session_time`

// Tracing configures OpenTelemetry tracing of connections.
type Tracing struct {
	Instrumentations   []string // empty when off
	SamplingRate       float64
	OTLPProtocol       string // "http/protobuf" or "grpc"
	OTLPEndpoint       string
	OTLPHeaders        map[string]string
	OTLPTimeout        time.Duration
	ResourceAttributes map[string]string
	BatchSpanCount     int
	BatchFlushDelay    time.Duration
}

// Get returns a property's resolved text and whether it is set.
func (c *Config) Get(key string) (string, bool) {
	v, ok := c.values[key]
	return v.Raw, ok
}

// Source returns where a property's value came from.
func (c *Config) Source(key string) (Source, bool) {
	v, ok := c.values[key]
	return v.Source, ok
}

// Keys returns the names of every set property, sorted.
func (c *Config) Keys() []string {
	keys := make([]string, 0, len(c.values))
	for k := range c.values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// EnabledPlugins expands the plugins property: "bundled" stands for the
// given bundled names, "off" alone for none; duplicates are dropped.
func (c *Config) EnabledPlugins(bundled []string) []string {
	if len(c.Plugins) == 1 && c.Plugins[0] == "off" {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, p := range c.Plugins {
		if p == "bundled" {
			for _, b := range bundled {
				add(b)
			}
			continue
		}
		add(p)
	}
	return out
}

// KongEnv renders the merged configuration in kong.conf syntax, as Kong
// writes <prefix>/.kong_env: one "key = value" line per set property,
// sorted, with # escaped. Loading it back gives the same Config.
func (c *Config) KongEnv() []byte {
	var b strings.Builder
	for _, k := range c.Keys() {
		b.WriteString(k)
		b.WriteString(" = ")
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(c.values[k].Raw, "#", `\#`), "\n", "\\\n"))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// APILimits bound the HTTP servers of admin_listen and status_listen
// (admin_read_timeout, admin_write_timeout, admin_idle_timeout,
// admin_max_connections).
type APILimits struct {
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its response.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no request.
	IdleTimeout time.Duration
	// MaxConnections is how many connections each server holds at once;
	// more wait in the listen backlog.
	MaxConnections int
}
