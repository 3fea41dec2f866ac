package schema

import (
	"net/netip"
	"strconv"
	"strings"
)

// HostAddr is the result of kong/tools/ip.lua normalize_ip.
type HostAddr struct {
	Type string // "ipv4", "ipv6" or "name"
	Host string // normalised host (no brackets for ipv6)
	Port int    // -1 when absent
}

// HostnameType classifies a string as kong/tools/ip.lua hostname_type does.
func HostnameType(s string) string {
	if strings.Count(s, ":") > 1 {
		return "ipv6"
	}
	rest := strings.ReplaceAll(s, ":", "")
	if rest != "" && strings.Trim(rest, "0123456789.") == "" {
		return "ipv4"
	}
	return "name"
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parsePort converts a digit string as Lua's tonumber would, reporting
// "invalid port number" above 65535.
func parsePort(s string) (int, string) {
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n > 65535 {
		return 0, "invalid port number"
	}
	return int(n), ""
}

func normalizeIPv4(addr string) (HostAddr, string) {
	bad := "invalid ipv4 address: " + addr
	ip, portStr, hasPort := strings.Cut(addr, ":")
	if hasPort && !isDigits(portStr) {
		return HostAddr{}, bad
	}
	parts := strings.Split(ip, ".")
	if len(parts) != 4 {
		return HostAddr{}, bad
	}
	var octets [4]int
	for i, p := range parts {
		if len(p) > 3 || !isDigits(p) {
			return HostAddr{}, bad
		}
		n, _ := strconv.Atoi(p)
		if n > 255 {
			return HostAddr{}, bad
		}
		octets[i] = n
	}
	a := HostAddr{Type: "ipv4", Port: -1,
		Host: strconv.Itoa(octets[0]) + "." + strconv.Itoa(octets[1]) + "." + strconv.Itoa(octets[2]) + "." + strconv.Itoa(octets[3])}
	if hasPort {
		p, err := parsePort(portStr)
		if err != "" {
			return HostAddr{}, err
		}
		a.Port = p
	}
	return a, ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func normalizeIPv6(addr string) (HostAddr, string) {
	check := addr
	port := -1
	if strings.HasPrefix(addr, "[") {
		end := strings.IndexByte(addr, ']')
		if end < 0 {
			return HostAddr{}, "invalid ipv6 address: " + addr
		}
		check = addr[1:end]
		if rest := addr[end+1:]; rest != "" {
			ps, ok := strings.CutPrefix(rest, ":")
			if !ok || !isDigits(ps) {
				return HostAddr{}, "invalid ipv6 address"
			}
			p, err := parsePort(ps)
			if err != "" {
				return HostAddr{}, err
			}
			port = p
		}
	}
	if strings.HasPrefix(check, ":") {
		check = "0" + check
	}
	if strings.HasSuffix(check, ":") {
		check += "0"
	}
	if strings.Contains(check, "::") {
		n := 8 - strings.Count(check, ":")
		ins := ":" + strings.Repeat("0:", max(n, 0))
		check = strings.Replace(check, "::", ins, 1)
	}
	groups := strings.Split(check, ":")
	if len(groups) != 8 {
		return HostAddr{}, "invalid ipv6 address: " + addr
	}
	for i, g := range groups {
		if g == "" || len(g) > 4 || !isHex(g) {
			return HostAddr{}, "invalid ipv6 address: " + addr
		}
		groups[i] = strings.Repeat("0", 4-len(g)) + strings.ToLower(g)
	}
	return HostAddr{Type: "ipv6", Host: strings.Join(groups, ":"), Port: port}, ""
}

func isNameByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '.' || c == '_'
}

func checkHostname(addr string) (HostAddr, string) {
	name := addr
	port := -1
	if i := strings.LastIndexByte(addr, ':'); i >= 0 && isDigits(addr[i+1:]) {
		name = addr[:i]
		p, err := parsePort(addr[i+1:])
		if err != "" {
			return HostAddr{}, err
		}
		port = p
	}
	bad := "invalid hostname: " + addr
	if name == "" {
		return HostAddr{}, bad
	}
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i]) {
			return HostAddr{}, bad
		}
	}
	segs := strings.Split(name, ".")
	for i, s := range segs {
		if strings.HasSuffix(s, "-") || (s == "" && i != len(segs)-1) {
			return HostAddr{}, bad
		}
	}
	return HostAddr{Type: "name", Host: name, Port: port}, ""
}

// NormalizeIP mirrors kong/tools/ip.lua normalize_ip: it returns the parsed
// address or Kong's error text.
func NormalizeIP(addr string) (HostAddr, string) {
	switch HostnameType(addr) {
	case "ipv6":
		return normalizeIPv6(addr)
	case "ipv4":
		return normalizeIPv4(addr)
	}
	return checkHostname(addr)
}

// validateHost is typedefs.Host.
func ValidateHost(host string) string {
	a, err := NormalizeIP(host)
	if err != "" && err != "invalid port number" {
		return "invalid value: " + host
	}
	if err == "invalid port number" || a.Port >= 0 {
		return "must not have a port"
	}
	return ""
}

// ValidateHostWithOptionalPort is typedefs.host_with_optional_port.
func ValidateHostWithOptionalPort(host string) string {
	_, err := NormalizeIP(host)
	return err
}

// ValidateSNI is typedefs.sni.
func ValidateSNI(host string) string {
	return sniCheck(host, host)
}

