package pdk

import (
	"os"
	"sync"

	"github.com/gong-proxy/gong/lua"
	glua "github.com/yuin/gopher-lua"
)

// Events carries kong.worker_events between the VMs (workers) of one
// generation: an event posted on one VM runs the handlers every VM
// registered for it, each on its own VM, soon after, as lua-resty-events
// delivers to every nginx worker. It is safe for concurrent use.
type Events struct {
	mu sync.Mutex
	// subscribers are the VMs with handlers, and the registry id of each
	// one's dispatcher.
	subscribers map[*lua.VM]eventSubscriber
}

type eventSubscriber struct {
	b  *Binding
	id int
}

// NewEvents returns a hub with no subscribers.
func NewEvents() *Events { return &Events{subscribers: map[*lua.VM]eventSubscriber{}} }

// eventJob is one event on its way to one VM.
type eventJob struct {
	hub           *Events
	source, event string
	data          any
}

func (p *pdk) events() *Events {
	if p.opts.Events == nil {
		p.opts.Events = NewEvents()
	}
	return p.opts.Events
}

// subscribe makes this VM's dispatcher (a Lua function taking source,
// event, data and pid) receive the events posted from now on.
func (p *pdk) subscribe(L *glua.LState) int {
	fn := L.CheckFunction(1)
	vm := p.b.vm
	if vm == nil || vm.Pool() == nil {
		return 0
	}
	ev := p.events()
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if _, ok := ev.subscribers[vm]; ok {
		return 0
	}
	p.timerSeq++
	entry := L.NewTable()
	entry.Append(fn)
	timerRegistry(L).RawSetInt(p.timerSeq, entry)
	ev.subscribers[vm] = eventSubscriber{b: p.b, id: p.timerSeq}
	return 0
}

// post sends (source, event, data) to every subscribed VM; local keeps it
// on this VM. The data must be a value cjson could carry.
func (p *pdk) post(L *glua.LState, local bool) int {
	source, event := L.CheckString(1), L.CheckString(2)
	data, err := luaToGo(L.Get(3), 0)
	if err != nil {
		return pushErr(L, "failed to post event: "+err.Error())
	}
	ev := p.events()
	ev.mu.Lock()
	var targets []*timerJob
	for vm, sub := range ev.subscribers {
		if vm.Broken() || local && vm != p.b.vm {
			continue
		}
		targets = append(targets, &timerJob{vm: vm, b: sub.b, id: sub.id, release: vm.Hold(),
			event: &eventJob{hub: ev, source: source, event: event, data: data}})
	}
	ev.mu.Unlock()
	for _, j := range targets {
		if err := p.timers().schedule(j, 0); err != nil {
			j.release()
			return pushErr(L, "failed to post event: "+err.Error())
		}
	}
	L.Push(glua.LTrue)
	return 1
}

// forget drops vm from the subscribers; the pool closes it.
func (ev *Events) forget(vm *lua.VM) {
	ev.mu.Lock()
	delete(ev.subscribers, vm)
	ev.mu.Unlock()
}

// eventArgs are the dispatcher's arguments for j on L.
func eventArgs(L *glua.LState, e *eventJob) []glua.LValue {
	return []glua.LValue{glua.LString(e.source), glua.LString(e.event), toLua(L, e.data, nil), glua.LNumber(os.Getpid())}
}

// openKongExtras installs kong.timer, kong.worker_events and
// kong.cluster_events, written in Lua (kongExtrasSource) over ngx.timer
// and the Go functions here.
func (p *pdk) openKongExtras(L *glua.LState, kong *glua.LTable) {
	internal := L.NewTable()
	setFuncs(L, internal, map[string]glua.LGFunction{
		"at":        func(L *glua.LState) int { return p.timerStart(L) },
		"cancel":    func(L *glua.LState) int { timerRegistry(L).RawSetInt(L.CheckInt(1), glua.LNil); return 0 },
		"subscribe": p.subscribe,
		"post":      func(L *glua.LState) int { return p.post(L, false) },
		"post_local": func(L *glua.LState) int {
			return p.post(L, true)
		},
	})
	fn := L.NewFunctionFromProto(kongExtrasProto())
	L.Push(fn)
	L.Push(kong)
	L.Push(internal)
	L.Call(2, 0)
}

var kongExtrasProto = sync.OnceValue(func() *glua.FunctionProto {
	p, err := lua.Compile("=kong.timer", kongExtrasSource)
	if err != nil {
		panic(err)
	}
	return p
})

