package conf

import (
	"slices"
	"strings"
	"testing"
)

// TestKongTracingInstrumentations: all without a collector is valid (a
// kong.yml opentelemetry plugin may name it); Kong's names map to gong's
// or draw a warning; unknown names and off with others are refused.
func TestKongTracingInstrumentations(t *testing.T) {
	c, warnings, err := load(t, "tracing_instrumentations = all\n")
	if err != nil || len(c.Tracing.Instrumentations) == 0 || c.Tracing.OTLPEndpoint != "" {
		t.Fatalf("all without an endpoint: %v, %v", err, c)
	}
	c, warnings, err = load(t, "tracing_instrumentations = request, router, plugin_access, plugin_rewrite, db_query, dns_query\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"connection", "router", "plugins"}; !slices.Equal(c.Tracing.Instrumentations, want) {
		t.Errorf("instrumentations = %v; want %v", c.Tracing.Instrumentations, want)
	}
	var msgs []string
	for _, w := range warnings {
		msgs = append(msgs, w.Msg)
	}
	if want := "tracing_instrumentations: 'db_query' has no stream counterpart in gong and traces nothing\n" +
		"tracing_instrumentations: 'dns_query' has no stream counterpart in gong and traces nothing"; strings.Join(msgs, "\n") != want {
		t.Errorf("warnings = %q", msgs)
	}
	for text, want := range map[string]string{
		"tracing_instrumentations = everything\n":  "invalid tracing type: everything",
		"tracing_instrumentations = off, router\n": "invalid tracing types: off, other types are mutually exclusive",
	} {
		if _, _, err := load(t, text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v; want %q", text, err, want)
		}
	}
}