func sniCheck(host, shown string) string {
	a, err := NormalizeIP(host)
	if err != "" && err != "invalid port number" {
		return "invalid value: " + shown
	}
	if err == "" && a.Type != "name" {
		return "must not be an IP"
	}
	if err == "invalid port number" || a.Port >= 0 {
		return "must not have a port"
	}
	return ""
}

// ValidateWildcardHost is typedefs.wildcard_host.
func ValidateWildcardHost(host string) string {
	if idx := strings.IndexByte(host, '*'); idx >= 0 {
		if idx != 0 && idx != len(host)-1 {
			return "wildcard must be leftmost or rightmost character"
		}
		if strings.Count(host, "*") > 1 {
			return "only one wildcard must be specified"
		}
		host = strings.Replace(host, "*", "wildcard", 1)
	}
	// Kong reports the substituted host in "invalid value" errors.
	return sniCheck(host, host)
}

// ValidateIPOrCIDR is typedefs.ip_or_cidr.
func ValidateIPOrCIDR(s string) string {
	if isValidIPOrCIDR(s) {
		return ""
	}
	return "invalid ip or cidr range: '" + s + "'"
}

func isValidIP(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Zone() == ""
}

func isValidIPOrCIDR(s string) bool {
	if isValidIP(s) {
		return true
	}
	ip, prefix, ok := strings.Cut(s, "/")
	if !ok || !isDigits(prefix) || (len(prefix) > 1 && prefix[0] == '0') {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" {
		return false
	}
	n, _ := strconv.Atoi(prefix)
	if a.Is4() {
		return n <= 32
	}
	return n <= 128
}

// ValidUTF8 mirrors kong/tools/string.lua validate_utf8, including its
// byte ranges, and returns the 1-based position of the first bad byte.
func ValidUTF8(s string) (bool, int) {
	in := func(c byte, lo, hi byte) bool { return c >= lo && c <= hi }
	at := func(i, n int) bool { return i+n <= len(s) }
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c <= 127:
			i++
		case in(c, 194, 223) && at(i, 2) && in(s[i+1], 123, 191):
			i += 2
		case at(i, 3) && ((c == 224 && in(s[i+1], 160, 191)) ||
			(in(c, 225, 236) && in(s[i+1], 128, 191)) ||
			(c == 237 && in(s[i+1], 128, 159)) ||
			(in(c, 238, 239) && in(s[i+1], 128, 191))) && in(s[i+2], 128, 191):
			i += 3
		case at(i, 4) && ((c == 240 && in(s[i+1], 144, 191)) ||
			(in(c, 241, 243) && in(s[i+1], 128, 191)) ||
			(c == 244 && in(s[i+1], 128, 143))) && in(s[i+2], 128, 191) && in(s[i+3], 128, 191):
			i += 4
		default:
			return false, i + 1
		}
	}
	return true, 0
}

func utf8Error(s string) string {
	if ok, pos := ValidUTF8(s); !ok {
		return "invalid utf-8 character sequence detected at position " + strconv.Itoa(pos)
	}
	return ""
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// ValidateUTF8Name is typedefs.utf8_name.
func ValidateUTF8Name(name string) string {
	if err := utf8Error(name); err != "" {
		return err
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(isAlnum(c) || c == '.' || c == '-' || c == '_' || c == '~' || (c >= 128 && c <= 244)) {
			return "invalid value '" + name + "': the only accepted ascii characters are alphanumerics or ., -, _, and ~"
		}
	}
	return ""
}

// ValidateTag is typedefs.tag.
func ValidateTag(tag string) string {
	if err := utf8Error(tag); err != "" {
		return err
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !(c >= 32 && c <= 126 && c != ',' && c != '/' || c >= 128 && c <= 244) {
			return "invalid tag '" + tag + "': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"
		}
	}
	return ""
}

func isPathByte(c byte) bool {
	return isAlnum(c) || strings.IndexByte(".-_~/%:@!$&'()*+,;=", c) >= 0
}

// ValidatePath is the custom validator of typedefs.path.
func ValidatePath(path string) string {
	for i := 0; i < len(path); i++ {
		if !isPathByte(path[i]) {
			return "invalid path: '" + path + "' (characters outside of the reserved list of RFC 3986 found)"
		}
	}
	return PercentError(path)
}

// PercentError reports the first bad %-escape of a path, as Kong's path
// typedefs do, or "".
func PercentError(path string) string {
	for i := 0; i < len(path); i++ {
		if path[i] != '%' {
			continue
		}
		if i+2 < len(path) && isHex(path[i+1:i+3]) {
			i += 2
			continue
		}
		end := min(i+3, len(path))
		// Kong reports the '%' and up to two following characters, after
		// valid escapes were replaced by three placeholder bytes.
		return "invalid url-encoded value: '" + path[i:end] + "'"
	}
	return ""
}

// ValidateHeaderName is kong/tools/http.lua validate_header_name.
func ValidateHeaderName(name string) string {
	if name == "" {
		return "no header name provided"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(isAlnum(c) || c == '-' || c == '_') {
			return "bad header name '" + name + "', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
		}
	}
	return ""
}

// ValidateCookieName is kong/tools/http.lua validate_http_token.
func ValidateCookieName(name string) string {
	if name == "" {
		return "no token provided"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < 32 || c == 127 || strings.IndexByte(" \t()<>@,;:\\\"/?={}[]", c) >= 0 {
			return "contains one or more invalid characters. ASCII control characters (0-31;127), space, tab and the characters ()<>@,;:\\\"/?={}[] are not allowed."
		}
	}
	return ""
}
