package admin

import (
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/gong-proxy/gong/runtime/declarative"
)

// TokenHeader carries the admin token (admin_token), as Kong Enterprise's
// RBAC token does.
const TokenHeader = "Kong-Admin-Token"

// Options configure the Admin API.
type Options struct {
	// Token, when set, must come with every request in TokenHeader.
	Token string
	// Node is what GET / says of the node.
	Node Node
	// AllowedHosts are the names (or addresses) requests may carry in
	// Host besides the address they reached; "*" allows any.
	AllowedHosts []string
	// Store, in database mode, takes the entity writes; nil is DB-less.
	Store EntityStore
	// Log receives the errors answered as 500 (the database's, for
	// example), which the answer does not show; nil discards them.
	Log *slog.Logger
}

// Node identifies the node in GET /.
type Node struct {
	ID         string
	Version    string // the Kong version whose Admin API gong answers as
	LuaVersion string
	Hostname   string
	PID        int
}

// api serves the Admin API from a Backend.
type api struct {
	b    Backend
	opts Options
	idx  indexCache
}

// New returns the Admin API handler.
func New(b Backend, opts Options) http.Handler {
	a := &api{b: b, opts: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.root)
	mux.HandleFunc("GET /status", a.status)
	mux.HandleFunc("GET /config", a.getConfig)
	mux.HandleFunc("POST /config", a.postConfig)
	mux.HandleFunc("GET /plugins/enabled", a.enabledPlugins)
	mux.HandleFunc("GET /schemas/plugins/{name}", a.pluginSchema)
	mux.HandleFunc("POST /schemas/{entity}/validate", a.validate)
	mux.HandleFunc("GET /schemas/{entity}", a.entitySchema)
	mux.HandleFunc("GET /upstreams/{key}/health", a.health)
	for health, healthy := range map[string]bool{"healthy": true, "unhealthy": false} {
		for _, method := range []string{"PUT", "POST"} { // POST: older Kong's, which go-kong sends
			mux.HandleFunc(method+" /upstreams/{key}/targets/{target}/"+health, a.setHealth(healthy))
			mux.HandleFunc(method+" /upstreams/{key}/targets/{target}/{address}/"+health, a.setHealth(healthy))
		}
		mux.HandleFunc("/upstreams/{key}/targets/{target}/"+health, methodNotAllowed)
		mux.HandleFunc("/upstreams/{key}/targets/{target}/{address}/"+health, methodNotAllowed)
	}
	mux.HandleFunc("GET /sessions", a.listSessions)
	mux.HandleFunc("DELETE /sessions/{id}", a.closeSession)
	a.entityRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { notFound(w) })
	var h http.Handler = sameOrigin(bodyTypeAllowed(mux))
	if opts.Token != "" {
		h = tokenRequired(opts.Token, h)
	}
	return hostAllowed(opts.AllowedHosts, h)
}

// tokenRequired answers 401 to requests without the token.
func tokenRequired(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get(TokenHeader)
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			writeMessage(w, http.StatusUnauthorized, "Invalid credentials. Token or User credentials required")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Kong's error codes (kong/db/errors.lua) for the errors the API returns.
const (
	codeSchemaViolation      = 2
	codeInvalidOffset        = 7
	codeInvalidSize          = 9
	codeInvalidOptions       = 11
	codeOperationUnsupported = 12
	codeDeclarativeConfig    = 14
)

// kongError is Kong's error body for database errors.
type kongError struct {
	Code      int                     `json:"code"`
	Name      string                  `json:"name"`
	Message   string                  `json:"message"`
	Fields    any                     `json:"fields,omitempty"`
	Flattened []declarative.FlatError `json:"flattened_errors,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"message":"An unexpected error occurred"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(data)
}

func writeMessage(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}

func notFound(w http.ResponseWriter) { writeMessage(w, http.StatusNotFound, "Not found") }

// methodNotAllowed answers a method a path does not take, as Kong does.
func methodNotAllowed(w http.ResponseWriter, _ *http.Request) {
	writeMessage(w, http.StatusMethodNotAllowed, "Method not allowed")
}
