package declarative

import "slices"

// Options are the node settings that change how a declarative config
// validates.
type Options struct {
	// RouterFlavor is kong.conf router_flavor: "traditional",
	// "traditional_compatible" (used when empty) or "expressions". It picks
	// the route snis validator and whether routes have expression and
	// priority fields.
	RouterFlavor string
	// Plugins are the enabled plugin names (kong.conf plugins, expanded).
	// A plugin entity with another name is rejected as Kong does. Nil
	// accepts any name.
	Plugins []string
	// PluginConfig, when set, is called for every plugin entity that is
	// otherwise valid with its name and config (an empty map when none was
	// given). It returns the config with its defaults filled, or field
	// errors nested as in Kong (field -> message or nested map). It must
	// not keep or modify config. When nil, the config is taken as given
	// and only has to be a record.
	PluginConfig func(name string, config map[string]any) (map[string]any, map[string]any)
	// PluginProtocols, when set, returns a plugin's default protocols (the
	// default of its schema's protocols field), used when a plugin entity
	// gives none. Nil, or a nil result, means Kong's generic default:
	// grpc, grpcs, http, https.
	PluginProtocols func(name string) []string
	// RouteExpression, when set, parses and type-checks the expression of
	// a stream route (router_flavor traditional_compatible or
	// expressions) that is otherwise valid; its error becomes the route's
	// "Router Expression failed validation: <error>", as in Kong. When
	// nil, expressions are not compiled here.
	RouteExpression func(expression string) error
}

// Config is a validated declarative configuration. Entities appear in
// Kong's load order: entity types as in Kong's topological sort, each
// parent followed by the entities nested in it. A Config and everything it
// points to are read-only once returned.
type Config struct {
	FormatVersion string // as written: "1.1", "2.1" or "3.0"
	Transform     bool   // _transform, default true

	Services       []*Service
	Routes         []*Route
	Upstreams      []*Upstream
	Targets        []*Target
	Certificates   []*Certificate
	SNIs           []*SNI
	CACertificates []*CACertificate
	Plugins        []*Plugin
	Consumers      []*Consumer
}

// Service is a services entity (kong/db/schema/entities/services.lua).
type Service struct {
	ID                string   `json:"id"`
	CreatedAt         int64    `json:"created_at"`
	UpdatedAt         int64    `json:"updated_at"`
	Name              *string  `json:"name"`
	Retries           int      `json:"retries"`
	Protocol          string   `json:"protocol"`
	Host              string   `json:"host"`
	Port              int      `json:"port"`
	Path              *string  `json:"path"`
	ConnectTimeout    int      `json:"connect_timeout"`
	WriteTimeout      int      `json:"write_timeout"`
	ReadTimeout       int      `json:"read_timeout"`
	Tags              []string `json:"tags"`
	ClientCertificate *string  `json:"client_certificate"` // certificate id
	TLSVerify         *bool    `json:"tls_verify"`
	TLSVerifyDepth    *int     `json:"tls_verify_depth"`
	CACertificates    []string `json:"ca_certificates"` // CA certificate ids, not checked to exist (as in Kong)
	Enabled           bool     `json:"enabled"`
	// ProxyProtocol, gong's extension, sends the upstream a PROXY v2
	// header with the client's address and the trace context.
	ProxyProtocol *bool `json:"proxy_protocol,omitempty"`
}

// Endpoint is an element of a route's sources or destinations; a nil
// member is unset.
type Endpoint struct {
	IP   *string `json:"ip"`   // IP or CIDR
	Port *int    `json:"port"` // 0-65535
}

