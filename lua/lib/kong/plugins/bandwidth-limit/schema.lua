-- bandwidth-limit: paces the bytes of a session (it delays reads and
-- never drops bytes).
local typedefs = require "kong.db.schema.typedefs"

local function rate(what)
  return { type = "integer", gt = 0, description = "Bytes per second " .. what .. "." }
end

return {
  name = "bandwidth-limit",
  fields = {
    { protocols = typedefs.protocols { default = { "tcp", "tls", "tls_passthrough" } } },
    { config = {
        type = "record",
        fields = {
          { downstream_rate = rate("to the client, per session") },
          { upstream_rate = rate("from the client, per session") },
          { aggregate_rate = rate("to the client, shared by every session of one key on the node") },
          { limit_by = { type = "string", default = "ip", one_of = { "ip", "service", "route", "sni", "global" },
              description = "The key aggregate_rate is shared by." } },
          { burst = { type = "integer", gt = 0, default = 65536,
              description = "The most bytes a bucket lets through at once." } },
        },
    } },
  },
  entity_checks = {
    { at_least_one_of = { "config.downstream_rate", "config.upstream_rate", "config.aggregate_rate" } },
  },
}
