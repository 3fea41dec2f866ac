-- kong.plugins.base_plugin: the parent class of Kong's legacy plugins,
-- which call BasePlugin.new(self, name) and each phase's super method.
-- The phase methods only log at debug level, as Kong's did.
local Object = require "kong.vendor.classic"

local BasePlugin = Object:extend()

function BasePlugin:new(name)
  self._name = name
end

for _, phase in ipairs({ "init_worker", "configure", "certificate", "preread", "log" }) do
  BasePlugin[phase] = function(self)
    ngx.log(ngx.DEBUG, "executing plugin \"", self._name, "\": ", phase)
  end
end

return BasePlugin
