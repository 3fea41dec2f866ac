package conf

import (
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Listener is one parsed entry of stream_listen, admin_listen or
// status_listen.
type Listener struct {
	// Listener is the entry rebuilt as "<host>:<port> <flags>", flags in
	// canonical order, as Kong shows it in GET /.
	Listener string
	Host     string // IP (IPv6 in brackets) or hostname, as written
	Port     int

	SSL           bool
	HTTP2         bool // http family only
	UDP           bool // stream only
	ProxyProtocol bool
	Deferred      bool // http family only
	Bind          bool
	ReusePort     bool
	Backlog       int    // 0: the system default
	IPv6Only      string // "", "on" or "off"
	SOKeepalive   string // "", "on", "off" or "<idle>:<intvl>:<cnt>"
	// KeepAlive is SOKeepalive read: TCP keepalive on accepted sockets.
	KeepAlive KeepAlive
	// MaxSessions caps the listener's sessions in flight and MaxRate its
	// new sessions per second (stream only, gong's own flags); 0: no cap.
	MaxSessions int
	MaxRate     int
}

// KeepAlive is an so_keepalive setting. Zero durations and a zero count
// keep the system's defaults, as an empty part does in nginx.
type KeepAlive struct {
	Enabled  bool
	Idle     time.Duration
	Interval time.Duration
	Count    int
}

// parseKeepAlive reads "on", "off" or "<idle>:<intvl>:<cnt>", the times
// in nginx's units.
func parseKeepAlive(v string) (KeepAlive, bool) {
	switch v {
	case "off":
		return KeepAlive{}, true
	case "on":
		return KeepAlive{Enabled: true}, true
	}
	parts := strings.Split(v, ":")
	ka := KeepAlive{Enabled: true}
	var ok bool
	if parts[0] != "" {
		if ka.Idle, ok = parseDuration(parts[0]); !ok {
			return ka, false
		}
	}
	if parts[1] != "" {
		if ka.Interval, ok = parseDuration(parts[1]); !ok {
			return ka, false
		}
	}
	if parts[2] != "" {
		n, err := strconv.Atoi(parts[2])
		if err != nil {
			return ka, false
		}
		ka.Count = n
	}
	return ka, true
}

// Addr is the address to listen on, as net.Listen wants it.
func (l Listener) Addr() string {
	return net.JoinHostPort(strings.Trim(l.Host, "[]"), strconv.Itoa(l.Port))
}

// listenFamily is the flag set one kind of listener accepts, in Kong's
// canonical order.
type listenFamily []string

var (
	streamFlags = listenFamily{"udp", "ssl", "proxy_protocol", "bind", "reuseport",
		"backlog=%d+", "ipv6only=on", "ipv6only=off", "so_keepalive=on", "so_keepalive=off",
		"so_keepalive=%w*:%w*:%d*", "max_sessions=%d+", "max_rate=%d+"}
	httpFlags = listenFamily{"ssl", "http2", "proxy_protocol", "deferred", "bind", "reuseport",
		"backlog=%d+", "ipv6only=on", "ipv6only=off", "so_keepalive=on", "so_keepalive=off",
		"so_keepalive=%w*:%w*:%d*"}
)

var (
	backlogFlag   = regexp.MustCompile(`^backlog=[0-9]+$`)
	keepaliveFlag = regexp.MustCompile(`^so_keepalive=[A-Za-z0-9]*:[A-Za-z0-9]*:[0-9]*$`)
	maxSessions   = regexp.MustCompile(`^max_sessions=[1-9][0-9]{0,8}$`)
	maxRate       = regexp.MustCompile(`^max_rate=[1-9][0-9]{0,8}$`)
	hostnameRE    = regexp.MustCompile(`^[A-Za-z0-9_.*-]+$`)
)

// usage is Kong's error text for a malformed listen property.
func (f listenFamily) usage(key string) string {
	return key + " must be of form: [off] | <ip>:<port> [" + strings.Join(f, "] [") + "], [... next entry ...]"
}

// flagIndex returns the position of token in the family, or -1.
func (f listenFamily) flagIndex(token string) int {
	for i, flag := range f {
		switch {
		case flag == token:
			return i
		case flag == "backlog=%d+" && backlogFlag.MatchString(token):
			return i
		case flag == "so_keepalive=%w*:%w*:%d*" && keepaliveFlag.MatchString(token):
			return i
		case flag == "max_sessions=%d+" && maxSessions.MatchString(token):
			return i
		case flag == "max_rate=%d+" && maxRate.MatchString(token):
			return i
		}
	}
	return -1
}

// parseListeners parses a listen property's entries. The first entry "off"
// means no listeners, as in Kong.
func parseListeners(key string, entries []string, family listenFamily) ([]Listener, string) {
	if len(entries) == 0 {
		return nil, family.usage(key)
	}
	if entries[0] == "off" {
		return nil, ""
	}
	var out []Listener
	for _, entry := range entries {
		l, ok := parseListener(entry, family)
		if !ok {
			return nil, family.usage(key)
		}
		out = append(out, l)
	}
	return out, ""
}

func parseListener(entry string, family listenFamily) (Listener, bool) {
	var l Listener
	var address []string
	found := make([]string, len(family))
	for _, tok := range strings.Fields(entry) {
		i := family.flagIndex(tok)
		if i < 0 {
			address = append(address, tok)
			continue
		}
		found[i] = tok
		switch {
		case tok == "ssl":
			l.SSL = true
		case tok == "http2":
			l.HTTP2 = true
		case tok == "udp":
			l.UDP = true
		case tok == "proxy_protocol":
			l.ProxyProtocol = true
		case tok == "deferred":
			l.Deferred = true
		case tok == "bind":
			l.Bind = true
		case tok == "reuseport":
			l.ReusePort = true
		case strings.HasPrefix(tok, "backlog="):
			n, err := strconv.Atoi(strings.TrimPrefix(tok, "backlog="))
			if err != nil {
				return l, false
			}
			l.Backlog = n
		case strings.HasPrefix(tok, "max_sessions="):
			l.MaxSessions, _ = strconv.Atoi(strings.TrimPrefix(tok, "max_sessions="))
		case strings.HasPrefix(tok, "max_rate="):
			l.MaxRate, _ = strconv.Atoi(strings.TrimPrefix(tok, "max_rate="))
		case strings.HasPrefix(tok, "ipv6only="):
			l.IPv6Only = strings.TrimPrefix(tok, "ipv6only=")
		case strings.HasPrefix(tok, "so_keepalive="):
			l.SOKeepalive = strings.TrimPrefix(tok, "so_keepalive=")
			var ok bool
			if l.KeepAlive, ok = parseKeepAlive(l.SOKeepalive); !ok {
				return l, false
			}
		}
	}
	if len(address) != 1 {
		return l, false
	}
	host, port, ok := splitListenAddress(address[0])
	if !ok {
		return l, false
	}
	l.Host, l.Port = host, port
	parts := []string{host + ":" + strconv.Itoa(port)}
	for _, f := range found {
		if f != "" {
			parts = append(parts, f)
		}
	}
	l.Listener = strings.Join(parts, " ")
	return l, true
}

// splitListenAddress accepts ipv4:port, [ipv6]:port and name:port, the
// forms Kong accepts; the port is required and at most 65535.
func splitListenAddress(s string) (string, int, bool) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, false
	}
	host, portStr := s[:i], s[i+1:]
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 || portStr == "" || portStr[0] == '+' {
		return "", 0, false
	}
	if strings.HasPrefix(host, "[") {
		a, err := netip.ParseAddr(strings.Trim(host, "[]"))
		if err != nil || !a.Is6() || !strings.HasSuffix(host, "]") {
			return "", 0, false
		}
		return "[" + a.String() + "]", port, true
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Is6() {
			return "", 0, false // an IPv6 address needs brackets before its port
		}
		return a.String(), port, true
	}
	if !hostnameRE.MatchString(host) || isDigitsAndDots(host) {
		return "", 0, false
	}
	return host, port, true
}

