-- A minimal class library with the interface of rxi/classic, which Kong's
-- legacy plugins reach through kong.plugins.base_plugin: Object:extend(),
-- Object:is(), and calling a class to make an instance (running its new).
local Object = {}
Object.__index = Object

function Object:new() end

function Object:extend()
  local cls = {}
  for k, v in pairs(self) do
    if k:find("__") == 1 then
      cls[k] = v
    end
  end
  cls.__index = cls
  cls.super = self
  setmetatable(cls, self)
  return cls
end

function Object:is(T)
  local mt = getmetatable(self)
  while mt do
    if mt == T then
      return true
    end
    mt = getmetatable(mt)
  end
  return false
end

function Object:__tostring()
  return "Object"
end

function Object:__call(...)
  local obj = setmetatable({}, self)
  obj:new(...)
  return obj
end

return Object
