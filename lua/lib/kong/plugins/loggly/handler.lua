-- loggly: in the log phase, serializes the session; a timer sends it as
-- one RFC 5424 syslog line over UDP:
--   <8+severity>1 <UTC time> <hostname> kong - - [<key>@41058 tag="..."] <json>
-- As in Kong's stream mode, successful_severity applies to every session
-- (the error severities are for HTTP responses).
local cjson = require "cjson"
local custom_fields = require "gong.custom_fields"

local LogglyLogHandler = {
  PRIORITY = 6,
  VERSION = kong.version,
}

local HOSTNAME = kong.node.get_hostname()

local SEVERITIES = {
  emerg = 0, alert = 1, crit = 2, err = 3, warning = 4, notice = 5, info = 6, debug = 7,
}

local function line(conf, record, severity)
  local tags = {}
  for i, tag in ipairs(conf.tags or {}) do
    tags[i] = 'tag="' .. tag .. '"'
  end
  return table.concat({
    "<" .. (8 + severity) .. ">1",
    os.date("!%Y-%m-%dT%H:%M:%SZ"),
    HOSTNAME,
    "kong",
    "-",
    "-",
    "[" .. conf.key .. "@41058",
    table.concat(tags, " ") .. "]",
    cjson.encode(record),
  }, " ")
end

local function send(premature, conf, record)
  if premature then
    return
  end
  local severity = SEVERITIES[conf.successful_severity]
  if severity > SEVERITIES[conf.log_level] then
    return
  end
  local where = conf.host .. ":" .. tostring(conf.port)
  local sock = ngx.socket.udp()
  sock:settimeout(conf.timeout)
  local ok, err = sock:setpeername(conf.host, conf.port)
  if not ok then
    kong.log.err("failed to connect to ", where, ": ", err)
    return
  end
  ok, err = sock:send(line(conf, record, severity))
  if not ok then
    kong.log.err("failed to send data to ", where, ": ", err)
  end
  ok, err = sock:close()
  if not ok then
    kong.log.err("failed to close connection from ", where, ": ", err)
  end
end

function LogglyLogHandler:log(conf)
  custom_fields(conf)
  local ok, err = ngx.timer.at(0, send, conf, kong.log.serialize())
  if not ok then
    kong.log.err("failed to create timer: ", err)
  end
end

return LogglyLogHandler