func isDigitsAndDots(s string) bool {
	return strings.Trim(s, "0123456789.") == ""
}

// warnSharedPorts warns of TCP entries of different keys that bind the
// same port on overlapping addresses. With reuseport on both (Kong's
// status_listen default has it) the kernel splits the port's connections
// between them, so that, for example, a stream route on 127.0.0.1:8007
// gets half its clients answered by the status API; without it the start
// fails with "address already in use".
func (t *typer) warnSharedPorts(byKey map[string][]Listener) {
	keys := []string{"stream_listen", "admin_listen", "status_listen"}
	for i, key := range keys {
		for _, other := range keys[:i] {
			for _, a := range byKey[key] {
				for _, b := range byKey[other] {
					if a.UDP || b.UDP || a.Port != b.Port || !overlap(a.Host, b.Host) {
						continue
					}
					if t.values[key].Source.Kind == FromDefaults { // say it where the user wrote
						t.warn(other, "%s %s and %s %s listen on the same port: the kernel may give either of them the other's connections", other, b.Addr(), key, a.Addr())
					} else {
						t.warn(key, "%s %s and %s %s listen on the same port: the kernel may give either of them the other's connections", key, a.Addr(), other, b.Addr())
					}
				}
			}
		}
	}
}

// overlap reports whether two listen hosts can receive the same
// connections: the same host, or either one a wildcard address.
func overlap(a, b string) bool {
	unspecified := func(h string) bool {
		ip := net.ParseIP(strings.Trim(h, "[]"))
		return h == "*" || ip != nil && ip.IsUnspecified()
	}
	return strings.EqualFold(a, b) || unspecified(a) || unspecified(b)
}
