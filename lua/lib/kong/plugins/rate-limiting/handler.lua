-- rate-limiting for stream: counts each new connection (TCP, TLS) or UDP
-- session in preread, and ends the ones past a limit with error_code
-- before any upstream is dialled.
local limits = require "gong.limits"
local limit_by = require "gong.limit_by"

local RateLimitingHandler = {
  PRIORITY = 910,
  VERSION = kong.version,
}

local PERIODS = { "second", "minute", "hour", "day", "month", "year" }

function RateLimitingHandler:preread(conf)
  local store, err = limit_by.store(conf)
  if store then
    local windows = {}
    for _, p in ipairs(PERIODS) do
      if type(conf[p]) == "number" then
        windows[p] = conf[p]
      end
    end
    local full
    full, err = store:hit(limit_by.key(conf.limit_by), windows)
    if full then
      return limits.refuse(conf.error_code, "limit")
    end
    if full ~= nil then
      return
    end
  end
  return limit_by.store_failed(conf)
end

return RateLimitingHandler
