-- limit-conn: takes one of max_connections places per key in preread and
-- gives it back when the session ends; a session finding none is ended
-- with error_code before any upstream is dialled.
local limits = require "gong.limits"
local limit_by = require "gong.limit_by"

local LimitConnHandler = {
  PRIORITY = 905,
  VERSION = kong.version,
}

function LimitConnHandler:preread(conf)
  local store = limit_by.store(conf)
  if store then
    local ok = store:acquire(limit_by.key(conf.limit_by), conf.max_connections)
    if ok == false then
      return limits.refuse(conf.error_code, "limit")
    end
    if ok then
      return
    end
  end
  return limit_by.store_failed(conf)
end

return LimitConnHandler
