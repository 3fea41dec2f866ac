-- limit-conn: at most max_connections sessions in progress per key, on
-- the node or across a fleet sharing a Redis.
local typedefs = require "kong.db.schema.typedefs"
local limit_by = require "gong.limit_by"

return {
  name = "limit-conn",
  fields = {
    { protocols = typedefs.protocols { default = { "tcp", "tls", "udp", "tls_passthrough" } } },
    { config = {
        type = "record",
        fields = {
          { max_connections = { type = "integer", required = true, gt = 0,
              description = "The most sessions in progress per key." } },
          { limit_by = limit_by.field(true) },
          { policy = limit_by.policy() },
          { fault_tolerant = { type = "boolean", required = true, default = true,
              description = "When the counter store fails, let sessions through (true) or refuse them with status 500 (false)." } },
          { redis = limit_by.redis },
          { error_code = { type = "number", default = 503, gt = 0,
              description = "The session status of a refused session (nginx's limit_conn_status)." } },
        },
        custom_validator = limit_by.check,
        shorthand_fields = limit_by.redis_aliases("limit-conn"),
    } },
  },
  entity_checks = limit_by.redis_required(),
}
