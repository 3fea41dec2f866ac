-- tcp-log: in the log phase, serializes the session and sends it as a JSON
-- line from a timer, over a kept-alive TCP connection (TLS when
-- config.tls, handshaking only on new connections). The record goes to the
-- timer as its JSON when gong.log_record can write it, else as the table
-- the timer encodes, as Kong's does.
local cjson = require "cjson"
local custom_fields = require "gong.custom_fields"
local log_record = require "gong.log_record"

local TcpLogHandler = {
  PRIORITY = 7,
  VERSION = kong.version,
}

local function send(premature, conf, record)
  if premature then
    return
  end
  local where = conf.host .. ":" .. tostring(conf.port)
  local sock = ngx.socket.tcp()
  sock:settimeout(conf.timeout)
  local ok, err = sock:connect(conf.host, conf.port)
  if not ok then
    kong.log.err("failed to connect to ", where, ": ", err)
    return
  end
  local times
  times, err = sock:getreusedtimes()
  if not times then
    kong.log.err("failed to get socket reused time to ", where, ": ", err)
    sock:close()
    return
  end
  if conf.tls and times == 0 then
    ok, err = sock:sslhandshake(false, conf.tls_sni, false)
    if not ok then
      kong.log.err("failed to perform TLS handshake to ", where, ": ", err)
      sock:close()
      return
    end
  end
  ok, err = sock:send((type(record) == "string" and record or cjson.encode(record)) .. "\n")
  if not ok then
    kong.log.err("failed to send data to ", where, ": ", err)
    return
  end
  ok, err = sock:setkeepalive(conf.keepalive)
  if not ok then
    kong.log.err("failed to keepalive to ", where, ": ", err)
  end
end

function TcpLogHandler:log(conf)
  custom_fields(conf)
  local ok, err = ngx.timer.at(0, send, conf, log_record(cjson) or kong.log.serialize())
  if not ok then
    kong.log.err("failed to create timer: ", err)
  end
end

return TcpLogHandler
