-- ip-restriction for stream connections: a client in deny, or missing
-- from a non-empty allow, is logged at warn and closed with the plugin's
-- status (403 unless set), as Kong's handler does in the preread phase.
-- A list that makes no matcher is a handler error (500), as in Kong.
local ipmatcher = require "resty.ipmatcher"

local IpRestrictionHandler = {
  PRIORITY = 990,
  VERSION = kong.version,
}

-- Matchers are built once per list and VM. A plugin instance's conf
-- table, and so its lists, is the same on every call in a VM (a VM serves
-- one configuration), so the cache is keyed by the list itself.
local matchers = {}

local function matcher_for(list)
  local m = matchers[list]
  if not m then
    local err
    m, err = ipmatcher.new(list)
    if not m then
      return nil, err
    end
    matchers[list] = m
  end
  return m
end

local function match(list, binary_ip)
  local m, err = matcher_for(list)
  if not m then
    error("failed to create a new ipmatcher instance: " .. err)
  end
  local hit
  hit, err = m:match_bin(binary_ip)
  if err then
    error("invalid binary ip address: " .. err)
  end
  return hit
end

-- deny logs the refusal, Kong's message unless the plugin has its own,
-- and ends the session.
local function deny(status, message)
  kong.log.warn(message or ("IP address not allowed: " .. tostring(ngx.var.remote_addr)))
  return ngx.exit(status or 403)
end

-- The address checked is binary_remote_addr, as in Kong: the client a
-- trusted PROXY header names, else the connection's peer.
function IpRestrictionHandler:preread(conf)
  local ip = ngx.var.binary_remote_addr
  if not ip then
    return deny(403, "Cannot identify the client IP address, unix domain sockets are not supported.")
  end
  if conf.deny and #conf.deny > 0 and match(conf.deny, ip) then
    return deny(conf.status, conf.message)
  end
  if conf.allow and #conf.allow > 0 and not match(conf.allow, ip) then
    return deny(conf.status, conf.message)
  end
end

return IpRestrictionHandler
