-- kong.tools.utils: Kong's older entry point, which re-exports the
-- helpers of the kong.tools.* modules.
local _M = {}

for _, name in ipairs({ "kong.tools.table", "kong.tools.string", "kong.tools.uuid",
                        "kong.tools.rand", "kong.tools.ip" }) do
  for k, v in pairs(require(name)) do
    _M[k] = v
  end
end

return _M
