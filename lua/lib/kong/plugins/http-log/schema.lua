-- http-log: serialized sessions sent to an HTTP endpoint, batched by a
-- queue.
local typedefs = require "kong.db.schema.typedefs"
local url = require "socket.url"

local function forbid(pattern, name)
  return { pattern = pattern, err = "cannot contain '" .. name .. "' header" }
end

return {
  name = "http-log",
  fields = {
    { protocols = typedefs.protocols },
    { config = {
        type = "record",
        fields = {
          { http_endpoint = typedefs.url({ required = true, encrypted = true, referenceable = true }) },
          { method = { type = "string", default = "POST", one_of = { "POST", "PUT", "PATCH" } } },
          { content_type = { type = "string", default = "application/json",
                             one_of = { "application/json", "application/json; charset=utf-8" } } },
          { timeout = { type = "number", default = 10000 } },
          { keepalive = { type = "number", default = 60000 } },
          { retry_count = { type = "integer", deprecation = {
              message = "http-log: config.retry_count no longer works, please use config.queue.max_retry_time instead",
              removal_in_version = "4.0", old_default = 10 } } },
          { queue_size = { type = "integer", deprecation = {
              message = "http-log: config.queue_size is deprecated, please use config.queue.max_batch_size instead",
              removal_in_version = "4.0", old_default = 1 } } },
          { flush_timeout = { type = "number", deprecation = {
              message = "http-log: config.flush_timeout is deprecated, please use config.queue.max_coalescing_delay instead",
              removal_in_version = "4.0", old_default = 2 } } },
          { headers = { type = "map",
              keys = typedefs.header_name {
                match_none = {
                  forbid("^[Hh][Oo][Ss][Tt]$", "Host"),
                  forbid("^[Cc][Oo][Nn][Tt][Ee][Nn][Tt]%-[Ll][Ee][Nn][Gg][Tt][Hh]$", "Content-Length"),
                  forbid("^[Cc][Oo][Nn][Tt][Ee][Nn][Tt]%-[Tt][Yy][Pp][Ee]$", "Content-Type"),
                },
              },
              values = { type = "string", referenceable = true },
          } },
          { queue = typedefs.queue },
          { custom_fields_by_lua = typedefs.lua_code },
        },
        custom_validator = function(config)
          local parsed = url.parse(config.http_endpoint)
          if parsed.userinfo and type(config.headers) == "table" then
            for name in pairs(config.headers) do
              if name:lower() == "authorization" then
                return false, "specifying both an 'Authorization' header and user info in 'http_endpoint' is not allowed"
              end
            end
          end
          return true
        end,
    } },
  },
}