// Route is a routes entity (routes.lua with its subschemas).
type Route struct {
	ID                      string              `json:"id"`
	CreatedAt               int64               `json:"created_at"`
	UpdatedAt               int64               `json:"updated_at"`
	Name                    *string             `json:"name"`
	Protocols               []string            `json:"protocols"`
	HTTPSRedirectStatusCode int                 `json:"https_redirect_status_code"`
	StripPath               bool                `json:"strip_path"`
	PreserveHost            bool                `json:"preserve_host"`
	RequestBuffering        bool                `json:"request_buffering"`
	ResponseBuffering       bool                `json:"response_buffering"`
	Tags                    []string            `json:"tags"`
	Service                 *string             `json:"service"` // service id
	SNIs                    []string            `json:"snis"`
	Sources                 []Endpoint          `json:"sources"`
	Destinations            []Endpoint          `json:"destinations"`
	Methods                 []string            `json:"methods"`
	Hosts                   []string            `json:"hosts"`
	Paths                   []string            `json:"paths"`
	Headers                 map[string][]string `json:"headers"`
	RegexPriority           int                 `json:"regex_priority"`
	PathHandling            string              `json:"path_handling"`
	Expression              *string             `json:"expression"` // expressions flavor only
	Priority                *int64              `json:"priority"`   // expressions flavor only

	// Gong extensions for routes whose protocols include "tls"; null
	// elsewhere.
	ClientCACertificates []string `json:"client_ca_certificates"` // ca_certificates ids; non-empty requires a client certificate
	ClientVerifyDepth    *int     `json:"client_verify_depth"`    // intermediates allowed, 0-64; null means 1 (nginx's ssl_verify_depth)
	ALPNProtocols        []string `json:"alpn_protocols"`         // ALPN ids offered; null offers none
}

// Upstream is an upstreams entity (upstreams.lua), shorthands applied.
type Upstream struct {
	ID                     string       `json:"id"`
	CreatedAt              int64        `json:"created_at"`
	UpdatedAt              int64        `json:"updated_at"`
	Name                   string       `json:"name"`
	Algorithm              string       `json:"algorithm"`
	HashOn                 string       `json:"hash_on"`
	HashFallback           string       `json:"hash_fallback"`
	HashOnHeader           *string      `json:"hash_on_header"`
	HashFallbackHeader     *string      `json:"hash_fallback_header"`
	HashOnCookie           *string      `json:"hash_on_cookie"`
	HashOnCookiePath       string       `json:"hash_on_cookie_path"`
	HashOnQueryArg         *string      `json:"hash_on_query_arg"`
	HashFallbackQueryArg   *string      `json:"hash_fallback_query_arg"`
	HashOnURICapture       *string      `json:"hash_on_uri_capture"`
	HashFallbackURICapture *string      `json:"hash_fallback_uri_capture"`
	Slots                  int          `json:"slots"`
	Healthchecks           Healthchecks `json:"healthchecks"`
	Tags                   []string     `json:"tags"`
	HostHeader             *string      `json:"host_header"`
	ClientCertificate      *string      `json:"client_certificate"` // certificate id
	UseSRVName             bool         `json:"use_srv_name"`
	// UDPAffinityTTL is gong's extension: seconds a UDP client address
	// goes back to the target of its ended session; 0 is off.
	UDPAffinityTTL float64 `json:"udp_affinity_ttl"`
}

// Healthchecks is an upstream's healthchecks record.
type Healthchecks struct {
	Threshold float64            `json:"threshold"`
	Active    ActiveHealthcheck  `json:"active"`
	Passive   PassiveHealthcheck `json:"passive"`
}

// ActiveHealthcheck is healthchecks.active; intervals and timeouts are in
// seconds.
type ActiveHealthcheck struct {
	Type                   string              `json:"type"`
	Timeout                float64             `json:"timeout"`
	Concurrency            int                 `json:"concurrency"`
	HTTPPath               string              `json:"http_path"`
	HTTPSSNI               *string             `json:"https_sni"`
	HTTPSVerifyCertificate bool                `json:"https_verify_certificate"`
	Headers                map[string][]string `json:"headers"`
	// Send and Expect are gong's extension for tcp and udp checks: the
	// payload sent once connected (the datagram, for udp), and what the
	// reply must start with.
	Send    *string `json:"send"`
	Expect  *string `json:"expect"`
	Healthy struct {
		Interval     float64 `json:"interval"`
		HTTPStatuses []int   `json:"http_statuses"`
		Successes    int     `json:"successes"`
	} `json:"healthy"`
	Unhealthy struct {
		Interval     float64 `json:"interval"`
		HTTPStatuses []int   `json:"http_statuses"`
		TCPFailures  int     `json:"tcp_failures"`
		Timeouts     int     `json:"timeouts"`
		HTTPFailures int     `json:"http_failures"`
	} `json:"unhealthy"`
}

