-- ari.app: a Stasis application whose every incoming channel runs as its
-- own coroutine with a Call (see ari.call).
--
--   local app = ari.app "ivr"           -- or ari.app{ app = "ivr", url = ..., user = ..., password = ... }
--   app:on_call(function(call, args) call:answer() ... end)
--
-- Settings default to the ari-lua flags and environment (ari.config).  The
-- app routes each event synchronously, in arrival order, to the Call it
-- concerns (by channel id, playback and recording target), before the
-- client's own `on` handlers run.
local sched = require "ari.sched"
local core = require "ari.core"
local config = require "ari.config"
local callmod = require "ari.call"
local uuid = require "ari.uuid"
local log = require "ari.log"

local M = {}

local App = {}
App.__index = App
M.App = App

local apps = {} -- every app created, for ari.bridge and shutdown
M.apps = apps

-- Originate failure reasons by hang-up cause (Q.850).
local CAUSES = {
  [17] = "busy", [18] = "no_answer", [19] = "no_answer", [21] = "rejected",
  [34] = "congestion", [38] = "congestion", [41] = "congestion", [42] = "congestion",
  [1] = "unallocated", [3] = "no_route",
}
M.CAUSES = CAUSES

local function target_channel(obj)
  local uri = obj and obj.target_uri
  if uri and uri:sub(1, 8) == "channel:" then return uri:sub(9) end
end
local function target_bridge(obj)
  local uri = obj and obj.target_uri
  if uri and uri:sub(1, 7) == "bridge:" then return uri:sub(8) end
end

