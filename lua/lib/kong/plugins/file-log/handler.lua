-- file-log for stream sessions: appends cjson.encode(kong.log.serialize())
-- and a newline to config.path in the log phase, one write(2) per line.
-- Files stay open per VM unless config.reopen asks to open them for every
-- line. Fields of config.custom_fields_by_lua are added to the record.
-- gong.log_record writes the same JSON from Go when nothing edited it.
local cjson = require "cjson"
local custom_fields = require "gong.custom_fields"
local log_record = require "gong.log_record"
local append_file = require "gong.append_file"

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
    f, err = append_file.open(conf.path)
    if not f then
      kong.log.err("failed to open the file: ", err)
      return
    end
    files[conf.path] = f
  end
  local ok, err = f:write(line, "\n")
  if not ok then
    kong.log.err("failed to write to the file: ", err)
    f:close()
    files[conf.path] = nil
  end
end

function FileLogHandler:log(conf)
  custom_fields(conf)
  write(conf, log_record(cjson) or cjson.encode(kong.log.serialize()))
end

return FileLogHandler