// PassiveHealthcheck is healthchecks.passive.
type PassiveHealthcheck struct {
	Type    string `json:"type"`
	Healthy struct {
		HTTPStatuses []int `json:"http_statuses"`
		Successes    int   `json:"successes"`
	} `json:"healthy"`
	Unhealthy struct {
		HTTPStatuses []int `json:"http_statuses"`
		TCPFailures  int   `json:"tcp_failures"`
		Timeouts     int   `json:"timeouts"`
		HTTPFailures int   `json:"http_failures"`
	} `json:"unhealthy"`
}

// Target is a targets entity; Target is normalised (host:port, default
// port 8000, IPv6 expanded in brackets). Timestamps are Unix seconds with
// millisecond precision, as Kong's auto_timestamp_ms.
type Target struct {
	ID        string   `json:"id"`
	CreatedAt float64  `json:"created_at"`
	UpdatedAt float64  `json:"updated_at"`
	Upstream  string   `json:"upstream"` // upstream id
	Target    string   `json:"target"`
	Weight    int      `json:"weight"`
	Tags      []string `json:"tags"`
}

// Certificate is a certificates entity; Cert and Key hold the PEM text
// (Cert may carry a chain, leaf first), ready for tls.X509KeyPair.
type Certificate struct {
	ID        string   `json:"id"`
	CreatedAt int64    `json:"created_at"`
	UpdatedAt int64    `json:"updated_at"`
	Cert      string   `json:"cert"`
	Key       string   `json:"key"`
	CertAlt   *string  `json:"cert_alt"`
	KeyAlt    *string  `json:"key_alt"`
	Tags      []string `json:"tags"`
}

// SNI is an snis entity.
type SNI struct {
	ID          string   `json:"id"`
	CreatedAt   int64    `json:"created_at"`
	UpdatedAt   int64    `json:"updated_at"`
	Name        string   `json:"name"`
	Tags        []string `json:"tags"`
	Certificate string   `json:"certificate"` // certificate id
}

// CACertificate is a ca_certificates entity.
type CACertificate struct {
	ID         string   `json:"id"`
	CreatedAt  int64    `json:"created_at"`
	UpdatedAt  int64    `json:"updated_at"`
	Cert       string   `json:"cert"`
	CertDigest string   `json:"cert_digest"` // hex SHA-256 of the DER
	Tags       []string `json:"tags"`
}

// Plugin is a plugins entity.
type Plugin struct {
	ID           string         `json:"id"`
	CreatedAt    int64          `json:"created_at"`
	UpdatedAt    int64          `json:"updated_at"`
	Name         string         `json:"name"`
	InstanceName *string        `json:"instance_name"`
	Route        *string        `json:"route"`    // route id
	Service      *string        `json:"service"`  // service id
	Consumer     *string        `json:"consumer"` // consumer id
	Config       map[string]any `json:"config"`
	Protocols    []string       `json:"protocols"`
	Enabled      bool           `json:"enabled"`
	Tags         []string       `json:"tags"`
}

// Stream reports whether the plugin runs in the stream subsystem: Kong
// runs it there only if one of its protocols is a stream protocol.
func (p *Plugin) Stream() bool {
	for _, s := range p.Protocols {
		if slices.Contains([]string{"tcp", "tls", "tls_passthrough", "udp"}, s) {
			return true
		}
	}
	return false
}

// Consumer is a consumers entity.
type Consumer struct {
	ID        string   `json:"id"`
	CreatedAt int64    `json:"created_at"`
	UpdatedAt int64    `json:"updated_at"`
	Username  *string  `json:"username"`
	CustomID  *string  `json:"custom_id"`
	Tags      []string `json:"tags"`
}
