-- The redis record the limit plugins share, with Kong's field names and
-- defaults: where the counters live when policy is "redis".
local typedefs = require "kong.db.schema.typedefs"

return {
  config_schema = {
    type = "record",
    description = "The Redis that holds the counters when policy is redis.",
    fields = {
      { host = typedefs.host },
      { port = typedefs.port { default = 6379 } },
      { timeout = typedefs.timeout { default = 2000 } },
      { username = { type = "string", referenceable = true,
          description = "The ACL user to authenticate as (Redis 6 or later); without it, only the password is sent." } },
      { password = { type = "string", len_min = 0, encrypted = true, referenceable = true,
          description = "The password to authenticate with; without it, no AUTH is sent." } },
      { database = { type = "integer", default = 0, description = "The Redis database number." } },
      { ssl = { type = "boolean", required = false, default = false, description = "Connect to Redis over TLS." } },
      { ssl_verify = { type = "boolean", required = false, default = false,
          description = "Verify the Redis server's certificate against lua_ssl_trusted_certificate." } },
      { server_name = typedefs.sni { required = false } },
    },
  },
}
