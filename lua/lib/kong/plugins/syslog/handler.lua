-- syslog: in the log phase, serializes the session; a timer writes its
-- JSON to the local syslog as "kong", at the severity its status calls for
-- (server errors, client errors or success), if that is at least as severe
-- as config.log_level. Kong's handler reads the HTTP record's
-- response.status, which stream records lack; this one reads
-- session.status. The record goes to the timer as its JSON, with the
-- status beside it, when gong.log_record can write it, else as the table
-- the timer encodes.
local lsyslog = require "lsyslog"
local cjson = require "cjson"
local custom_fields = require "gong.custom_fields"
local log_record = require "gong.log_record"

local SysLogHandler = {
  PRIORITY = 4,
  VERSION = kong.version,
}

-- syslog(3) priorities: lower is more severe.
local PRIORITIES = {
  emerg = lsyslog.LOG_EMERG, alert = lsyslog.LOG_ALERT, crit = lsyslog.LOG_CRIT,
  err = lsyslog.LOG_ERR, warning = lsyslog.LOG_WARNING, notice = lsyslog.LOG_NOTICE,
  info = lsyslog.LOG_INFO, debug = lsyslog.LOG_DEBUG,
}

local function write(premature, conf, record, status)
  if premature then
    return
  end
  if type(record) ~= "string" then
    status = record.session and record.session.status or 0
  end
  local severity = conf.successful_severity
  if status >= 500 then
    severity = conf.server_errors_severity
  elseif status >= 400 then
    severity = conf.client_errors_severity
  end
  if PRIORITIES[severity] > PRIORITIES[conf.log_level] then
    return
  end
  lsyslog.open("kong", lsyslog["FACILITY_" .. conf.facility:upper()])
  lsyslog.log(PRIORITIES[severity], type(record) == "string" and record or cjson.encode(record))
end

function SysLogHandler:log(conf)
  custom_fields(conf)
  local json = log_record(cjson)
  local ok, err = ngx.timer.at(0, write, conf, json or kong.log.serialize(), json and ngx.status)
  if not ok then
    kong.log.err("failed to create timer: ", err)
  end
end

return SysLogHandler
