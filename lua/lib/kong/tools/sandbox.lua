-- kong.tools.sandbox: compiles untrusted Lua (pre-function and
-- post-function code, the log plugins' custom_fields_by_lua) as
-- kong.conf's untrusted_lua says:
--   off      refuse to compile;
--   on       compile with reads of every global, writes kept private;
--   sandbox  compile in an environment of safe functions only, with
--            kong (its configuration without secrets), ngx, a require
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

-- sandboxed_kong is kong with its configuration's secrets masked.
local function sandboxed_kong()
  if type(kong) ~= "table" then
    return nil
  end
  local k = setmetatable({}, { __index = kong })
  local conf = kong.configuration
  if type(conf) == "table" and type(conf.remove_sensitive) == "function" then
    k.configuration = conf.remove_sensitive()
  end
  return k
end

-- copy_path copies the global at a dotted path ("a.b.c") into env; a
-- table is copied as a proxy so writes stay in env.
local function copy_path(path, src, env)
  local head, rest = path:match("^([^%.]+)%.?(.*)$")
  local v = head and src[head]
  if v == nil then
    return
  end
  if rest == "" then
    env[head] = type(v) == "table" and setmetatable({}, { __index = v }) or v
    return
  end
  if type(v) ~= "table" then
    return
  end
  env[head] = env[head] or {}
  copy_path(rest, v, env[head])
end

-- base_environment is what sandboxed code finds beyond the safe
-- functions: require, kong, ngx and the configured globals.
local function base_environment()
  local allowed = {}
  for _, name in ipairs(list(setting("untrusted_lua_sandbox_requires"))) do
    allowed[name] = true
  end
  local env = {
    require = next(allowed) and function(name)
      if not allowed[name] then
        return denied_require(name)
      end
      return require(name)
    end or denied_require,
    kong = sandboxed_kong(),
    ngx = ngx,
  }
  for _, path in ipairs(list(setting("untrusted_lua_sandbox_environment"))) do
    copy_path(path, _G, env)
  end
  env._G = env
  return env
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

  setmetatable(env, { __index = base_environment() })
  local safe = safe_environment()
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
