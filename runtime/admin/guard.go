package admin

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The Admin API's defences against web pages the operator visits. A page
// on another site can make the browser send requests to a loopback Admin
// API: forms (POST with url-encoded or multipart bodies, or text/plain)
// go without a CORS preflight, and DNS rebinding points a name the page
// controls at 127.0.0.1 so that even its reads count as same-origin.
//
//   - hostAllowed refuses a Host that is neither an address of the
//     connection's listener nor a name in admin_allowed_hosts: a rebound
//     name is never either.
//   - net/http's CrossOriginProtection refuses state-changing requests
//     that a browser marks as cross-origin (Sec-Fetch-Site, or an Origin
//     that is not the Host).
//   - bodyTypeAllowed takes bodies only with the content types Kong's
//     Admin API takes, so text/plain, which a form can send, is refused.

// hostAllowed answers 403 to a request whose Host is not an address the
// connection reached nor one of hosts ("*" allows any). Requests without
// Host (HTTP/1.0) come from no browser and pass.
func hostAllowed(hosts []string, next http.Handler) http.Handler {
	allowAll := false
	allowed := map[string]bool{}
	for _, h := range hosts {
		allowAll = allowAll || h == "*"
		allowed[strings.ToLower(strings.Trim(h, "[]"))] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allowAll || r.Host == "" || allowed[requestHost(r.Host)] || isLocalAddress(r) {
			next.ServeHTTP(w, r)
			return
		}
		writeMessage(w, http.StatusForbidden, fmt.Sprintf("Host '%s' is not an address of this Admin API "+
			"nor a name in admin_allowed_hosts", r.Host))
	})
}

// requestHost is Host without its port, in lower case.
func requestHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.Trim(host, "[]"))
}

// isLocalAddress reports whether r's Host is the IP address the request's
// connection reached.
func isLocalAddress(r *http.Request) bool {
	ip, err := netip.ParseAddr(requestHost(r.Host))
	if err != nil {
		return false
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	la, err := netip.ParseAddrPort(local.String())
	return err == nil && la.Addr().Unmap() == ip.Unmap()
}

// sameOrigin answers 403 to state-changing requests a browser sends from
// another origin. Non-browser clients send neither Origin nor
// Sec-Fetch-Site and pass.
func sameOrigin(next http.Handler) http.Handler {
	p := http.NewCrossOriginProtection()
	p.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeMessage(w, http.StatusForbidden, "cross-origin request refused: the Admin API accepts "+
			r.Method+" only from the same origin or from clients that are not browsers")
	}))
	return p.Handler(next)
}

// bodyMethods are the methods whose body Kong's Admin API reads.
var bodyMethods = map[string]bool{http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true}

// bodyTypeAllowed answers, as Kong does, 415 to a POST, PUT or PATCH with
// a body whose content type is not JSON, a form or multipart (or YAML for
// /config), and 400 to one with several Content-Type headers.
func bodyTypeAllowed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !bodyMethods[r.Method] {
			next.ServeHTTP(w, r)
			return
		}
		types := r.Header.Values("Content-Type")
		switch {
		case len(types) > 1:
			writeMessage(w, http.StatusBadRequest, "Multiple Content-Type headers not allowed")
		case len(types) == 0 && r.ContentLength == 0:
			next.ServeHTTP(w, r)
		case len(types) == 1 && acceptedType(types[0], r.URL.Path == "/config"):
			next.ServeHTTP(w, r)
		default:
			writeMessage(w, http.StatusUnsupportedMediaType, "Unsupported Media Type")
		}
	})
}

// acceptedType reports whether Kong's Admin API reads a body of content
// type ct; YAML only where a whole configuration is posted.
func acceptedType(ct string, yamlToo bool) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "application/json", "multipart/form-data", "application/x-www-form-urlencoded":
		return true
	case "application/yaml", "text/yaml", "application/x-yaml":
		return yamlToo
	}
	return false
}
