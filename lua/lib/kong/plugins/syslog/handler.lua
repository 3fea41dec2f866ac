-- syslog: in the log phase, serializes the session; a timer writes its
-- JSON to the local syslog as "kong", at the severity its status calls for
-- (server errors, client errors or success), if that is at least as severe
-- as config.log_level. Kong's handler reads the HTTP record's
-- response.status, which stream records lack; this one reads
-- session.status.
local lsyslog = require "lsyslog"
local cjson = require "cjson"
local custom_fields = require "gong.custom_fields"

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

local function write(premature, conf, record)
  if premature then
    return
  end
  local status = record.session and record.session.status or 0
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
  lsyslog.log(PRIORITIES[severity], cjson.encode(record))
end

function SysLogHandler:log(conf)
  custom_fields(conf)
  local ok, err = ngx.timer.at(0, write, conf, kong.log.serialize())
  if not ok then
    kong.log.err("failed to create timer: ", err)
  end
end

return SysLogHandler
