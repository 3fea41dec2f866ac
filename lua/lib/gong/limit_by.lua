-- What the limit plugins share: the limit_by field and its check, the
-- redis aliases Kong still accepts, and the key a session counts under.
local redis_schema = require "kong.tools.redis.schema"
local limits = require "gong.limits"

local _M = {}

local EMPTY_UUID = "00000000-0000-0000-0000-000000000000"

-- The limit_by values Kong's HTTP plugins have that a stream session
-- cannot provide: they are accepted by the field, so Kong's entries keep
-- their shape, and refused by check with a message that says why.
local HTTP_ONLY = {
  consumer = "stream connections have no consumer",
  credential = "stream connections have no credential",
  header = "stream connections have no headers",
  path = "stream connections have no path",
}

-- field is the limit_by field; with_global adds "global" (one key for
-- every session).
function _M.field(with_global)
  local values = { "ip", "service", "route", "sni", "consumer", "credential", "header", "path" }
  if with_global then
    table.insert(values, "global")
  end
  return { type = "string", default = "ip", one_of = values,
           description = "What sessions are counted by." }
end

-- is_dbless tells a node without a database (database = off), where
-- Kong refuses policy cluster too.
local function is_dbless()
  local ok, database = pcall(function() return kong.configuration.database end)
  return ok and database == "off"
end

-- check refuses what stream cannot do: an HTTP-only limit_by, and the
-- cluster policy on a node without a database.
function _M.check(config)
  local why = HTTP_ONLY[config.limit_by]
  if why then
    return nil, "limit_by '" .. config.limit_by .. "' is not supported for stream sessions: " .. why
      .. "; use ip, service, route or sni"
  end
  if config.policy == "cluster" and is_dbless() then
    return nil, "policy 'cluster' keeps its counters in the PostgreSQL database of database mode, "
      .. "which this node does not run (database = off); use 'local' or 'redis'"
  end
  return true
end

-- policy is the policy field: cluster is accepted in DB-less mode too, so
-- that Kong's entries load far enough to be refused by check with a
-- reason.
function _M.policy()
  return { type = "string", default = "local", len_min = 0, one_of = { "local", "cluster", "redis" },
           description = "Where the counters live: local (this node), cluster (the PostgreSQL database of database mode) or redis (shared by a fleet)." }
end

-- redis_aliases are the deprecated redis_* fields Kong still accepts, as
-- shorthand fields filling the redis record.
function _M.redis_aliases(plugin)
  local aliases = {}
  for _, f in ipairs({ { "host", "string" }, { "port", "integer" }, { "password", "string" },
                       { "username", "string" }, { "ssl", "boolean" }, { "ssl_verify", "boolean" },
                       { "server_name", "string" }, { "timeout", "integer" }, { "database", "integer" } }) do
    local name, typ = f[1], f[2]
    local def = {
      type = typ,
      deprecation = {
        replaced_with = { { path = { "redis", name } } },
        message = plugin .. ": config.redis_" .. name .. " is deprecated, please use config.redis." .. name .. " instead",
        removal_in_version = "4.0",
      },
      func = function(value)
        return { redis = { [name] = value } }
      end,
    }
    if name == "password" then
      def.len_min = 0
    end
    table.insert(aliases, { ["redis_" .. name] = def })
  end
  return aliases
end

_M.redis = redis_schema.config_schema

-- redis_required are the entity checks Kong has for policy redis.
function _M.redis_required()
  local checks = {}
  for _, f in ipairs({ "host", "port", "timeout" }) do
    table.insert(checks, { conditional = {
      if_field = "config.policy", if_match = { eq = "redis" },
      then_field = "config.redis." .. f, then_match = { required = true },
    } })
  end
  return checks
end

-- key is what the session counts under: the plugin instance, then what
-- limit_by names (the client address, the matched service's or route's
-- id, the TLS server name), or nothing for global.
function _M.key(limit_by)
  local id
  if limit_by == "service" then
    local _, service_id = limits.ids()
    id = service_id or EMPTY_UUID
  elseif limit_by == "route" then
    id = limits.ids() or EMPTY_UUID
  elseif limit_by == "sni" then
    id = ngx.var.ssl_preread_server_name or ""
  elseif limit_by == "global" then
    id = ""
  else
    -- The client a trusted PROXY header names, as Kong's rate-limiting
    -- keys by get_forwarded_ip.
    id = kong.client.get_forwarded_ip() or ""
  end
  return (kong.plugin.get_id() or EMPTY_UUID) .. ":" .. id
end

-- stores caches each configuration's store, per VM: the conf table is
-- the same on every call of one plugin instance, and a VM lives no longer
-- than its configuration.
local stores = {}

function _M.store(conf)
  local s = stores[conf]
  if s then
    return s
  end
  local err
  s, err = limits.store(conf)
  if not s then
    kong.log.err("no counter store: ", err)
    return nil, err
  end
  stores[conf] = s
  return s
end

-- store_failed is what a limit plugin does when its store failed (the
-- error log has it, once per interval): let the session through when
-- fault_tolerant, else end it with 500, as Kong's rate-limiting does.
function _M.store_failed(conf)
  if not conf.fault_tolerant then
    return limits.refuse(500, "store_error")
  end
end

return _M
