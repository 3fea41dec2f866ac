-- The handler of pre-function and post-function: each phase runs the
-- config's snippets in order. A snippet is compiled once per VM and
-- plugin instance, under the untrusted_lua sandbox. When a snippet's first
-- run returns a function, that function is the snippet from then on and
-- runs at once too, so upvalues set up by the first run persist.
--
-- In stream, gong calls certificate (global instances) and log; the
-- handler has no preread, as Kong's has none.
local sandbox = require "kong.tools.sandbox"
local meta = require "kong.meta"

local PHASES = { "certificate", "rewrite", "access", "header_filter", "body_filter", "log" }

-- compiled[plugin id .. phase] = { src = joined code, [i] = { chunk, fn } }
local compiled = {}

local function snippets(conf, phase)
  local codes = conf[phase]
  if type(codes) ~= "table" or #codes == 0 then
    return nil
  end
  local key = tostring(kong.plugin.get_id()) .. "/" .. phase
  local src = table.concat(codes, "\0")
  local c = compiled[key]
  if not c or c.src ~= src then
    c = { src = src }
    for i, code in ipairs(codes) do
      c[i] = { chunk = sandbox.sandbox(code) }
    end
    compiled[key] = c
  end
  return c
end

local function run(entry)
  if entry.fn then
    return entry.fn()
  end
  local result = entry.chunk()
  if type(result) == "function" then
    entry.fn = result
    return result()
  end
  entry.fn = entry.chunk
end

return function(priority)
  local handler = {
    PRIORITY = priority,
    VERSION = meta.version,
  }
  for _, phase in ipairs(PHASES) do
    handler[phase] = function(_, conf)
      local c = snippets(conf, phase)
      if c then
        for _, entry in ipairs(c) do
          run(entry)
        end
      end
    end
  end
  return handler
end