// kongExtrasSource builds, per VM (nginx worker):
//   - kong.timer, lua-resty-timer-ng's API as Kong's code calls it (at,
//     every, named_at, named_every, cancel, pause, resume, is_managed,
//     stats; start, freeze, destroy and set_debug do nothing) over
//     ngx.timer: names are per worker, as timer-ng's are;
//   - kong.worker_events (register, register_weak, unregister, post,
//     post_local, poll), handlers called as handler(data, event, source,
//     pid), for the events of every worker;
//   - kong.cluster_events (subscribe, broadcast) as Kong's DB-less mode
//     has them: a single node has no other node to tell.
const kongExtrasSource = `
local kong, internal = ...
-- ngx is read when called: it is installed after kong.

local timers, seq = {}, 0

local function start(name, delay, every, cb, ...)
  if type(cb) ~= "function" then
    error("callback must be a function", 3)
  end
  if name == nil then
    seq = seq + 1
    name = "unix_timestamp=" .. ngx.now() .. ";counter=" .. seq
  elseif timers[name] then
    return nil, "already exists timer"
  end
  local t = {}
  local function run(premature, ...)
    if not every then
      timers[name] = nil
    end
    if t.paused and not premature then
      return
    end
    return cb(premature, ...)
  end
  local id, err = internal.at(delay, every, run, ...)
  if not id then
    return nil, err
  end
  t.id = id
  timers[name] = t
  return name
end

local function noop() return true end

local function set_paused(name, paused)
  local t = timers[name]
  if not t then
    return false, "timer not found"
  end
  t.paused = paused
  return true
end

kong.timer = {
  at = function(_, delay, cb, ...) return start(nil, delay, false, cb, ...) end,
  every = function(_, interval, cb, ...) return start(nil, interval, true, cb, ...) end,
  named_at = function(_, name, delay, cb, ...) return start(name, delay, false, cb, ...) end,
  named_every = function(_, name, interval, cb, ...) return start(name, interval, true, cb, ...) end,
  cancel = function(_, name)
    local t = timers[name]
    if not t then
      return false, "timer not found"
    end
    internal.cancel(t.id)
    timers[name] = nil
    return true
  end,
  pause = function(_, name) return set_paused(name, true) end,
  resume = function(_, name) return set_paused(name, false) end,
  is_managed = function(_, name) return timers[name] ~= nil end,
  stats = function()
    local running, pending = ngx.timer.running_count(), ngx.timer.pending_count()
    local list = {}
    for name, t in pairs(timers) do
      list[name] = { name = name, meta = { paused = t.paused == true } }
    end
    return { sys = { running = running, pending = pending, waiting = 0, total = running + pending },
             timers = list, flamegraph = {} }
  end,
  start = noop, freeze = noop, destroy = noop, set_debug = noop,
}

-- handlers[source][event or ""] = { handler = true, ... }
local handlers = {}

local function dispatch(premature, source, event, data, pid)
  if premature then
    return
  end
  local by_source = handlers[source]
  if not by_source then
    return
  end
  for _, key in ipairs({ event, "" }) do
    local list = by_source[key]
    if list then
      for handler in pairs(list) do
        local ok, err = pcall(handler, data, event, source, pid)
        if not ok then
          ngx.log(ngx.ERR, "worker-events: event callback failed; source=", source,
                  ", event=", event, ", pid=", pid, " error='", tostring(err), "'")
        end
      end
    end
  end
end

local function register(handler, source, ...)
  if type(handler) ~= "function" then
    error("callback must be a function", 2)
  end
  internal.subscribe(dispatch)
  local by_source = handlers[source] or {}
  handlers[source] = by_source
  local events = { ... }
  if #events == 0 then
    events = { "" }
  end
  for _, event in ipairs(events) do
    by_source[event] = by_source[event] or {}
    by_source[event][handler] = true
  end
  return true
end

kong.worker_events = {
  register = register,
  register_weak = register,
  unregister = function(handler, source, ...)
    local by_source = handlers[source]
    if not by_source then
      return true
    end
    local events = { ... }
    if #events == 0 then
      for _, list in pairs(by_source) do
        list[handler] = nil
      end
    else
      for _, event in ipairs(events) do
        if by_source[event] then
          by_source[event][handler] = nil
        end
      end
    end
    return true
  end,
  post = function(source, event, data) return internal.post(source, event, data) end,
  post_local = function(source, event, data) return internal.post_local(source, event, data) end,
  poll = function() return "done" end,
}

local channels = {}

kong.cluster_events = {
  subscribe = function(_, channel, cb)
    if type(channel) ~= "string" then
      return error("channel must be a string")
    end
    if type(cb) ~= "function" then
      return error("callback must be a function")
    end
    channels[channel] = channels[channel] or {}
    table.insert(channels[channel], cb)
    return true
  end,
  broadcast = function(_, channel, data)
    if type(channel) ~= "string" then
      return error("channel must be a string")
    end
    if type(data) ~= "string" then
      return error("data must be a string")
    end
    return true
  end,
}
`
