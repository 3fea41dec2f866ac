-- file-log: one JSON line per session, the kong.log.serialize record.
local typedefs = require "kong.db.schema.typedefs"

return {
  name = "file-log",
  fields = {
    { protocols = typedefs.protocols },
    { config = {
        type = "record",
        fields = {
          { path = { type = "string", required = true,
                     match = [[^[^*&%%\`]+$]],
                     err = "not a valid filename" } },
          { reopen = { type = "boolean", required = true, default = false } },
          { custom_fields_by_lua = typedefs.lua_code },
        },
    } },
  },
}
