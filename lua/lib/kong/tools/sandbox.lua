-- kong.tools.sandbox: compiles untrusted Lua (pre-function and
-- post-function code, the log plugins' custom_fields_by_lua) as
-- kong.conf's untrusted_lua says:
--   off      refuse to compile;
--   on       compile with reads of every global, writes kept private;
--   sandbox  compile in an environment of safe functions only, with
--            read-only views of kong and ngx (see new_views), a require
--            limited to untrusted_lua_sandbox_requires and the globals
--            named in untrusted_lua_sandbox_environment.

local DISABLED = "loading of untrusted Lua code disabled because " ..
                 "'untrusted_lua' config option is set to 'off'"

local function setting(name)
  local conf = kong and kong.configuration
  return conf and conf[name]
end

-- list reads a kong.conf list: a table, or a comma-separated string.
local function list(v)
  if type(v) == "table" then
    return v
  end
  local out = {}
  if type(v) == "string" then
    for item in v:gmatch("[^,%s]+") do
      out[#out + 1] = item
    end
  end
  return out
end

local function mode()
  return setting("untrusted_lua") or "sandbox"
end

-- The functions sandboxed code may use: whole libraries (true), the
-- listed names of one, or all of one but some.
local SAFE_GLOBALS = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "print", "select",
  "tonumber", "tostring", "type", "unpack", "xpcall", "_VERSION",
}
local SAFE_LIBRARIES = {
  bit = true, coroutine = true, math = true, table = true,
  io = { "type" },
  jit = { "os", "arch", "version", "version_num" },
  os = { "clock", "date", "difftime", "time" },
  string = { except = { dump = true } },
}

-- safe_environment returns a fresh table of the safe functions; library
-- tables are copies, so code cannot change the real ones.
local function safe_environment()
  local env = {}
  for _, name in ipairs(SAFE_GLOBALS) do
    env[name] = _G[name]
  end
  for lib, allowed in pairs(SAFE_LIBRARIES) do
    local src = _G[lib]
    if type(src) == "table" then
      local copy = {}
      if allowed == true or allowed.except then
        for k, v in pairs(src) do
          if allowed == true or not allowed.except[k] then
            copy[k] = v
          end
        end
      else
        for _, k in ipairs(allowed) do
          copy[k] = src[k]
        end
      end
      env[lib] = copy
    end
  end
  return env
end

local function denied_require(name)
  error(("require '%s' not allowed within sandbox"):format(name), 0)
end

-- Sandboxed code sees kong and ngx through read-only views, all the way
-- down: reading a field of a view gives the real value, a table as a view
-- of its own; writing one raises an error naming it. So one route's
-- sandboxed code cannot change what other plugins and routes see. The
-- connection's own data stays writable, as Kong's is.
local WRITABLE = {
  ["ngx.ctx"] = true,
  ["kong.ctx.shared"] = true,
  ["kong.ctx.plugin"] = true,
}

local COSOCKETS_REFUSED = "%s is not allowed within sandbox: " ..
                          "cosockets need untrusted_lua = on"

-- new_views returns view(real, path), which gives the view of a table,
-- and the map of each view made to its table. overrides replaces the
-- values at some paths ("kong.configuration") with others.
local function new_views(overrides)
  local views, reals = {}, {}
  -- Functions are given as they are: wrapping them would add a frame,
  -- and kong.log reports its caller's line. The PDK's methods
  -- (kong.cache:get) do not depend on self being the real table.
  local function view(real, path)
    if views[real] then
      return views[real]
    end
    local proxy = {}
    setmetatable(proxy, {
      __index = function(_, k)
        local child = path .. "." .. tostring(k)
        local v = overrides[child]
        if v == nil then
          v = real[k]
        end
        if WRITABLE[child] then
          return v
        end
        if type(v) == "table" then
          return view(v, child)
        end
        return v
      end,
      __newindex = function(_, k, v)
        local child = path .. "." .. tostring(k)
        if not WRITABLE[child] then
          error(("Cannot modify %s. Protected by the sandbox."):format(child), 0)
        end
        real[k] = v
      end,
      __len = function()
        return #real
      end,
      __call = function(_, ...)
        return real(...)
      end,
    })
    views[real], reals[proxy] = proxy, real
    return proxy
  end
  return view, reals
end

-- view_iterators are pairs, ipairs and next that walk a view's table,
-- giving its values as the view does.
local function view_iterators(reals)
  local function view_next(t, k)
    local real = reals[t]
    if not real then
      return next(t, k)
    end
    local nk = next(real, k)
    if nk == nil then
      return nil
    end
    return nk, t[nk]
  end
  local function view_inext(t, i)
    i = i + 1
    local v = t[i]
    if v ~= nil then
      return i, v
    end
  end
  return {
    next = view_next,
    pairs = function(t)
      if reals[t] then
        return view_next, t, nil
      end
      return pairs(t)
    end,
    ipairs = function(t)
      if reals[t] then
        return view_inext, t, 0
      end
      return ipairs(t)
    end,
  }
end

-- allowed_vault_reference reports whether the operator let sandboxed code
-- resolve ref: untrusted_lua_sandbox_vaults lists <vault>/<resource>
-- entries, exact or ending in "*" for a prefix. A reference with a
-- query (its config can redirect the lookup) or a ".." segment is never
-- allowed.
local function allowed_vault_reference(ref)
  local parsed = type(ref) == "string" and kong.vault.parse_reference(ref)
  if not parsed or parsed.config or ("/" .. parsed.resource .. "/"):find("/../", 1, true) then
    return false
  end
  local name = parsed.name .. "/" .. parsed.resource
  for _, entry in ipairs(list(setting("untrusted_lua_sandbox_vaults"))) do
    local prefix = entry:match("^(.*)%*$")
    if name == entry or prefix and name:sub(1, #prefix) == prefix then
      return true
    end
  end
  return false
end

local function vault_refusal(ref)
  return ("vault reference %s not allowed within sandbox " ..
          "(untrusted_lua_sandbox_vaults)"):format(tostring(ref))
end

-- sandboxed_vault is kong.vault resolving only allowed references.
local function sandboxed_vault()
  local real = kong.vault
  local function check_all(v)
    if type(v) == "table" then
      for _, item in pairs(v) do
        check_all(item)
      end
    elseif real.is_reference(v) and not allowed_vault_reference(v) then
      error(vault_refusal(v), 0)
    end
  end
  return {
    is_reference = real.is_reference,
    parse_reference = real.parse_reference,
    try = real.try,
    get = function(ref, ...)
      if not allowed_vault_reference(ref) then
        return nil, vault_refusal(ref)
      end
      return real.get(ref, ...)
    end,
    update = function(options)
      check_all(options)
      return real.update(options)
    end,
  }
end

-- refused_cosockets stands for ngx.socket: every function raises.
local function refused_cosockets()
  return setmetatable({}, {
    __index = function(_, k)
      return function()
        error(COSOCKETS_REFUSED:format("ngx.socket." .. tostring(k)), 0)
      end
    end,
  })
end

-- refused_req_socket stands for ngx.req.socket in every phase: the
-- client's bytes belong to the plugins and the upstream that follow.
local function refused_req_socket()
  error(COSOCKETS_REFUSED:format("ngx.req.socket"), 0)
end

-- sandbox_overrides are the values sandboxed code finds in place of the
-- real ones: kong.configuration without secrets, kong.vault limited to
-- the allowed references, and no cosockets (ngx.req.socket included).
local function sandbox_overrides()
  local o = {}
  if type(kong) == "table" then
    local conf = kong.configuration
    if type(conf) == "table" and type(conf.remove_sensitive) == "function" then
      o["kong.configuration"] = conf.remove_sensitive()
    end
    if type(kong.vault) == "table" then
      o["kong.vault"] = sandboxed_vault()
    end
  end
  o["ngx.socket"] = refused_cosockets()
  o["ngx.req.socket"] = refused_req_socket
  return o
end

-- copy_path copies the global at a dotted path ("a.b.c") into env; a
-- table is given as a view.
local function copy_path(path, src, env, view, prefix)
  local head, rest = path:match("^([^%.]+)%.?(.*)$")
  local v = head and src[head]
  if v == nil then
    return
  end
  local at = prefix and prefix .. "." .. head or head
  if rest == "" then
    env[head] = type(v) == "table" and view(v, at) or v
    return
  end
  if type(v) ~= "table" then
    return
  end
  env[head] = env[head] or {}
  copy_path(rest, v, env[head], view, at)
end

-- base_environment is what sandboxed code finds beyond the safe
-- functions: require, views of kong and ngx and the configured globals;
-- and the iterators that walk views.
local function base_environment()
  local allowed = {}
  for _, name in ipairs(list(setting("untrusted_lua_sandbox_requires"))) do
    allowed[name] = true
  end
  local view, reals = new_views(sandbox_overrides())
  local env = {
    require = next(allowed) and function(name)
      if not allowed[name] then
        return denied_require(name)
      end
      return require(name)
    end or denied_require,
    kong = type(kong) == "table" and view(kong, "kong") or nil,
    ngx = view(ngx, "ngx"),
  }
  for _, path in ipairs(list(setting("untrusted_lua_sandbox_environment"))) do
    copy_path(path, _G, env, view)
  end
  env._G = env
  return env, view_iterators(reals)
end

-- sandbox(code, chunkname_or_options?, mode?, env?) compiles code and
-- returns the function; a syntax error, or untrusted_lua = off, is
-- raised. options are { chunkname =, mode =, env = }.
local function sandbox(code, chunkname, load_mode, env)
  local m = mode()
  if m == "off" then
    error(DISABLED, 0)
  end
  if type(chunkname) == "table" then
    local opts = chunkname
    chunkname = opts.chunkname or opts.chunk_name
    load_mode = load_mode or opts.mode
    env = env or opts.env
  end
  env = env or {}
  load_mode = load_mode or "t"

  if m == "on" then
    local fn, err = load(code, chunkname, load_mode, setmetatable(env, { __index = _G }))
    if not fn then
      error(err, 0)
    end
    return fn
  end

  local base, iterators = base_environment()
  setmetatable(env, { __index = base })
  local safe = safe_environment()
  for k, fn in pairs(iterators) do
    safe[k] = fn
  end
  for k in pairs(safe) do
    if env[k] ~= nil then
      safe[k] = env[k]
    end
  end
  if env.require ~= nil then
    safe.require = env.require
  end
  setmetatable(safe, { __index = env })
  local fn, err = load(code, chunkname, load_mode, safe)
  if not fn then
    error(err, 0)
  end
  return fn
end

-- validate_function compiles and runs code, which must return a function.
local function validate_function(code, ...)
  local ok, compiled = pcall(sandbox, code, ...)
  if not ok then
    return false, "Error parsing function: " .. tostring(compiled)
  end
  local ran, fn = pcall(compiled)
  if not ran then
    return false, fn
  end
  if type(fn) ~= "function" then
    return false, "Bad return value from function, expected function type, got " .. type(fn)
  end
  return fn
end

return {
  sandbox = sandbox,
  validate_function = validate_function,
  validate = function(code, ...)
    local _, err = validate_function(code, ...)
    if err then
      return false, err
    end
    return true
  end,
  -- validate_safe only compiles: schemas must not run user code.
  validate_safe = function(code, ...)
    local ok, err = pcall(sandbox, code, ...)
    if not ok then
      return false, "Error parsing function: " .. tostring(err)
    end
    return true
  end,
  parse = function(code, ...)
    return assert(validate_function(code, ...))
  end,
}
