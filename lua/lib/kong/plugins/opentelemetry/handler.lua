-- opentelemetry: Kong's tracing plugin entry. gong's tracer is built in
-- Go (docs/observability.md); a global instance of this plugin configures
-- it: where spans go, with which headers, resource attributes, batching
-- and sampling. No phase handler: it costs nothing per session.
return {
  PRIORITY = 14,
  VERSION = kong.version,
}
