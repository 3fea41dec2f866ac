-- datadog: session metrics to a DogStatsD agent, batched by a queue.
local typedefs = require "kong.db.schema.typedefs"

local STAT_NAMES = { "kong_latency", "latency", "request_count", "request_size", "response_size", "upstream_latency" }
local STAT_TYPES = { "counter", "gauge", "histogram", "meter", "set", "timer", "distribution" }

local DEFAULT_METRICS = {}
for _, m in ipairs({
  { "request_count", "counter" }, { "latency", "timer" }, { "request_size", "timer" },
  { "response_size", "timer" }, { "upstream_latency", "timer" }, { "kong_latency", "timer" },
}) do
  DEFAULT_METRICS[#DEFAULT_METRICS + 1] = {
    name = m[1], stat_type = m[2], sample_rate = m[2] == "counter" and 1 or nil,
    tags = { "app:kong" }, consumer_identifier = "custom_id",
  }
end

local function deprecated(field, instead, old_default, kind)
  return { type = kind, deprecation = {
    message = "datadog: config." .. field .. " " .. instead, removal_in_version = "4.0", old_default = old_default } }
end

return {
  name = "datadog",
  fields = {
    { protocols = typedefs.protocols },
    { config = {
        type = "record",
        fields = {
          { host = typedefs.host({ referenceable = true, default = "localhost" }) },
          { port = typedefs.port({ default = 8125 }) },
          { prefix = { type = "string", default = "kong" } },
          { service_name_tag = { type = "string", default = "name" } },
          { status_tag = { type = "string", default = "status" } },
          { consumer_tag = { type = "string", default = "consumer" } },
          { retry_count = deprecated("retry_count", "no longer works, please use config.queue.max_retry_time instead", 10, "integer") },
          { queue_size = deprecated("queue_size", "is deprecated, please use config.queue.max_batch_size instead", 1, "integer") },
          { flush_timeout = deprecated("flush_timeout", "is deprecated, please use config.queue.max_coalescing_delay instead", 2, "number") },
          { queue = typedefs.queue },
          { metrics = { type = "array", required = true, default = DEFAULT_METRICS,
              elements = {
                type = "record",
                fields = {
                  { name = { type = "string", required = true, one_of = STAT_NAMES } },
                  { stat_type = { type = "string", required = true, one_of = STAT_TYPES } },
                  { tags = { type = "array", elements = { type = "string", match = "^.*[^:]$" } } },
                  { sample_rate = { type = "number", between = { 0, 1 } } },
                  { consumer_identifier = { type = "string", one_of = { "consumer_id", "custom_id", "username" } } },
                },
                entity_checks = {
                  { conditional = {
                      if_field = "stat_type", if_match = { one_of = { "counter", "gauge" } },
                      then_field = "sample_rate", then_match = { required = true } } },
                },
              },
          } },
        },
    } },
  },
}
