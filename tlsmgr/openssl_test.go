package tlsmgr

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

var subjectLine = regexp.MustCompile(`(?m)^subject=(.*)$`)

// TestOpenSSLClient checks certificate selection with a non-Go client,
// which can also send SNI values Go clients never send (IP literals).
func TestOpenSSLClient(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed; CI installs it")
	}
	addrs := map[bool]string{}
	for _, star := range []bool{false, true} {
		m, err := New(kongSNIs(t, star))
		if err != nil {
			t.Fatal(err)
		}
		addrs[star] = serveTLS(t, m.ServerConfig())
	}
	tests := []struct {
		name string
		star bool
		args []string
		want string
	}{
		{"exact", false, []string{"-servername", "exact.test"}, "sni exact.test"},
		{"left wildcard", false, []string{"-servername", "a.wildcard.com"}, "sni *.wildcard.com"},
		{"right wildcard", false, []string{"-servername", "wildcard.eu"}, "sni wildcard.*"},
		{"no SNI", false, []string{"-noservername"}, "default"},
		{"no SNI ignores catch-all", true, []string{"-noservername"}, "default"},
		{"IP SNI", false, []string{"-servername", "192.0.2.1"}, "default"},
		{"IP SNI reaches catch-all", true, []string{"-servername", "192.0.2.1"}, "sni *"},
		{"TLS 1.2", false, []string{"-tls1_2", "-servername", "exact.test"}, "sni exact.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			args := append([]string{"s_client", "-connect", addrs[tt.star]}, tt.args...)
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Stdin = strings.NewReader("")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			match := subjectLine.FindSubmatch(out)
			if match == nil {
				t.Fatalf("no subject line in openssl output:\n%s", out)
			}
			// OpenSSL prints "CN = x" (3.0) or "CN=x" (3.2+).
			got := strings.ReplaceAll(string(match[1]), " ", "")
			if want := "CN=" + strings.ReplaceAll(tt.want, " ", ""); got != want {
				t.Errorf("subject = %q; want %q", got, want)
			}
		})
	}
}
