// Package telemetry owns gong's observability: the OpenTelemetry tracer
// that records each connection as a span with children for its TLS
// handshake, route matches, plugin phases and upstream attempts, and the
// Prometheus series of Kong's stream metrics and gong's own. The runtime
// calls it at the connection's lifecycle points; it knows nothing of
// connections itself.
package telemetry
