-- datadog: in the log phase, queues the serialized session; the queue
-- sends one DogStatsD datagram per metric:
--   <prefix>.<stat>:<value>|<type>[|@rate]|#name:<service>,status:<status>[,consumer:<id>][,<tags>]
-- The agent is config.host and config.port, else KONG_DATADOG_AGENT_HOST
-- and KONG_DATADOG_AGENT_PORT.
--
-- Stream records have no request or response, so Kong sends "nil" values
-- and a "-" status in stream. Here request_size is the bytes the client
-- sent (session.received), response_size the bytes it got (session.sent),
-- latency the session's duration, and the status tag the session status;
-- upstream_latency has no stream value and is not sent.
local Queue = require "kong.tools.queue"
local STATS = require "gong.stream_stats"

local DatadogHandler = {
  PRIORITY = 10,
  VERSION = kong.version,
}

local STAT_TYPES = { gauge = "g", counter = "c", timer = "ms", histogram = "h", meter = "m", set = "s", distribution = "d" }

local CONSUMER_IDS = {
  consumer_id = function(c) return (c.id:gsub("-", "_")) end,
  custom_id = function(c) return c.custom_id end,
  username = function(c) return c.username end,
}

local AGENT_HOST = os.getenv("KONG_DATADOG_AGENT_HOST")
local AGENT_PORT = tonumber(os.getenv("KONG_DATADOG_AGENT_PORT") or "")

local function service_name(record)
  local s = record.service
  if not s then
    return ""
  end
  local name = s.name
  if name == nil or name == ngx.null then
    name = s.host
  end
  return (tostring(name):gsub("%.", "_"))
end

local function tags_of(conf, record, metric)
  local tags = {
    (conf.service_name_tag or "name") .. ":" .. service_name(record),
    (conf.status_tag or "status") .. ":" .. tostring(record.session and record.session.status or "-"),
  }
  local id = CONSUMER_IDS[metric.consumer_identifier]
  local consumer = record.consumer and id and id(record.consumer)
  if consumer then
    tags[#tags + 1] = (conf.consumer_tag or "consumer") .. ":" .. consumer
  end
  for _, t in ipairs(metric.tags or {}) do
    tags[#tags + 1] = t
  end
  return tags
end

local function send_entries(conf, records)
  local host, port = conf.host or AGENT_HOST, conf.port or AGENT_PORT
  local sock = ngx.socket.udp()
  local ok, err = sock:setpeername(host, port)
  if not ok then
    err = string.format("failed to connect to %s:%s: %s", tostring(host), tostring(port), err)
    kong.log.err("failed to create Statsd logger: ", err)
    return false, err
  end
  for _, record in ipairs(records) do
    for _, metric in ipairs(conf.metrics) do
      local stat = STATS[metric.name]
      local value = stat and stat[2](record)
      if value ~= nil then
        local rate = ""
        if metric.sample_rate and metric.sample_rate ~= 1 then
          rate = "|@" .. metric.sample_rate
        end
        local line = string.format("%s.%s:%s|%s%s|#%s", conf.prefix or "kong", stat[1], value,
          STAT_TYPES[metric.stat_type], rate, table.concat(tags_of(conf, record, metric), ","))
        kong.log.debug("Sending data to statsd server: ", line)
        ok, err = sock:send(line)
        if not ok then
          kong.log.err("failed to send data to ", host, ":", tostring(port), ": ", err)
        end
      end
    end
  end
  ok, err = sock:close()
  if not ok then
    kong.log.err("failed to close connection from ", host, ":", tostring(port), ": ", err)
  end
  return true
end

function DatadogHandler:log(conf)
  local ok, err = Queue.enqueue(Queue.get_plugin_params("datadog", conf), send_entries, conf, kong.log.serialize())
  if not ok then
    kong.log.err("failed to enqueue log entry to Datadog: ", err)
  end
end

return DatadogHandler
