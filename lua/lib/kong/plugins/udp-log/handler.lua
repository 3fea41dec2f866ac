-- udp-log: in the log phase, encodes the serialized session as JSON and
-- sends it as one datagram from a timer.
local cjson = require "cjson"
local custom_fields = require "gong.custom_fields"
local log_record = require "gong.log_record"

local UdpLogHandler = {
  PRIORITY = 8,
  VERSION = kong.version,
}

local function send(premature, conf, json)
  if premature then
    return
  end
  local where = conf.host .. ":" .. tostring(conf.port)
  local sock = ngx.socket.udp()
  sock:settimeout(conf.timeout)
  local ok, err = sock:setpeername(conf.host, conf.port)
  if not ok then
    kong.log.err("could not connect to ", where, ": ", err)
    return
  end
  ok, err = sock:send(json)
  if not ok then
    kong.log.err("could not send data to ", where, ": ", err)
  else
    kong.log.debug("sent: ", json)
  end
  ok, err = sock:close()
  if not ok then
    kong.log.err("could not close ", where, ": ", err)
  end
end

function UdpLogHandler:log(conf)
  custom_fields(conf)
  local ok, err = ngx.timer.at(0, send, conf, log_record(cjson) or cjson.encode(kong.log.serialize()))
  if not ok then
    kong.log.err("could not create timer: ", err)
  end
end

return UdpLogHandler
