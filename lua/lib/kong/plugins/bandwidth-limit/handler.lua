-- bandwidth-limit: asks the relay to pace the session's bytes.
local limits = require "gong.limits"
local limit_by = require "gong.limit_by"

local BandwidthLimitHandler = {
  PRIORITY = 900,
  VERSION = kong.version,
}

local function num(v)
  return type(v) == "number" and v or 0
end

function BandwidthLimitHandler:preread(conf)
  limits.shape {
    downstream_rate = num(conf.downstream_rate),
    upstream_rate = num(conf.upstream_rate),
    aggregate_rate = num(conf.aggregate_rate),
    key = limit_by.key(conf.limit_by),
    burst = conf.burst,
  }
end

return BandwidthLimitHandler
