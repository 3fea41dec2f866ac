-- Applies a log plugin's custom_fields_by_lua: each expression runs in
-- Kong's untrusted-Lua sandbox and its result becomes a field of the
-- serialized record (kong.log.set_serialize_value).
return function(conf)
  local fields = conf.custom_fields_by_lua
  if type(fields) ~= "table" then
    return
  end
  local sandbox = require("kong.tools.sandbox").sandbox
  for key, expression in pairs(fields) do
    kong.log.set_serialize_value(key, sandbox(expression)())
  end
end
