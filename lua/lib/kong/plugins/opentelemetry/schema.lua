-- opentelemetry: the fields of Kong's plugin (kong/plugins/opentelemetry)
-- that configure gong's tracer, plus those it accepts for compatibility.
local typedefs = require "kong.db.schema.typedefs"

local attributes = {
  type = "map",
  keys = { type = "string", required = true },
  values = { type = "string", required = true },
}

return {
  name = "opentelemetry",
  fields = {
    { protocols = typedefs.protocols },
    { config = {
        type = "record",
        fields = {
          { traces_endpoint = typedefs.url { referenceable = true } },
          { logs_endpoint = typedefs.url { referenceable = true } },
          { headers = { type = "map", keys = typedefs.header_name,
              values = { type = "string", referenceable = true } } },
          { resource_attributes = attributes },
          { queue = typedefs.queue },
          { batch_span_count = { type = "integer" } },
          { batch_flush_delay = { type = "integer" } },
          { connect_timeout = typedefs.timeout { default = 1000 } },
          { send_timeout = typedefs.timeout { default = 5000 } },
          { read_timeout = typedefs.timeout { default = 5000 } },
          { http_response_header_for_traceid = { type = "string" } },
          { header_type = { type = "string", default = "preserve",
              one_of = { "preserve", "ignore", "b3", "b3-single", "w3c", "jaeger", "ot", "aws", "gcp", "datadog", "instana" } } },
          { sampling_rate = { type = "number", between = { 0, 1 } } },
          { propagation = typedefs.propagation },
        },
    } },
  },
}
