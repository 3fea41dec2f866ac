-- kong.tools.table: the table helpers of Kong's module that plugins use.
local _M = {}

_M.EMPTY = setmetatable({}, {
  __newindex = function()
    error("attempt to modify a read-only table", 2)
  end,
})

function _M.pack(...)
  return { n = select("#", ...), ... }
end

function _M.unpack(t, i, j)
  return unpack(t, i or 1, j or t.n or #t)
end

-- table_merge is a shallow merge into a new table, t2 winning.
function _M.table_merge(t1, t2)
  local out = {}
  for k, v in pairs(t1 or {}) do
    out[k] = v
  end
  for k, v in pairs(t2 or {}) do
    out[k] = v
  end
  return out
end

function _M.table_contains(arr, val)
  if arr then
    for _, v in ipairs(arr) do
      if v == val then
        return true
      end
    end
  end
  return false
end

-- is_array: only the keys 1..n; "fast" mode accepts any positive integer
-- keys, "strict" needs them contiguous from 1 (the default).
function _M.is_array(t, mode)
  if type(t) ~= "table" then
    return false
  end
  if mode == "lapis" or mode == "fast" then
    return table.isarray(t)
  end
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then
      return false
    end
    n = n + 1
  end
  for i = 1, n do
    if t[i] == nil then
      return false
    end
  end
  return true
end

function _M.cycle_aware_deep_copy(orig, remove_metatables, deep_copy_keys, seen)
  if type(orig) ~= "table" then
    return orig
  end
  seen = seen or {}
  if seen[orig] then
    return seen[orig]
  end
  local copy = {}
  seen[orig] = copy
  for k, v in pairs(orig) do
    if deep_copy_keys then
      k = _M.cycle_aware_deep_copy(k, remove_metatables, deep_copy_keys, seen)
    end
    copy[k] = _M.cycle_aware_deep_copy(v, remove_metatables, deep_copy_keys, seen)
  end
  if not remove_metatables then
    setmetatable(copy, getmetatable(orig))
  end
  return copy
end

function _M.deep_copy(orig, copy_mt)
  return _M.cycle_aware_deep_copy(orig, copy_mt == false, true)
end

-- deep_merge returns a copy of t1 with t2 merged in, tables recursively.
function _M.deep_merge(t1, t2)
  local out = _M.deep_copy(t1)
  for k, v in pairs(t2) do
    if type(v) == "table" and type(out[k]) == "table" then
      out[k] = _M.deep_merge(out[k], v)
    else
      out[k] = _M.deep_copy(v)
    end
  end
  return out
end

-- concat appends the arrays given into a new one.
function _M.concat(...)
  local out = {}
  for i = 1, select("#", ...) do
    local t = select(i, ...)
    if t then
      for _, v in ipairs(t) do
        out[#out + 1] = v
      end
    end
  end
  return out
end

-- table_path follows the keys of path through t.
function _M.table_path(t, path)
  local v = t
  for _, key in ipairs(path) do
    if type(v) ~= "table" then
      return nil
    end
    v = v[key]
  end
  return v
end

return _M
