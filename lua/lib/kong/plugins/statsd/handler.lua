-- statsd: in the log phase, queues the serialized session; the queue
-- sends Kong's StatsD metrics for it over UDP (or TCP), named
-- <prefix>.service.<service>.<stat> ("global.unmatched" without a
-- service), or with tags in the configured tag_style.
--
-- Kong's handler reads the HTTP record (request.size, response.status,
-- latencies.request), which stream records lack, and sends nothing in
-- stream. Here the stream record answers: request.size is the bytes the
-- client sent (session.received), response.size the bytes it got
-- (session.sent), latency the session's duration, and the status the
-- session status. upstream_latency has no stream value and is not sent;
-- consumer metrics need a consumer, which stream sessions never have;
-- shdict_usage is not sent in stream, as in Kong.
local Queue = require "kong.tools.queue"
local STATS = require "gong.stream_stats"

local StatsdHandler = {
  PRIORITY = 11,
  VERSION = kong.version,
}

local HOSTNAME = (kong.node.get_hostname():gsub("%.", "_"))

local STAT_TYPES = { gauge = "g", counter = "c", timer = "ms", histogram = "h", meter = "m", set = "s" }

local SERVICE_IDS = {
  service_id = function(s) return s.id end,
  service_name = function(s) return s.name end,
  service_host = function(s) return s.host end,
  service_name_or_host = function(s)
    if s.name ~= nil and s.name ~= ngx.null then
      return s.name
    end
    return s.host
  end,
}

local CONSUMER_IDS = {
  consumer_id = function(c) return c.id end,
  custom_id = function(c) return c.custom_id end,
  username = function(c) return c.username end,
}

local TAG_FORMATS = {
  dogstatsd = function(name, value, kind, rate, tags)
    return string.format("%s:%s|%s%s|#%s", name, value, kind, rate, table.concat(tags.colon, ","))
  end,
  influxdb = function(name, value, kind, rate, tags)
    return string.format("%s,%s:%s|%s%s", name, table.concat(tags.equal, ","), value, kind, rate)
  end,
  librato = function(name, value, kind, rate, tags)
    return string.format("%s#%s:%s|%s%s", name, table.concat(tags.equal, ","), value, kind, rate)
  end,
  signalfx = function(name, value, kind, rate, tags)
    return string.format("%s[%s]:%s|%s%s", name, table.concat(tags.equal, ","), value, kind, rate)
  end,
}

-- Logger buffers or sends one batch's metric lines.
local Logger = {}
Logger.__index = Logger

local function new_logger(conf)
  local sock, ok, err
  if conf.use_tcp then
    sock = ngx.socket.tcp()
    sock:settimeout(1000)
    ok, err = sock:connect(conf.host, conf.port)
  else
    sock = ngx.socket.udp()
    ok, err = sock:setpeername(conf.host, conf.port)
  end
  if not ok then
    return nil, string.format("failed to connect to %s:%s: %s", conf.host, tostring(conf.port), err)
  end
  return setmetatable({ conf = conf, sock = sock, buffer = {}, size = 0 }, Logger)
end

-- write sends line; last marks the flush of the UDP buffer on close. The
-- messages are Kong's statsd_logger's, through ngx.log as there.
function Logger:write(line, last)
  local what = last and "last data" or "data"
  ngx.log(ngx.DEBUG, "[statsd] sending ", what, " to statsd server: ", line)
  local ok, err = self.sock:send(line)
  if ok and self.conf.use_tcp then
    ok, err = self.sock:send("\n")
  end
  if not ok then
    ngx.log(ngx.ERR, string.format("[statsd] failed to send %s to %s:%s: %s", what, self.conf.host,
      tostring(self.conf.port), err))
  end
end

