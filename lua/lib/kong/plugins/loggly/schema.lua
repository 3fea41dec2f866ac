-- loggly: the serialized session to Loggly's syslog endpoint over UDP.
local typedefs = require "kong.db.schema.typedefs"

local function severity()
  return { type = "string", default = "info",
           one_of = { "debug", "info", "notice", "warning", "err", "crit", "alert", "emerg" } }
end

return {
  name = "loggly",
  fields = {
    { protocols = typedefs.protocols },
    { config = {
        type = "record",
        fields = {
          { host = typedefs.host({ default = "logs-01.loggly.com" }) },
          { port = typedefs.port({ default = 514 }) },
          { key = { type = "string", required = true, encrypted = true, referenceable = true } },
          { tags = { type = "set", default = { "kong" }, elements = { type = "string" } } },
          { log_level = severity() },
          { successful_severity = severity() },
          { client_errors_severity = severity() },
          { server_errors_severity = severity() },
          { timeout = { type = "number", default = 10000 } },
          { custom_fields_by_lua = typedefs.lua_code },
        },
    } },
  },
}
