-- ip-restriction for stream connections: a client in deny, or missing
-- from a non-empty allow, is logged and closed with the plugin's status
-- (403 unless set), as Kong's handler does in the preread phase.
local ipmatcher = require "resty.ipmatcher"

local IpRestrictionHandler = {
  PRIORITY = 990,
  VERSION = kong.version,
}

-- Matchers are built once per list and VM: conf tables are new for each
-- call, so the cache is keyed by the list's contents.
local matchers = {}

local function matcher_for(list)
  local key = table.concat(list, ",")
  local m = matchers[key]
  if not m then
    local err
    m, err = ipmatcher.new(list)
    if not m then
      return nil, err
    end
    matchers[key] = m
  end
  return m
end

local function match(list, ip)
  local m, err = matcher_for(list)
  if not m then
    return nil, "failed to create a new ipmatcher instance: " .. err
  end
  return m:match(ip)
end

function IpRestrictionHandler:preread(conf)
  local ip = kong.client.get_ip()
  if not ip then
    kong.log.err("cannot identify the client IP address, unix domain sockets are not supported.")
    return ngx.exit(conf.status or 403)
  end

  local blocked = false
  if conf.deny and #conf.deny > 0 then
    local hit, err = match(conf.deny, ip)
    if err then
      kong.log.err(err)
      return ngx.exit(500)
    end
    blocked = hit
  end
  if not blocked and conf.allow and #conf.allow > 0 then
    local hit, err = match(conf.allow, ip)
    if err then
      kong.log.err(err)
      return ngx.exit(500)
    end
    blocked = not hit
  end

  if blocked then
    kong.log.err(conf.message or "IP address not allowed")
    return ngx.exit(conf.status or 403)
  end
end

return IpRestrictionHandler
