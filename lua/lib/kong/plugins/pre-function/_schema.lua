-- The schema of pre-function and post-function: per phase, an array of
-- Lua snippets, each checked to compile; at least one phase set.
return function(plugin_name)
  local typedefs = require "kong.db.schema.typedefs"

  local function compiles(code)
    local _, err = loadstring(code)
    if err then
      return false, "error parsing " .. plugin_name .. ": " .. err
    end
    return true
  end

  local function snippets()
    return {
      type = "array",
      required = true,
      default = {},
      elements = { type = "string", required = false, custom_validator = compiles },
    }
  end

  local phases = { "certificate", "rewrite", "access", "header_filter", "body_filter", "log" }
  local fields, paths = {}, {}
  for i, phase in ipairs(phases) do
    fields[i] = { [phase] = snippets() }
    paths[i] = "config." .. phase
  end

  return {
    name = plugin_name,
    fields = {
      { consumer = typedefs.no_consumer },
      { protocols = typedefs.protocols },
      { config = { type = "record", fields = fields } },
    },
    entity_checks = {
      { at_least_one_of = paths },
    },
  }
end