--- Create the app.  opts: app (name), url, user, password, auto_hangup
-- (hang up a channel whose script ended while it is still up; default true),
-- client (an existing client), any other ari.connect option.
function M.app(opts)
  if type(opts) == "string" then opts = { app = opts } end
  opts = opts or {}
  local name = opts.app or config.app
  if not name then error("ari.app: no application name (give one, or --app / ARI_APP)", 2) end
  local self = setmetatable({
    name = name,
    calls = {},        -- channel id -> Call
    ncalls = 0,
    pending = {},      -- channel id -> originate waiter (channels the app created)
    bridges = {},      -- bridge id -> Bridge helper
    handler = nil,
    accepting = true,
    auto_hangup = opts.auto_hangup ~= false,
    stats = { started = 0, ended = 0, normal = 0, hangup = 0, error = 0 },
  }, App)
  self.client = opts.client or require("ari.client").connect {
    url = opts.url or config.url, user = opts.user or config.user,
    password = opts.password or config.password, app = name,
    subscribe_all = opts.subscribe_all, transport = opts.transport,
  }
  self.client:add_router(function(ev) return self:_route(ev) end)
  apps[#apps + 1] = self
  local ari = require "ari"
  ari.on_shutdown(function() self:shutdown() end)
  return self
end

--- Register the function run, as its own coroutine, for every channel that
-- enters the app: fn(call, args) where args are the StasisStart args.
function App:on_call(fn) self.handler = fn; return self end

--- Number of live calls.
function App:active() return self.ncalls end

-- Route one event; called synchronously by the client in arrival order.
function App:_route(ev)
  local t = ev.type
  local ch = ev.channel
  if t == "StasisStart" and ch then
    if ev.replace_channel and self.calls[ev.replace_channel.id] then
      -- a channel swap (e.g. a masquerade): the call continues on the new id
      local call = self.calls[ev.replace_channel.id]
      self.calls[ev.replace_channel.id] = nil
      call.id = ch.id
      call.channel = ch
      self.calls[ch.id] = call
      return true
    end
    local p = self.pending[ch.id]
    if p then p(ev); return true end
    if self.calls[ch.id] then self.calls[ch.id]:_deliver(ev); return true end
    self:_start_call(ev)
    return true
  end
  local call = ch and self.calls[ch.id]
  if call == nil and ch and self.pending[ch.id] then self.pending[ch.id](ev); return true end
  if call == nil then
    local id = target_channel(ev.playback) or target_channel(ev.recording)
    call = id and self.calls[id]
    if call == nil then
      local bid = target_bridge(ev.playback) or target_bridge(ev.recording) or (ev.bridge and ev.bridge.id)
      local b = bid and self.bridges[bid]
      if b then b:_deliver(ev) end
      if ev.type == "ChannelEnteredBridge" or ev.type == "ChannelLeftBridge" then
        -- fall through to the channel too
      else
        return b ~= nil
      end
    end
  else
    local bid = ev.bridge and ev.bridge.id
    local b = bid and self.bridges[bid]
    if b then b:_deliver(ev) end
  end
  if call then call:_deliver(ev); return true end
  -- events of the peer of a Dial go to the caller's call
  if ev.peer and self.calls[ev.peer.id] then self.calls[ev.peer.id]:_deliver(ev); return true end
  return false
end

function App:_add(call)
  self.calls[call.id] = call
  self.ncalls = self.ncalls + 1
  self.stats.started = self.stats.started + 1
end

function App:_remove(call, outcome)
  if self.calls[call.id] == call then
    self.calls[call.id] = nil
    self.ncalls = self.ncalls - 1
    self.stats.ended = self.stats.ended + 1
    self.stats[outcome] = (self.stats[outcome] or 0) + 1
  end
end

-- The runner: the call's coroutine from StasisStart to the end.
function App:_start_call(ev)
  local ch = ev.channel
  if not self.accepting or self.handler == nil then
    log.warn("%s: not taking call %s (%s)", self.name, ch.id, self.accepting and "no on_call handler" or "shutting down")
    sched.spawn(function() pcall(self.client.channels.hangup, { channelId = ch.id }) end)
    return
  end
  local call = callmod.new(self, ch, nil)
  call.runner = true
  self:_add(call)
  sched.spawn(function()
    call.co = coroutine.running()
    local ok, err = xpcall(self.handler, sched.traceback_handler, call, ev.args or {})
    self:_finish(call, ok, err)
  end)
end

function App:_finish(call, ok, err)
  local outcome
  if ok then outcome = "normal"
  elseif callmod.is_hangup(err) then outcome = "hangup"
  else
    outcome = "error"
    call.log:error("script error: %s", type(err) == "table" and (tostring(err) .. (err.traceback and ("\n" .. err.traceback) or "")) or tostring(err))
  end
  call.outcome = outcome
  if not call.hungup and (outcome == "error" or self.auto_hangup) then
    local hok, herr = pcall(call.hangup, call)
    if not hok and not callmod.is_hangup(herr) then call.log:warn("hang-up failed: %s", tostring(herr)) end
  end
  call:_run_hooks()
  self:_remove(call, outcome)
  call.queue, call.waiters = {}, {}
  if self.on_end then self.on_end(call, outcome, err) end
end

--- Originate a call and wait until it is answered (it enters the app).
-- opts: endpoint, caller_id, timeout (s, default 30), variables, app_args,
-- other options of channels.originate by their ARI name.  Returns the Call
-- (not run by on_call); raises a CallError with reason "busy", "no_answer",
-- "congestion", "failed"...
function App:originate(opts)
  local id = uuid.new()
  local timeout = opts.timeout or 30
  local answered, failed_ev
  local call = callmod.new(self, id, nil)
  local wake_fn
  self.pending[id] = function(ev)
    if ev.type == "StasisStart" then
      answered = ev
      self.pending[id] = nil
      if wake_fn then wake_fn(true) end
    elseif ev.type == "ChannelDestroyed" or ev.type == "ChannelHangupRequest" then
      failed_ev = failed_ev or ev
      if ev.type == "ChannelDestroyed" then
        self.pending[id] = nil
        if wake_fn then wake_fn(false) end
      end
    end
  end
  local params = {
    endpoint = opts.endpoint, app = self.name, appArgs = opts.app_args, channelId = id,
    callerId = opts.caller_id, timeout = timeout, variables = opts.variables,
    otherChannelId = opts.other_channel_id, originator = opts.originator, formats = opts.formats,
  }
  local ok, err = pcall(self.client.channels.originate, params)
  if not ok then
    self.pending[id] = nil
    error(err, 0)
  end
  if not answered and not (failed_ev and failed_ev.type == "ChannelDestroyed") then
    local guard
    local wok, res = pcall(sched.suspend, function(wake)
      wake_fn = wake
      guard = core.timer((timeout + 5) * 1000, function() wake(nil) end)
    end)
    if guard then guard:stop() end
    wake_fn = nil
    if not wok then
      -- the waiting call hung up (or was cancelled): drop the new leg
      self.pending[id] = nil
      sched.spawn(function() pcall(self.client.channels.hangup, { channelId = id }) end)
      error(res, 0)
    end
    if res == nil and not answered then
      self.pending[id] = nil
      sched.spawn(function() pcall(self.client.channels.hangup, { channelId = id }) end)
      error(callmod.call_error("originate", "no_answer", "no answer from " .. opts.endpoint .. " within " .. timeout .. " s"), 0)
    end
  end
  if not answered then
    local cause = failed_ev and (failed_ev.cause or (failed_ev.channel and failed_ev.channel.hangupcause))
    local reason = CAUSES[cause] or "failed"
    error(callmod.call_error("originate", reason,
      string.format("%s: %s (cause %s%s)", opts.endpoint, reason, tostring(cause),
        failed_ev and failed_ev.cause_txt and (", " .. failed_ev.cause_txt) or ""),
      { cause = cause }), 0)
  end
  call.channel = answered.channel
  call.log = log.new(id .. " " .. (answered.channel.name or ""))
  call.co = nil
  self:_add(call)
  return call
end

--- Stop taking new calls; let running calls finish within the grace period
-- (ari.config.shutdown_grace ms), then hang up what remains.
function App:shutdown()
  if not self.accepting then return end
  self.accepting = false
  local grace = config.shutdown_grace or 10000
  local deadline = core.now() + grace
  while self.ncalls > 0 and core.now() < deadline do sched.sleep(50) end
  for _, call in pairs(self.calls) do
    if not call.hungup then pcall(call.hangup, call) end
  end
  self.client:close()
end

-- Bridges ---------------------------------------------------------------

local Bridge = {}
Bridge.__index = Bridge
M.Bridge = Bridge

--- app:bridge{ type = "mixing"|"holding"|..., name = ... } creates a bridge.
function App:bridge(opts)
  opts = opts or {}
  local id = opts.id or uuid.new()
  local b = setmetatable({ id = id, app = self, client = self.client, queue = {}, waiters = {}, members = {} }, Bridge)
  self.bridges[id] = b
  b.bridge = self.client.bridges.createWithId { bridgeId = id, type = opts.type or "mixing", name = opts.name }
  return b
end

function Bridge:_deliver(ev)
  if ev.type == "ChannelEnteredBridge" and ev.channel then self.members[ev.channel.id] = true
  elseif ev.type == "ChannelLeftBridge" and ev.channel then self.members[ev.channel.id] = nil end
  for i = 1, #self.waiters do
    local w = self.waiters[i]
    if w.match(ev) then table.remove(self.waiters, i); w.wake(ev); return end
  end
  local q = self.queue
  q[#q + 1] = ev
  if #q > 64 then table.remove(q, 1) end
end

function Bridge:wait(typ, opts)
  opts = opts or {}
  local match = type(typ) == "function" and typ or function(ev)
    if ev.type ~= typ then return false end
    if opts.filter then return opts.filter(ev) end
    return true
  end
  for i = 1, #self.queue do if match(self.queue[i]) then return table.remove(self.queue, i) end end
  local w = { match = match }
  local timer
  local ev = sched.suspend(function(wake)
    w.wake = wake
    self.waiters[#self.waiters + 1] = w
    if opts.timeout then timer = core.timer(opts.timeout, function() wake(nil) end) end
  end)
  if timer then timer:stop() end
  for i = 1, #self.waiters do if self.waiters[i] == w then table.remove(self.waiters, i); break end end
  return ev
end

local function chan_id(c) return type(c) == "table" and c.id or c end

function Bridge:join(call, opts)
  opts = opts or {}
  self.client.bridges.addChannel { bridgeId = self.id, channel = chan_id(call), role = opts.role,
    mute = opts.mute, absorbDTMF = opts.absorb_dtmf }
end
function Bridge:leave(call)
  self.client.bridges.removeChannel { bridgeId = self.id, channel = chan_id(call) }
end
--- Play to everyone in the bridge; waits until the playback has finished.
function Bridge:play(media)
  local pid = uuid.new()
  self.client.bridges.playWithId { bridgeId = self.id, playbackId = pid, media = type(media) == "string" and { media } or media }
  return self:wait(function(ev) return ev.type == "PlaybackFinished" and ev.playback and ev.playback.id == pid end)
end
function Bridge:moh(class) self.client.bridges.startMoh { bridgeId = self.id, mohClass = class } end
function Bridge:stop_moh() self.client.bridges.stopMoh { bridgeId = self.id } end
function Bridge:destroy()
  self.app.bridges[self.id] = nil
  local ok, err = pcall(self.client.bridges.destroy, { bridgeId = self.id })
  if not ok and not (type(err) == "table" and err.status == 404) then error(err, 0) end
end
function Bridge:count() local n = 0; for _ in pairs(self.members) do n = n + 1 end; return n end

--- ari.bridge{...}: a bridge on the most recently created app.
function M.bridge(opts)
  local app = apps[#apps]
  if app == nil then error("ari.bridge: create an app first (ari.app)", 2) end
  return app:bridge(opts)
end

return M
