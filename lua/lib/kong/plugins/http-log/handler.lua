-- http-log: in the log phase, queues the JSON of the serialized session;
-- the queue sends batches with resty.http (one record as is, several as a
-- JSON array), with Basic auth from the endpoint's user info and the
-- configured headers.
local Queue = require "kong.tools.queue"
local cjson = require "cjson"
local url = require "socket.url"
local http = require "resty.http"
local custom_fields = require "gong.custom_fields"
local log_record = require "gong.log_record"

local HttpLogHandler = {
  PRIORITY = 12,
  VERSION = kong.version,
}

local endpoints = {}

-- endpoint parses an http_endpoint once, with the scheme's default port.
local function endpoint(s)
  local e = endpoints[s]
  if not e then
    e = url.parse(s)
    e.port = tonumber(e.port) or (e.scheme == "https" and 443 or 80)
    e.path = e.path or "/"
    endpoints[s] = e
  end
  return e
end

local function send_entries(conf, entries)
  local body
  if #entries == 1 and conf.queue.max_batch_size == 1 then
    body = entries[1]
  else
    body = "[" .. table.concat(entries, ",") .. "]"
  end
  local e = endpoint(conf.http_endpoint)
  local headers = {
    ["Content-Type"] = conf.content_type,
    ["Content-Length"] = #body,
  }
  if e.userinfo then
    headers["Authorization"] = "Basic " .. ngx.encode_base64(e.userinfo)
  end
  if type(conf.headers) == "table" then
    for name, value in pairs(conf.headers) do
      headers[name] = headers[name] or value
    end
  end
  local target = string.format("%s://%s:%d%s", e.scheme, e.host, e.port, e.path)
  if e.query then
    target = target .. "?" .. e.query
  end
  local client = http.new()
  client:set_timeout(conf.timeout)
  local res, err = client:request_uri(target, {
    method = conf.method,
    headers = headers,
    body = body,
    keepalive_timeout = conf.keepalive,
    ssl_verify = false,
  })
  local where = e.host .. ":" .. tostring(e.port)
  if not res then
    return nil, "failed request to " .. where .. ": " .. err
  end
  kong.log.debug(string.format("http-log sent data log server, %s HTTP status %d", where, res.status))
  if res.status >= 300 then
    return nil, "request to " .. where .. " returned status code " .. tostring(res.status)
      .. " and body " .. tostring(res.body)
  end
  return true
end

-- queue_name keeps instances with the same endpoint settings on one queue,
-- from the same settings Kong names its queues by.
local function queue_name(conf)
  return string.format("%s:%s:%s:%s:%s:%s", conf.http_endpoint, conf.method, conf.content_type,
    tostring(conf.timeout), tostring(conf.keepalive), tostring(conf.retry_count))
end

function HttpLogHandler:log(conf)
  custom_fields(conf)
  local queue_conf = Queue.get_plugin_params("http-log", conf, queue_name(conf))
  kong.log.debug("Queue name automatically configured based on configuration parameters to: ", queue_conf.name)
  local ok, err = Queue.enqueue(queue_conf, send_entries, conf, log_record(cjson) or cjson.encode(kong.log.serialize()))
  if not ok then
    kong.log.err("Failed to enqueue log entry to log server: ", err)
  end
end

return HttpLogHandler
