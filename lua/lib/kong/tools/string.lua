-- kong.tools.string: the string helpers of Kong's module that plugins use.
local _M = {}

-- split_plain splits value at every plain occurrence of delim, at most n
-- pieces when n > 0 (the last one keeps the rest).
local function split_plain(value, delim, n, plain)
  local out, count, pos = {}, 0, 1
  if delim == "" then
    out[1] = value
    return out, 1
  end
  while true do
    if n and n > 0 and count == n - 1 then
      break
    end
    local s, e = value:find(delim, pos, plain)
    if not s then
      break
    end
    count = count + 1
    out[count] = value:sub(pos, s - 1)
    pos = e + 1
  end
  count = count + 1
  out[count] = value:sub(pos)
  return out, count
end

function _M.splitn(value, delim, n)
  return split_plain(value, delim, n, true)
end

function _M.psplitn(value, pattern, n)
  return split_plain(value, pattern, n, false)
end

-- split(s, delim) is Penlight's stringx.split: by whitespace without a
-- delimiter, dropping empty pieces then.
function _M.split(value, delim, n)
  if delim == nil then
    local out = {}
    for word in value:gmatch("%S+") do
      out[#out + 1] = word
      if n and #out == n then
        break
      end
    end
    return out
  end
  return (split_plain(value, delim, n, true))
end

function _M.isplitn(value, delim, n)
  local parts = split_plain(value, delim, n, true)
  local i = 0
  return function()
    i = i + 1
    return parts[i]
  end
end

function _M.split_once(value, delim)
  local s, e = value:find(delim, 1, true)
  if not s then
    return value
  end
  return value:sub(1, s - 1), value:sub(e + 1)
end

function _M.psplit_once(value, pattern)
  local s, e = value:find(pattern)
  if not s then
    return value
  end
  return value:sub(1, s - 1), value:sub(e + 1)
end

function _M.join(delim, list)
  return table.concat(list, delim)
end

function _M.strip(value)
  if value == nil then
    return ""
  end
  return (tostring(value):match("^%s*(.-)%s*$"))
end

function _M.validate_utf8(value)
  local s = tostring(value)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or c >= 0xC2 and c < 0xE0 and 2 or c >= 0xE0 and c < 0xF0 and 3
                or c >= 0xF0 and c < 0xF5 and 4 or nil
    if not len or i + len - 1 > n then
      return false
    end
    for j = i + 1, i + len - 1 do
      local b = s:byte(j)
      if b < 0x80 or b > 0xBF then
        return false
      end
    end
    i = i + len
  end
  return true
end

_M.bytes_to_str = require "gong.bytes_to_str"

function _M.replace_dashes(value)
  return (value:gsub("-", "_"))
end

function _M.replace_dashes_lower(value)
  return (value:gsub("-", "_"):lower())
end

return _M
