package declarative

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gong-proxy/gong/router"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testNow is the clock of every golden test, so timestamps are stable.
var testNow = time.Unix(1700000000, 0)

func parseAt(t *testing.T, data []byte, name string, opts Options) (*Config, error) {
	t.Helper()
	v, err := decode(data, name)
	if err != nil {
		return nil, err
	}
	return load(v, opts, testNow)
}

// optionsFor picks options from the file name: "traditional" and
// "expressions" select the router flavor, "plugins" enables a plugin list.
func optionsFor(name string) Options {
	var o Options
	switch {
	case strings.Contains(name, "traditional"):
		o.RouterFlavor = "traditional"
	case strings.Contains(name, "expressions"):
		o.RouterFlavor = "expressions"
	}
	o.RouteExpression = router.ValidateExpression
	if strings.Contains(name, "plugins") {
		o.Plugins = []string{"ip-restriction", "tcp-log"}
	}
	return o
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	golden := path + ".golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s: got\n%s\nwant\n%s", path, got, want)
	}
}

func TestGoodConfigs(t *testing.T) {
	eachConfig(t, "testdata/good", func(t *testing.T, f string, data []byte) {
		cfg, err := parseAt(t, data, f, optionsFor(f))
		if err != nil {
			t.Fatalf("Parse(%s) error:\n%v", f, err)
		}
		out, err := json.MarshalIndent(cfg, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		checkGolden(t, f, string(out)+"\n")
	})
}

func TestBadConfigs(t *testing.T) {
	eachConfig(t, "testdata/bad", func(t *testing.T, f string, data []byte) {
		_, err := parseAt(t, data, f, optionsFor(f))
		var de *Error
		if !errors.As(err, &de) {
			t.Fatalf("Parse(%s) = %v; want *Error", f, err)
		}
		flat, _ := json.MarshalIndent(de.Flattened, "", "  ")
		checkGolden(t, f, de.Error()+"\n----- flattened -----\n"+string(flat)+"\n")
	})
}

// eachConfig runs check in a subtest on each configuration in dir (its
// .golden files aside), with the file's path and contents.
func eachConfig(t *testing.T, dir string, check func(t *testing.T, f string, data []byte)) {
	files, _ := filepath.Glob(dir + "/*.*")
	for _, f := range files {
		if strings.HasSuffix(f, ".golden") {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			check(t, f, data)
		})
	}
}
