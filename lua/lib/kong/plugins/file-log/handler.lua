-- file-log for stream sessions: appends cjson.encode(kong.log.serialize())
-- and a newline to config.path in the log phase. Files stay open per VM
-- unless config.reopen asks to open them for every line. Fields of
-- config.custom_fields_by_lua are added to the record.
local cjson = require "cjson"
local custom_fields = require "gong.custom_fields"

local FileLogHandler = {
  PRIORITY = 9,
  VERSION = kong.version,
}

local files = {}

local function write(conf, line)
  local f = files[conf.path]
  if not f or conf.reopen then
    if f then
      f:close()
    end
    local err
    f, err = io.open(conf.path, "a")
    if not f then
      kong.log.err("failed to open the file: ", err)
      return
    end
    files[conf.path] = f
  end
  local ok, err = f:write(line)
  if ok then
    ok, err = f:flush()
  end
  if not ok then
    kong.log.err("failed to write to the file: ", err)
    f:close()
    files[conf.path] = nil
  end
end

function FileLogHandler:log(conf)
  custom_fields(conf)
  write(conf, cjson.encode(kong.log.serialize()) .. "\n")
end

return FileLogHandler
