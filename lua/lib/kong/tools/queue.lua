-- kong.tools.queue: batches values for a handler function, off the
-- connection path. Plugins call Queue.enqueue(queue_conf, handler,
-- handler_conf, value) in their log phase; the handler gets up to
-- max_batch_size values at once, max_coalescing_delay seconds after the
-- first one arrived (at once when a batch is full), and must return true.
-- A failing batch is retried with doubling delays (initial_retry_delay up
-- to max_retry_delay) until max_retry_time has passed, then dropped.
--
-- Queues live in the Lua VM, as Kong's live in a worker. The waits are
-- ngx.timer delays rather than sleeps inside one long timer, so the VM is
-- free for connections between batches.
--
-- Every entry is reported to gong.queue_ledger when it is queued and when
-- it leaves the queue, sent or lost, so that entries dropped here, or still
-- queued when the generation's timers end, are counted in /metrics.
local ledger = require "gong.queue_ledger"

local Queue = {}
Queue.__index = Queue

local CAPACITY_WARNING_THRESHOLD = 0.8
local WARNING_INTERVAL = 60

local queues = {}

local function queue_key(name)
  return "default." .. name
end

function Queue:log(logger, fmt, ...)
  local msg = "[" .. (self.log_tag or "") .. "] queue " .. self.name .. ": " .. fmt
  if select("#", ...) > 0 then
    msg = string.format(msg, ...)
  end
  logger(msg)
end

function Queue:count()
  return #self.entries
end

local function full(q)
  return #q.entries >= q.max_entries
end

local function too_large(q, entry)
  return q.max_bytes and type(entry) == "string" and #entry > q.max_bytes
end

local function exceeds_bytes(q, entry)
  return q.max_bytes and type(entry) == "string" and q.bytes_queued + #entry > q.max_bytes
end

local function drop_oldest(q)
  local e = table.remove(q.entries, 1)
  if q.max_bytes and type(e) == "string" then
    q.bytes_queued = q.bytes_queued - #e
  end
end

local process

-- schedule arms the queue's timer: at once when a batch is ready (or
-- delay says so), else after the coalescing delay. A timer due sooner
-- than the one pending replaces it, unless that one is a retry's backoff.
local function schedule(q, delay)
  if not delay then
    delay = #q.entries >= q.max_batch_size and 0 or q.max_coalescing_delay
  end
  local due = ngx.now() + delay
  if q.due and (q.due <= due or q.retries) then
    return true
  end
  local token = (q.token or 0) + 1
  local ok, err = ngx.timer.at(delay, process, q, token)
  if not ok then
    return nil, "could not start the queue timer: " .. err
  end
  q.token, q.due = token, due
  return true
end

