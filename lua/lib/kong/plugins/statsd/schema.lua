-- statsd: session metrics to a StatsD server, batched by a queue.
local typedefs = require "kong.db.schema.typedefs"

local METRIC_NAMES = {
  "kong_latency", "latency", "request_count", "request_per_user",
  "request_size", "response_size", "status_count", "status_count_per_user",
  "unique_users", "upstream_latency",
  "status_count_per_workspace", "status_count_per_user_per_route",
  "shdict_usage",
}
local STAT_TYPES = { "counter", "gauge", "histogram", "meter", "set", "timer" }
local CONSUMER_IDENTIFIERS = { "consumer_id", "custom_id", "username" }
local SERVICE_IDENTIFIERS = { "service_id", "service_name", "service_host", "service_name_or_host" }
local WORKSPACE_IDENTIFIERS = { "workspace_id", "workspace_name" }

-- Kong's default metrics: counters are sampled at 1.
local DEFAULT_METRICS = {}
for _, m in ipairs({
  { "request_count", "counter" }, { "latency", "timer" }, { "request_size", "counter" },
  { "status_count", "counter" }, { "response_size", "counter" }, { "unique_users", "set" },
  { "request_per_user", "counter" }, { "upstream_latency", "timer" }, { "kong_latency", "timer" },
  { "status_count_per_user", "counter" }, { "status_count_per_workspace", "counter" },
  { "status_count_per_user_per_route", "counter" }, { "shdict_usage", "gauge" },
}) do
  local sampled = m[2] == "counter" or m[2] == "gauge"
  DEFAULT_METRICS[#DEFAULT_METRICS + 1] = { name = m[1], stat_type = m[2], sample_rate = sampled and 1 or nil }
end

local function deprecated(field, instead, old_default, kind)
  return { type = kind, deprecation = {
    message = "statsd: config." .. field .. " " .. instead, removal_in_version = "4.0", old_default = old_default } }
end

return {
  name = "statsd",
  fields = {
    { protocols = typedefs.protocols },
    { config = {
        type = "record",
        fields = {
          { host = typedefs.host({ default = "localhost" }) },
          { port = typedefs.port({ default = 8125 }) },
          { prefix = { type = "string", default = "kong" } },
          { metrics = { type = "array", default = DEFAULT_METRICS,
              elements = {
                type = "record",
                fields = {
                  { name = { type = "string", required = true, one_of = METRIC_NAMES } },
                  { stat_type = { type = "string", required = true, one_of = STAT_TYPES } },
                  { sample_rate = { type = "number", gt = 0 } },
                  { consumer_identifier = { type = "string", one_of = CONSUMER_IDENTIFIERS } },
                  { service_identifier = { type = "string", one_of = SERVICE_IDENTIFIERS } },
                  { workspace_identifier = { type = "string", one_of = WORKSPACE_IDENTIFIERS } },
                },
                entity_checks = {
                  { conditional = {
                      if_field = "stat_type", if_match = { one_of = { "counter", "gauge" } },
                      then_field = "sample_rate", then_match = { required = true } } },
                },
              },
          } },
          { allow_status_codes = { type = "array",
              elements = { type = "string", match = "^[0-9]+-[0-9]+$" } } },
          { udp_packet_size = { type = "number", between = { 0, 65507 }, default = 0 } },
          { use_tcp = { type = "boolean", default = false } },
          { hostname_in_prefix = { type = "boolean", default = false } },
          { consumer_identifier_default = { type = "string", required = true, default = "custom_id", one_of = CONSUMER_IDENTIFIERS } },
          { service_identifier_default = { type = "string", required = true, default = "service_name_or_host", one_of = SERVICE_IDENTIFIERS } },
          { workspace_identifier_default = { type = "string", required = true, default = "workspace_id", one_of = WORKSPACE_IDENTIFIERS } },
          { retry_count = deprecated("retry_count", "no longer works, please use config.queue.max_retry_time instead", 10, "integer") },
          { queue_size = deprecated("queue_size", "is deprecated, please use config.queue.max_batch_size instead", 1, "integer") },
          { flush_timeout = deprecated("flush_timeout", "is deprecated, please use config.queue.max_coalescing_delay instead", 2, "number") },
          { tag_style = { type = "string", required = false, one_of = { "dogstatsd", "influxdb", "librato", "signalfx" } } },
          { queue = typedefs.queue },
        },
    } },
  },
}
