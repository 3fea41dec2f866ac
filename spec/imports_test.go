package spec

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/gong-proxy/gong"

// allowedImports is the import direction of docs/architecture.md: for each package, the
// gong packages and the third-party modules it may import. Anything else,
// the standard library aside, fails the test.
var allowedImports = map[string][]string{
	"":                         {},
	"cmd/gong":                 {"runtime", "runtime/conf", "runtime/stream", "runtime/declarative", "runtime/store/postgres", "examples", "golang.org/x/sys/unix"},
	"runtime":                  {"runtime/conf", "runtime/declarative", "runtime/errlog", "runtime/stream", "runtime/runloop", "runtime/telemetry", "runtime/admin", "runtime/limits", "runtime/store/postgres", "router", "tlsmgr", "vault", "pdk", "lua", "github.com/google/uuid"},
	"runtime/stream":           {"runtime/conf", "runtime/declarative", "runtime/errlog", "runtime/balancer", "runtime/telemetry", "router", "tlsmgr", "github.com/pires/go-proxyproto", "github.com/hashicorp/golang-lru/v2", "go.opentelemetry.io/otel", "golang.org/x/sys"},
	"runtime/runloop":          {"vault", "runtime/conf", "runtime/declarative", "runtime/errlog", "runtime/limits", "runtime/schema/luaschema", "runtime/stream", "runtime/telemetry", "tlsmgr", "pdk", "lua", "github.com/yuin/gopher-lua", "go.opentelemetry.io/otel"},
	"runtime/errlog":           {},
	"runtime/admin":            {"runtime/conf", "runtime/declarative", "go.yaml.in/yaml/v3", "github.com/google/uuid", "github.com/pires/go-proxyproto", "golang.org/x/net/netutil"},
	"runtime/conf":             {"", "vault"},
	"runtime/declarative":      {"vault", "runtime/schema", "go.yaml.in/yaml/v3", "github.com/BurntSushi/toml", "github.com/google/uuid"},
	"runtime/schema":           {"luanum", "github.com/yuin/gopher-lua/pm"},
	"runtime/schema/luaschema": {"runtime/schema", "lua", "luanum", "github.com/yuin/gopher-lua"},
	"runtime/balancer":         {"github.com/OneOfOne/xxhash", "github.com/miekg/dns", "github.com/hashicorp/golang-lru/v2", "golang.org/x/sync/singleflight"},
	"runtime/telemetry":        {"runtime/conf", "go.opentelemetry.io/otel", "github.com/prometheus/client_golang"},
	"runtime/limits":           {"pdk", "runtime/store/postgres", "github.com/redis/go-redis/v9", "github.com/google/uuid", "golang.org/x/time/rate"},
	"router":                   {"github.com/hashicorp/golang-lru/v2"},
	"tlsmgr":                   {},
	"vault":                    {"github.com/hashicorp/golang-lru/v2"},
	"pdk":                      {"lua", "luanum", "tlsmgr", "vault", "github.com/yuin/gopher-lua", "github.com/hashicorp/golang-lru/v2", "github.com/hashicorp/golang-lru/v2/simplelru", "github.com/dlclark/regexp2/v2"},
	"lua":                      {"luanum", "github.com/yuin/gopher-lua"},
	"luanum":                   {},
	"examples":                 {},
	"examples/tcpbin":          {},
	"spec":                     {},

	"runtime/store/postgres": {"runtime/conf", "runtime/declarative", "vault", "github.com/jackc/pgx/v5", "github.com/google/uuid", "go.yaml.in/yaml/v3"},

	// Packages that only tests import.
	"runtime/balancer/dnstest": {"github.com/miekg/dns"},
	"internal/testsvc":         {"github.com/jackc/pgx/v5"},
}

func TestImportDirection(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		allowed, known := allowedImports[pkg]
		if !known {
			t.Errorf("package %s is not in the import table of docs/architecture.md; add it with the imports it may have", fields[0])
			continue
		}
		for _, imp := range fields[1:] {
			switch {
			case imp == module || strings.HasPrefix(imp, module+"/"):
				rel := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
				if !slices.Contains(allowed, rel) {
					t.Errorf("%s imports %s: not allowed by the import direction of docs/architecture.md", fields[0], imp)
				}
			case strings.Contains(strings.Split(imp, "/")[0], "."):
				if !slices.ContainsFunc(allowed, func(a string) bool { return imp == a || strings.HasPrefix(imp, a+"/") }) {
					t.Errorf("%s imports %s: a dependency this package may not use", fields[0], imp)
				}
			}
		}
	}
}
