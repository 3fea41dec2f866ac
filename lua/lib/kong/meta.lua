-- kong.meta: the Kong release whose behaviour gong follows.
local version = setmetatable({ major = 3, minor = 10, patch = 0 }, {
  __tostring = function(t)
    return string.format("%d.%d.%d", t.major, t.minor, t.patch)
  end,
})

return {
  _NAME = "kong",
  _VERSION = tostring(version),
  _VERSION_TABLE = version,
  _SERVER_TOKENS = "kong/" .. tostring(version),
  version = tostring(version),
}
