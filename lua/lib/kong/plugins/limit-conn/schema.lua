-- limit-conn: at most max_connections sessions in progress per key, on
-- the node or across a fleet sharing a Redis.
local typedefs = require "kong.db.schema.typedefs"
local limit_by = require "gong.limit_by"

-- check refuses policy cluster: a session in progress must stop counting
-- when its node dies, which Redis's key expiry gives and database rows
-- would not without a write per session and a heartbeat.
local function check(config)
  if config.policy == "cluster" then
    return nil, "policy 'cluster' is not supported by limit-conn: it counts rate windows only, "
      .. "not sessions in progress; use 'local', or 'redis' to share the count across nodes"
  end
  return limit_by.check(config)
end

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
        custom_validator = check,
        shorthand_fields = limit_by.redis_aliases("limit-conn"),
    } },
  },
  entity_checks = limit_by.redis_required(),
}
