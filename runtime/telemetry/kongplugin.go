package telemetry

import (
	"maps"
	"time"

	"github.com/gong-proxy/gong/runtime/conf"
)

// WithOpenTelemetryPlugin returns the tracing settings once a global
// opentelemetry plugin entry of kong.yml (its config, nil when there is
// none) is applied, as a Kong user configures tracing: the plugin names
// the collector (traces_endpoint, OTLP over HTTP), its headers, resource
// attributes, batching and sampling rate; tracing_instrumentations says
// what is traced, and off still traces the connection span, as Kong's
// plugin records its request span. Without a collector from either the
// plugin or tracing_otlp_endpoint, nothing is traced.
func WithOpenTelemetryPlugin(c conf.Tracing, plugin map[string]any) conf.Tracing {
	if plugin != nil {
		if ep, _ := plugin["traces_endpoint"].(string); ep != "" {
			c.OTLPEndpoint, c.OTLPProtocol = ep, "http/protobuf"
			c.OTLPHeaders = mergeStrings(c.OTLPHeaders, plugin["headers"])
		}
		c.ResourceAttributes = mergeStrings(c.ResourceAttributes, plugin["resource_attributes"])
		if queue, ok := plugin["queue"].(map[string]any); ok {
			if n, ok := queue["max_batch_size"].(float64); ok && n >= 1 {
				c.BatchSpanCount = int(n)
			}
			if d, ok := queue["max_coalescing_delay"].(float64); ok && d > 0 {
				c.BatchFlushDelay = time.Duration(d * float64(time.Second))
			}
		}
		// The deprecated fields win over the queue, as in Kong.
		if n, ok := plugin["batch_span_count"].(float64); ok && n >= 1 {
			c.BatchSpanCount = int(n)
		}
		if d, ok := plugin["batch_flush_delay"].(float64); ok && d > 0 {
			c.BatchFlushDelay = time.Duration(d * float64(time.Second))
		}
		if rate, ok := plugin["sampling_rate"].(float64); ok {
			c.SamplingRate = rate
		}
		if len(c.Instrumentations) == 0 {
			c.Instrumentations = []string{"connection"}
		}
	}
	if c.OTLPEndpoint == "" {
		c.Instrumentations = nil
	}
	return c
}

// mergeStrings returns base with the string values of a plugin's map
// field added, without modifying base.
func mergeStrings(base map[string]string, field any) map[string]string {
	m, ok := field.(map[string]any)
	if !ok || len(m) == 0 {
		return base
	}
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}