function Logger:send(stat, value, stat_type, sample_rate, tags)
  local conf = self.conf
  local rate = ""
  if sample_rate and sample_rate ~= 1 then
    rate = "|@" .. sample_rate
  end
  local name = conf._prefix .. "." .. stat
  local line
  if tags then
    line = TAG_FORMATS[conf.tag_style](name, value, STAT_TYPES[stat_type], rate, tags)
  else
    line = string.format("%s:%s|%s%s", name, value, STAT_TYPES[stat_type], rate)
  end
  local limit = conf.udp_packet_size
  if conf.use_tcp or limit <= 0 then
    return self:write(line)
  end
  if self.size == 0 and #line > limit then
    ngx.log(ngx.WARN, "[statsd] configured udp_packet_size is smaller than single message of length ",
      #line, ", UDP packet may be truncated")
  end
  if self.size > 0 and self.size + #line > limit then
    self:write(table.concat(self.buffer, "\n"))
    self.buffer, self.size = {}, 0
  end
  self.buffer[#self.buffer + 1] = line
  self.size = self.size + #line + 1
end

function Logger:close()
  if self.conf.use_tcp then
    self.sock:setkeepalive()
    return
  end
  if #self.buffer > 0 then
    self:write(table.concat(self.buffer, "\n"), true)
  end
  local ok, err = self.sock:close()
  if not ok then
    ngx.log(ngx.ERR, string.format("[statsd] failed to close connection from %s:%s: %s", self.conf.host,
      tostring(self.conf.port), err))
  end
end

local function tags_of(conf, record, metric)
  local service = record.service
  if not service then
    return nil
  end
  local t = {
    service = SERVICE_IDS[metric.service_identifier or conf.service_identifier_default](service),
    route = record.route and (record.route.name or record.route.id),
    workspace = record.workspace,
    node = HOSTNAME,
    status = record.session and record.session.status,
  }
  local tags = { colon = {}, equal = {} }
  for _, k in ipairs({ "service", "route", "workspace", "node", "status" }) do
    if t[k] ~= nil and t[k] ~= ngx.null then
      tags.colon[#tags.colon + 1] = k .. ":" .. tostring(t[k])
      tags.equal[#tags.equal + 1] = k .. "=" .. tostring(t[k])
    end
  end
  return tags
end

local function scope_of(conf, record, metric)
  local service = record.service
  if not service then
    return "global.unmatched"
  end
  local id = SERVICE_IDS[metric.service_identifier or conf.service_identifier_default](service)
  if id == nil or id == ngx.null then
    return "service.unnamed"
  end
  return "service." .. tostring(id):gsub("%.", "_")
end

local function send_record(logger, conf, record)
  local status = record.session and record.session.status
  local consumer = record.consumer
  for _, metric in ipairs(conf.metrics) do
    local name = metric.name
    local stat = STATS[name]
    if stat then
      local value = stat[2](record)
      if value ~= nil and value ~= -1 then
        if conf.tag_style then
          local tags = tags_of(conf, record, metric)
          if tags then
            logger:send(stat[1], value, metric.stat_type, metric.sample_rate, tags)
          end
        else
          logger:send(scope_of(conf, record, metric) .. "." .. stat[1], value, metric.stat_type, metric.sample_rate)
        end
      end
    elseif not conf.tag_style then
      local scope = scope_of(conf, record, metric)
      local consumer_id = consumer and CONSUMER_IDS[metric.consumer_identifier or conf.consumer_identifier_default](consumer)
      if name == "status_count" then
        logger:send(scope .. ".status." .. status, 1, "counter", metric.sample_rate)
      elseif name == "status_count_per_workspace" and record.workspace then
        logger:send(scope .. ".workspace." .. record.workspace .. ".status." .. status, 1, "counter", metric.sample_rate)
      elseif consumer_id and name == "unique_users" then
        logger:send(scope .. ".user.uniques", consumer_id, "set")
      elseif consumer_id and name == "request_per_user" then
        logger:send(scope .. ".user." .. consumer_id .. ".request.count", 1, "counter", metric.sample_rate)
      elseif consumer_id and name == "status_count_per_user" then
        logger:send(scope .. ".user." .. consumer_id .. ".status." .. status, 1, "counter", metric.sample_rate)
      elseif consumer_id and name == "status_count_per_user_per_route" and record.route then
        logger:send("route." .. record.route.id .. ".user." .. consumer_id .. ".status." .. status, 1, "counter", metric.sample_rate)
      end
    end
  end
end

local function send_entries(conf, records)
  local logger, err = new_logger(conf)
  if not logger then
    kong.log.err("failed to create Statsd logger: ", err)
    return false, err
  end
  for _, record in ipairs(records) do
    send_record(logger, conf, record)
  end
  logger:close()
  return true
end

-- allowed reports whether status is in one of the "from-to" ranges.
local function allowed(ranges, status)
  if type(ranges) ~= "table" then
    return true
  end
  for _, range in ipairs(ranges) do
    local from, to = range:match("^(%d+)-(%d+)$")
    if from and status >= tonumber(from) and status <= tonumber(to) then
      return true
    end
  end
  return false
end

function StatsdHandler:log(conf)
  if not allowed(conf.allow_status_codes, ngx.status) then
    return
  end
  kong.log.debug("Status code is within given status code ranges")
  conf._prefix = conf.prefix
  if conf.hostname_in_prefix and conf.tag_style == nil then
    conf._prefix = conf._prefix .. ".node." .. HOSTNAME
  end
  local ok, err = Queue.enqueue(Queue.get_plugin_params("statsd", conf), send_entries, conf, kong.log.serialize())
  if not ok then
    kong.log.err("Failed to enqueue log entry to StatsD server: ", err)
  end
end

return StatsdHandler
