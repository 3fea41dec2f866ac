-- prometheus: the fields of Kong's plugin (kong/plugins/prometheus), read
-- by gong's built-in exporter.
local typedefs = require "kong.db.schema.typedefs"

return {
  name = "prometheus",
  fields = {
    { protocols = typedefs.protocols },
    { config = {
        type = "record",
        fields = {
          { per_consumer = { type = "boolean", default = false } },
          { status_code_metrics = { type = "boolean", default = false } },
          { ai_metrics = { type = "boolean", default = false } },
          { latency_metrics = { type = "boolean", default = false } },
          { bandwidth_metrics = { type = "boolean", default = false } },
          { upstream_health_metrics = { type = "boolean", default = false } },
          { wasm_metrics = { type = "boolean", default = false } },
        },
    } },
  },
}
