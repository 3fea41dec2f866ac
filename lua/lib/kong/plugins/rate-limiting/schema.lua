-- rate-limiting for stream: Kong's plugin name and fields, counting new
-- TCP/TLS connections and new UDP sessions instead of requests.
local typedefs = require "kong.db.schema.typedefs"
local limit_by = require "gong.limit_by"

local PERIODS = { "second", "minute", "hour", "day", "month", "year" }

local function check(config)
  for i, lower in ipairs(PERIODS) do
    local v1 = config[lower]
    if type(v1) == "number" then
      for j = i + 1, #PERIODS do
        local upper = PERIODS[j]
        local v2 = config[upper]
        if type(v2) == "number" and v2 < v1 then
          return nil, string.format("The limit for %s(%.1f) cannot be lower than the limit for %s(%.1f)",
                                    upper, v2, lower, v1)
        end
      end
    end
  end
  if config.policy ~= "redis" and config.sync_rate ~= -1 then
    return nil, "sync_rate can only be used with the redis policy"
  end
  if config.policy == "redis" and config.sync_rate ~= -1 and config.sync_rate < 0.02 then
    return nil, "sync_rate must be greater than 0.02, or -1 to disable"
  end
  return limit_by.check(config)
end

local function period(name)
  return { type = "number", gt = 0, description = "The number of new sessions allowed per " .. name .. "." }
end

local entity_checks = {
  { at_least_one_of = { "config.second", "config.minute", "config.hour", "config.day", "config.month", "config.year" } },
  { conditional = {
    if_field = "config.limit_by", if_match = { eq = "header" },
    then_field = "config.header_name", then_match = { required = true },
  } },
  { conditional = {
    if_field = "config.limit_by", if_match = { eq = "path" },
    then_field = "config.path", then_match = { required = true },
  } },
}
for _, c in ipairs(limit_by.redis_required()) do
  table.insert(entity_checks, c)
end

return {
  name = "rate-limiting",
  fields = {
    { protocols = typedefs.protocols { default = { "tcp", "tls", "udp", "tls_passthrough" } } },
    { config = {
        type = "record",
        fields = {
          { second = period("second") },
          { minute = period("minute") },
          { hour = period("hour") },
          { day = period("day") },
          { month = period("month") },
          { year = period("year") },
          { limit_by = limit_by.field(false) },
          { header_name = typedefs.header_name },
          { path = typedefs.path },
          { policy = limit_by.policy() },
          { fault_tolerant = { type = "boolean", required = true, default = true,
              description = "When the counter store fails, let sessions through (true) or refuse them with status 500 (false)." } },
          { redis = limit_by.redis },
          { hide_client_headers = { type = "boolean", required = true, default = false,
              description = "Accepted for Kong compatibility; stream sessions have no headers." } },
          { error_code = { type = "number", default = 429, gt = 0,
              description = "The session status of a refused session." } },
          { error_message = { type = "string", default = "API rate limit exceeded",
              description = "Accepted for Kong compatibility; a refused stream session is closed without a body." } },
          { sync_rate = { type = "number", required = true, default = -1,
              description = "With redis, send this node's counts every sync_rate seconds instead of at each session; -1 sends each." } },
        },
        custom_validator = check,
        shorthand_fields = limit_by.redis_aliases("rate-limiting"),
    } },
  },
  entity_checks = entity_checks,
}
