package runtime

import (
	"testing"

	"github.com/gong-proxy/gong/runtime/declarative"
)

// The balancer:post_health payload is Kong's, both ways.
func TestHealthMarkPayload(t *testing.T) {
	u := &declarative.Upstream{ID: "6b4e2b5e-5b3c-4b8e-9a53-2f0b5d0b7c11", Name: "pool"}
	for _, c := range []struct {
		target, address string
		healthy         bool
		want            string
	}{
		{"10.0.0.1:8080", "", false, "10.0.0.1||8080|0|6b4e2b5e-5b3c-4b8e-9a53-2f0b5d0b7c11|pool"},
		{"example.test:9000", "10.0.0.2", true, "example.test|10.0.0.2|8000|1|6b4e2b5e-5b3c-4b8e-9a53-2f0b5d0b7c11|pool"},
		{"example.test:9000", "10.0.0.2:9001", true, "example.test|10.0.0.2|9001|1|6b4e2b5e-5b3c-4b8e-9a53-2f0b5d0b7c11|pool"},
		{"[::1]:8080", "[::1]:8080", false, "[::1]|::1|8080|0|6b4e2b5e-5b3c-4b8e-9a53-2f0b5d0b7c11|pool"},
	} {
		m := newHealthMark(u, c.target, c.address, c.healthy)
		if got := m.String(); got != c.want {
			t.Errorf("mark of %s %q: %q; want %q", c.target, c.address, got, c.want)
		}
		back, err := parseHealthMark(c.want)
		if err != nil || back != m {
			t.Errorf("parseHealthMark(%q) = %+v, %v; want %+v", c.want, back, err, m)
		}
	}
	// The upstream's name is the rest of the line, as Kong's pattern has it.
	if m, err := parseHealthMark("h||80|1|id|a|b"); err != nil || m.upstreamName != "a|b" {
		t.Errorf("a name with a bar: %+v, %v", m, err)
	}
	for _, bad := range []string{"", "h|ip|80|1|id", "h||eighty|1|id|n", "|ip|80|1|id|n"} {
		if _, err := parseHealthMark(bad); err == nil {
			t.Errorf("parseHealthMark(%q) accepted", bad)
		}
	}
}
