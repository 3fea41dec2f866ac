package errlog

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"testing"
)

func TestLineFormat(t *testing.T) {
	var buf bytes.Buffer
	l, log := New(&buf, LevelNotice)
	log.Info("below the level")
	log.Error("no Route found with those values", Conn(7), "client", netip.MustParseAddr("10.0.0.1"), "server", netip.MustParseAddrPort("127.0.0.1:5555"))
	log.Log(context.Background(), LevelNotice, "reload succeeded")
	log.With(Conn(9)).Log(context.Background(), LevelCrit, "accept() failed", "upstream", `"127.0.0.1:80"`)
	l.SetLevel(LevelDebug)
	log.Debug("now written")
	pid := os.Getpid()
	want := []string{
		fmt.Sprintf(`\[error\] %d#0: \*7 no Route found with those values, client: 10\.0\.0\.1, server: 127\.0\.0\.1:5555`, pid),
		fmt.Sprintf(`\[notice\] %d#0: reload succeeded`, pid),
		fmt.Sprintf(`\[crit\] %d#0: \*9 accept\(\) failed, upstream: "127\.0\.0\.1:80"`, pid),
		fmt.Sprintf(`\[debug\] %d#0: now written`, pid),
	}
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != len(want) {
		t.Fatalf("%d lines; want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if !regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ` + w + `$`).Match(lines[i]) {
			t.Errorf("line %d = %q; want %s", i, lines[i], w)
		}
	}
}

func TestLevels(t *testing.T) {
	for _, name := range []string{"debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"} {
		if got := LevelName(ParseLevel(name)); got != name {
			t.Errorf("LevelName(ParseLevel(%q)) = %q", name, got)
		}
	}
	if ParseLevel("loud") != LevelNotice {
		t.Error("an unknown level name is not notice")
	}
	// ngx.STDERR .. ngx.DEBUG
	want := []string{"emerg", "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"}
	for code, w := range want {
		if got := LevelName(NginxLevel(code)); got != w {
			t.Errorf("NginxLevel(%d) = %s; want %s", code, got, w)
		}
	}
}