-- process hands one batch to the handler, then schedules the next one,
-- a retry, or forgets the empty queue. A replaced timer does nothing.
process = function(premature, q, token)
  if token ~= q.token then
    return
  end
  q.due = nil
  local n = math.min(#q.entries, q.max_batch_size)
  if n == 0 then
    queues[q.key] = nil
    return
  end
  local batch = {}
  for i = 1, n do
    batch[i] = q.entries[i]
  end
  q.batch_started = q.batch_started or ngx.now()
  local status, ok, err = pcall(q.handler, q.handler_conf, batch)
  local done = status and ok == true
  local lost = false
  if not done then
    err = status and err or ok
    q:log(kong.log.warn, "handler could not process entries: %s", tostring(err or "no error details returned by handler"))
    if premature or ngx.now() - q.batch_started >= q.max_retry_time then
      q:log(kong.log.err, "could not send entries due to max_retry_time exceeded. %d queue entries were lost", n)
      done = true
      lost = true
    else
      q.retries = (q.retries or 0) + 1
      local delay = math.min(q.max_retry_delay, 2 ^ (q.retries - 1) * q.initial_retry_delay)
      if schedule(q, delay) then
        return
      end
      -- no timer can start any more (the process is exiting): last try
      return process(true, q, token)
    end
  end
  for _ = 1, n do
    drop_oldest(q)
  end
  ledger.release(q.plugin, n, lost)
  q.retries, q.batch_started = nil, nil
  if #q.entries == 0 then
    if q.concurrency_limit == 1 then
      queues[q.key] = nil
    end
    return
  end
  if premature or not schedule(q) then
    return process(true, q, token)
  end
end

local function new_queue(queue_conf, handler, handler_conf, key)
  local q = setmetatable({
    key = key,
    handler = handler,
    handler_conf = handler_conf,
    entries = {},
    bytes_queued = 0,
    plugin = ledger.plugin(),
  }, Queue)
  for k, v in pairs(queue_conf) do
    q[k] = v
  end
  return q
end

local function get_queue(queue_conf, handler, handler_conf)
  local key = queue_key(queue_conf.name)
  local q = queues[key]
  if q then
    -- the latest configuration seen wins, as in Kong
    q.handler_conf = handler_conf
    return q
  end
  q = new_queue(queue_conf, handler, handler_conf, key)
  queues[key] = q
  return q
end

local function enqueue(q, entry)
  if entry == nil then
    return nil, "entry must be a non-nil Lua value"
  end
  if #q.entries >= q.max_entries * CAPACITY_WARNING_THRESHOLD then
    if not q.warned then
      q:log(kong.log.warn, "queue at %s%% capacity", CAPACITY_WARNING_THRESHOLD * 100)
      q.warned = true
    end
  else
    q.warned = nil
  end
  if full(q) then
    q:log(kong.log.err, "queue full, dropping old entries until processing is successful again")
    drop_oldest(q)
    ledger.release(q.plugin, 1, true)
  end
  if too_large(q, entry) then
    local msg = string.format("string to be queued is longer (%d bytes) than the queue's max_bytes (%d bytes)", #entry, q.max_bytes)
    q:log(kong.log.err, msg)
    ledger.hold(q.plugin, 1)
    ledger.release(q.plugin, 1, true)
    return nil, msg
  end
  if exceeds_bytes(q, entry) then
    local dropped = 0
    repeat
      drop_oldest(q)
      dropped = dropped + 1
    until not exceeds_bytes(q, entry)
    q:log(kong.log.err, "byte capacity exceeded, %d queue entries were dropped", dropped)
    ledger.release(q.plugin, dropped, true)
  end
  if q.max_bytes then
    if type(entry) ~= "string" then
      q:log(kong.log.err, "queuing non-string entry to a queue that has queue.max_bytes set, capacity monitoring will not be correct")
    else
      q.bytes_queued = q.bytes_queued + #entry
    end
  end
  q.entries[#q.entries + 1] = entry
  ledger.hold(q.plugin, 1)
  return schedule(q)
end

function Queue.enqueue(queue_conf, handler, handler_conf, value)
  assert(type(queue_conf) == "table", "arg #1 (queue_conf) must be a table")
  assert(type(handler) == "function", "arg #2 (handler) must be a function")
  assert(handler_conf == nil or type(handler_conf) == "table", "arg #3 (handler_conf) must be a table or nil")
  assert(type(queue_conf.name) == "string", "arg #1 (queue_conf) must include a name")
  for _, k in ipairs({ "max_batch_size", "max_coalescing_delay", "max_entries", "max_retry_time",
                       "initial_retry_delay", "max_retry_delay", "concurrency_limit" }) do
    assert(type(queue_conf[k]) == "number", "arg #1 (queue_conf) " .. k .. " must be a number")
  end
  assert(queue_conf.max_bytes == nil or type(queue_conf.max_bytes) == "number",
    "arg #1 (queue_conf) max_bytes must be a number or nil")

  if queue_conf.concurrency_limit == -1 then
    -- unlimited concurrency: every value is a batch of its own
    local q = new_queue(queue_conf, handler, handler_conf, queue_key(queue_conf.name))
    q.max_batch_size = 1
    return enqueue(q, value)
  end
  return enqueue(get_queue(queue_conf, handler, handler_conf), value)
end

function Queue.exists(name)
  return queues[queue_key(name)] ~= nil
end

function Queue.is_full(queue_conf)
  local q = queues[queue_key(queue_conf.name)]
  return q ~= nil and full(q)
end

function Queue.can_enqueue(queue_conf, entry)
  local q = queues[queue_key(queue_conf.name)]
  if not q then
    return true
  end
  return not full(q) and not too_large(q, entry) and not exceeds_bytes(q, entry)
end

local warned_at = {}

local function warn_legacy(name, msg)
  local key = name .. "/" .. msg
  if ngx.now() - (warned_at[key] or 0) >= WARNING_INTERVAL then
    kong.log.warn(msg)
    warned_at[key] = ngx.now()
  end
end

local function set(v)
  return v ~= nil and v ~= ngx.null
end

-- get_plugin_params returns conf.queue completed for enqueue: its name
-- (queue_name, else the plugin instance's id, so each instance of a
-- plugin has its own queue), a log tag naming the
-- plugin, and the legacy queue_size and flush_timeout mapped onto it.
function Queue.get_plugin_params(plugin_name, config, queue_name)
  local queue_conf = config.queue or {}
  -- Outside a plugin's handler there is no instance id; Kong fails there.
  local id = kong.plugin.get_id() or plugin_name
  local tag = plugin_name .. " plugin " .. id
  if config.plugin_instance_name then
    tag = tag .. " (" .. config.plugin_instance_name .. ")"
  end
  queue_conf.log_tag = tag
  if not queue_conf.name then
    queue_conf.name = queue_name or id
  end
  if set(config.retry_count) and config.retry_count ~= 10 then
    warn_legacy(queue_conf.name, "the retry_count parameter no longer works, please update "
      .. "your configuration to use initial_retry_delay and max_retry_time instead")
  end
  if set(config.queue_size) and config.queue_size ~= 1 then
    queue_conf.max_batch_size = config.queue_size
    warn_legacy(queue_conf.name, "the queue_size parameter is deprecated, please update your "
      .. "configuration to use queue.max_batch_size instead")
  end
  if set(config.flush_timeout) and config.flush_timeout ~= 2 then
    queue_conf.max_coalescing_delay = config.flush_timeout
    warn_legacy(queue_conf.name, "the flush_timeout parameter is deprecated, please update your "
      .. "configuration to use queue.max_coalescing_delay instead")
  end
  return queue_conf
end

return Queue
