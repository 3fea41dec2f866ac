-- prometheus: Kong's metrics plugin entry. gong records Kong's stream
-- series in Go for every session (docs/observability.md); this entry lets
-- a Kong kong.yml that enables the plugin load unchanged, and its config
-- selects the series gong exports. No phase handler: it costs nothing per
-- session.
return {
  PRIORITY = 13,
  VERSION = kong.version,
}
