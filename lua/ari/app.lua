-- ari.app: a Stasis application whose every incoming channel runs as its
-- own coroutine with a Call (see ari.call and docs/calls.md).
--
--   local app = ari.app "ivr"           -- or ari.app{ app = "ivr", url = ..., user = ..., password = ... }
--   app:on_call(function(call, args) call:answer() ... end)
--   local call = app:originate{ endpoint = "PJSIP/100", timeout = 30 }
--
-- Routing: the app registers one router with its client.  The router sees
-- every event synchronously, in arrival order, before the client's own
-- handlers, and hands it to the Call it concerns:
--   channel id (ev.channel, or ev.peer for Dial)  -> self.calls[id]
--   playback / recording target "channel:<id>"     -> self.calls[id]
--   bridge id (ev.bridge, target "bridge:<id>")    -> self.bridges[id]
-- An event for nobody costs a few table lookups.  Channels the app creates
-- itself (originate, dial legs, snoops) are registered under their id
-- before the request is sent, so their StasisStart never starts on_call
-- and none of their early events is lost.
local sched = require "ari.sched"
local core = require "ari.core"
local config = require "ari.config"
local callmod = require "ari.call"
local uuid = require "ari.uuid"
local log = require "ari.log"
local errors = require "ari.errors"

local M = {}

local App = {}
App.__index = App
M.App = App

local apps = {} -- every app created, for ari.bridge
M.apps = apps

local function target_id(obj, prefix_len, prefix)
  local uri = obj and obj.target_uri
  if uri and uri:sub(1, prefix_len) == prefix then return uri:sub(prefix_len + 1) end
end

--- Create the app.  opts: app (name), url, user, password, auto_hangup
-- (hang up a channel whose script ended while it is still in the app;
-- default true), max_call_duration (ms: a call still running after it is
-- hung up), watchdog_ms (ms a call script may run without yielding before
-- an error is raised in it, see ari.watchdog; default off), client (an
-- existing ari.client), subscribe_all, transport,
-- websocket, insecure, cainfo (passed to ari.connect).
function M.app(opts)
  if type(opts) == "string" then opts = { app = opts } end
  opts = opts or {}
  local name = config.app_name(opts.app) -- --app / ARI_APP wins (ari.config)
  if not name then error(errors.usage("ari.app: no application name (give one, or --app / ARI_APP)", 2), 0) end
  -- [ari.reload] a reloaded script gets the previous generation's app (same client, calls)
  if M.reuse then local prev = M.reuse(name); if prev then return prev end end
  -- [/ari.reload]
  local self = setmetatable({
    name = name,
    calls = {},        -- channel id -> Call (incoming, originated, dialling)
    ncalls = 0,
    bridges = {},      -- bridge id -> Bridge
    nbridges = 0,
    handler = nil,
    accepting = true,
    auto_hangup = opts.auto_hangup ~= false,
    max_call_duration = opts.max_call_duration, -- ms; a call running longer is hung up
    watchdog_ms = opts.watchdog_ms, -- [watchdog] ms a script may run without yielding (default off)
    counters = { started = 0, ended = 0, normal = 0, hangup = 0, error = 0, originated = 0, failed = 0, refused = 0 },
  }, App)
  -- [modes] listen = "host:port" (or --listen): Asterisk connects to us (ari.outbound)
  local listen = opts.listen
  if listen == nil then listen = config.listen end
  if listen and not opts.client then self.client = require("ari.outbound").client(opts, name, listen) end
  -- [/modes]
  self.client = self.client or opts.client or require("ari.client").connect {
    url = opts.url or config.url, user = opts.user or config.user,
    password = opts.password or config.password, app = name,
    subscribe_all = opts.subscribe_all, transport = opts.transport, websocket = opts.websocket,
    insecure = opts.insecure, cainfo = opts.cainfo,
  }
  self.own_client = opts.client == nil
  self.router = self.client:add_router(function(ev) return self:_route(ev) end)
  -- calls whose channels vanished while the events socket was down end
  if self.client.on_reconnect then
    self.client:on_reconnect(function() require("ari.resync").run(self) end)
  end
  apps[#apps + 1] = self
  require("ari").on_shutdown(function() self:shutdown() end)
  return self
end

--- Register fn(call, args), run as its own coroutine for every channel
-- that enters the app (args: the StasisStart arguments, a list).
function App:on_call(fn) self.handler = fn; return self end

-- [modes] fn(event) -> true to claim a CallBroadcast call (ari.claim)
function App:on_broadcast(fn) return require("ari.claim").on_broadcast(self, fn) end
-- [/modes]

-- [ari.reload] run the app script again: true, or false and why (see ari.reload)
function App:reload() return require("ari.reload").reload("app:reload()") end
-- [/ari.reload]

--- Number of live calls (incoming and originated, until they end).
function App:active() return self.ncalls end

--- Counters and routing state, for tests and monitoring:
-- { active, routes (channel routing entries), bridges, started, ended,
--   normal, hangup, error, originated, failed, refused, accepting }.
function App:stats()
  local routes = 0
  for _ in pairs(self.calls) do routes = routes + 1 end
  local s = { active = self.ncalls, routes = routes, bridges = self.nbridges, accepting = self.accepting }
  for k, v in pairs(self.counters) do s[k] = v end
  return s
end

-- Route one event (the client calls this synchronously, in arrival order).
function App:_route(ev)
  if ev.type == "ApplicationReplaced" then
    if ev.application == self.name then self:_replaced() end
    return false
  end
  local calls = self.calls
  local ch = ev.channel
  -- [hardening] a channel without a string id cannot be a call (found by spec/fuzz/fuzz_event.c)
  if ch ~= nil and (type(ch) ~= "table" or type(rawget(ch, "id")) ~= "string") then return false end
  local call = ch and calls[ch.id]
  if ev.type == "StasisStart" and ch then
    local rep = ev.replace_channel
    if rep and calls[rep.id] then
      -- a channel swap (masquerade): the same call goes on under the new id
      call = calls[rep.id]
      calls[rep.id] = nil
      call.id = ch.id
      calls[ch.id] = call
      call:_deliver(ev)
      return true
    end
    if call == nil then self:_start_call(ev); return true end
  end
  local b = ev.bridge
  if b then
    b = self.bridges[b.id]
    if b then b:_deliver(ev) end
  end
  if call then call:_deliver(ev); return true end
  if ch == nil then
    local obj = ev.playback or ev.recording
    if obj then
      local id = target_id(obj, 8, "channel:")
      if id then
        call = calls[id]
        if call then call:_deliver(ev); return true end
        return false
      end
      id = target_id(obj, 7, "bridge:")
      b = id and self.bridges[id]
      if b then b:_deliver(ev); return true end
      return false
    end
    local peer = ev.peer -- Dial of a channel we originated
    call = peer and calls[peer.id]
    if call then call:_deliver(ev); return true end
  end
  return b ~= nil
end

function App:_add(call)
  self.calls[call.id] = call
  self.ncalls = self.ncalls + 1
end

-- Drop the call's routing entry (once).
function App:_remove(call, outcome)
  if call.removed then return end
  call.removed = true
  if self.calls[call.id] == call then self.calls[call.id] = nil end
  self.ncalls = self.ncalls - 1
  local c = self.counters
  if call.started then
    c.ended = c.ended + 1
    c[outcome] = (c[outcome] or 0) + 1
  end
  call.outcome = call.outcome or outcome
  call:_release()
end

-- The runner: the call's coroutine from StasisStart to the end.  [perf]
-- The coroutine's body is run_call itself (sched.start: no wrapper frame,
-- no pcall, no closures): a parked call keeps every frame below its wait.
-- A script that raises (a Hangup from a wait, or a bug) kills the
-- coroutine; the call is its guard, and Call:_died finishes it in a fresh
-- coroutine.
local last_tb -- set by msgh, read right after the xpcall that called it
local function msgh(e)
  last_tb = not callmod.is_hangup(e) and debug.traceback(tostring(e), 2) or nil
  return e
end

local function run_call(self, call, handler, args)
  local co = coroutine.running()
  call.co = co
  -- [watchdog] opt-in: a script running watchdog_ms without yielding gets an error (ari.watchdog)
  if self.watchdog_ms then
    last_tb = nil
    local ok, err = require("ari.watchdog").xpcall(self, call, self.watchdog_ms, handler, msgh, call, args)
    local tb = not ok and last_tb or nil
    last_tb = nil
    sched.finished(co)
    self:_finish(call, ok, err, tb)
    return
  end
  -- [/watchdog]
  handler(call, args)
  sched.finished(co) -- from here on an error is a bug of ours, reported as such
  self:_finish(call, true)
end

function App:_start_call(ev)
  local ch = ev.channel
  if not self.accepting or self.handler == nil then
    self.counters.refused = self.counters.refused + 1
    log.warn("%s: not taking call %s (%s)", self.name, ch.id, self.accepting and "no on_call handler" or "shutting down")
    sched.spawn(function() pcall(self.client.channels.hangup, { channelId = ch.id }) end)
    return
  end
  local call = callmod.new(self, ch)
  call.started = true
  self.counters.started = self.counters.started + 1
  self:_add(call)
  local handler = self.handler
  local args = ev.args or {} -- [perf] the closure below keeps args, not the whole StasisStart
  local limit = self.max_call_duration
  if limit then
    -- a script stuck in a wait (or looping through waits) cannot hold the
    -- channel forever: hang it up, which ends every wait with Hangup
    local t = core.timer(limit, function()
      if call.removed or call.hungup then return end
      call.log:warn("max_call_duration (%d ms) reached: hanging up", limit)
      self.counters.timed_out = (self.counters.timed_out or 0) + 1
      sched.spawn(function()
        local ok = pcall(self.client.channels.hangup, { channelId = call.id })
        if not ok or not call.hungup then call:_mark_hungup("max_call_duration") end
      end)
    end)
    call:on_hangup(function() t:stop() end)
  end
  sched.start(run_call, call, self, call, handler, args)
end

function App:_finish(call, ok, err, tb)
  local outcome
  if ok then outcome = "normal"
  elseif callmod.is_hangup(err) then outcome = "hangup"
  else
    outcome = "error"
    call.log:error("script error: %s", tb or tostring(err))
  end
  call.outcome = outcome
  local hang = call.auto_hangup
  if hang == nil then hang = self.auto_hangup end
  if not call.hungup and not call.left and (outcome == "error" or hang) then
    local hok, herr = pcall(call.hangup, call)
    if not hok and not callmod.is_hangup(herr) then call.log:warn("hang-up failed: %s", tostring(herr)) end
  end
  call:_run_hooks()
  self:_remove(call, outcome)
  if self.on_end then self.on_end(call, outcome, err) end
end

-- Reasons for an originate that did not answer: Dial's dialstatus first,
-- else the hang-up cause (Q.850).
local DIALSTATUS = { BUSY = "busy", NOANSWER = "no_answer", CONGESTION = "congestion",
  CHANUNAVAIL = "unavailable", CANCEL = "canceled", DONTCALL = "rejected", TORTURE = "rejected",
  INVALIDARGS = "failed" }
local CAUSES = {
  [17] = "busy", [18] = "no_answer", [19] = "no_answer", [21] = "rejected",
  [34] = "congestion", [38] = "congestion", [41] = "congestion", [42] = "congestion",
  [1] = "unavailable", [3] = "unavailable", [20] = "unavailable", [27] = "unavailable",
}
M.EXIT_REPLACED = 3 -- the ari-lua host's exit status after ApplicationReplaced

-- statuses of a Dial still in progress
local RANG = { RINGING = true, PROGRESS = true, PROCEEDING = true }
M.DIALSTATUS, M.CAUSES = DIALSTATUS, CAUSES

--- Register a channel id the app is about to create (a snoop, a channel
-- created by hand), so its StasisStart does not start on_call: returns
-- the Call that will receive its events.  Release it with
-- app:forget(call) if the channel is never created.
function App:expect(id)
  local call = callmod.new(self, id or uuid.new())
  self:_add(call)
  return call
end
function App:forget(call) self:_remove(call, "failed") end

-- Requests that send a channel into this app (originate, create, snoop)
-- need the app registered with Asterisk, i.e. its events socket open: a
-- request sent before (right at script start, or while the socket
-- reconnects) would create a channel whose StasisStart nobody receives.
-- Waits for the socket (at most register_timeout ms, default 10000).
function App:wait_registered(op)
  if self.replaced then
    error(callmod.call_error(op or "originate", "failed", "application " .. self.name
      .. " was replaced by another connection"), 0)
  end
  local c = self.client
  if c.wait_events == nil then return end
  local ok, err = c:wait_events(self.register_timeout or 10000)
  if not ok then
    error(callmod.call_error(op or "originate", "failed", string.format(
      "application %s is not registered with Asterisk (its events socket is not open: %s)",
      self.name, tostring(type(err) == "table" and err.message or err)), { error = err }), 0)
  end
end

-- A cause as text: "16 Normal Clearing".
local function cause_text(cause, txt)
  if cause == nil then return "no cause" end
  return "cause " .. tostring(cause) .. ((txt and txt ~= "") and (" " .. txt) or "")
end

local function is_late_end(ev, id)
  if ev.type == "ChannelDestroyed" then return ev.channel.id == id end
  local st = ev.dialstatus or ""
  return ev.type == "Dial" and ev.peer and ev.peer.id == id and st ~= "" and not RANG[st]
end

--- Originate a call and wait until it answers (enters the app).
-- opts: endpoint, caller_id, timeout (seconds, default 30), variables,
-- app_args, other_channel_id, originator, formats.  Returns the Call (not
-- run by on_call); raises a CallError (reason "busy", "no_answer",
-- "congestion", "unavailable", "rejected", "failed") naming the endpoint;
-- a hang-up of the calling call while waiting raises that call's hang-up
-- error.  Waits first until the app is registered (app:wait_registered).
function App:originate(opts)
  opts = opts or {}
  if type(opts.endpoint) ~= "string" then error(errors.usage("originate: endpoint (a string) is required", 2), 0) end
  local timeout = opts.timeout or 30
  local endpoint = opts.endpoint
  self:wait_registered("originate")
  local call = self:expect(opts.channel_id)
  call.state = "dialing"
  self.counters.originated = self.counters.originated + 1
  local ok, err = pcall(self.client.channels.originate, {
    endpoint = endpoint, app = self.name, appArgs = opts.app_args, channelId = call.id,
    callerId = opts.caller_id, timeout = timeout, variables = opts.variables,
    otherChannelId = opts.other_channel_id, originator = opts.originator, formats = opts.formats,
  })
  local ev
  local sent = ok
  if not ok and errors.is(err, "http") and (err.status == 400 or err.status == 500) then
    -- Asterisk could not create the channel: an unknown technology
    -- (500 "Allocation failed": Bogus/1, PJSIP/x without PJSIP), a
    -- malformed endpoint (400 "Invalid endpoint specified")
    err = callmod.call_error("originate", "failed", string.format("cannot dial %s: %s (Asterisk: %d %s)",
      endpoint, err.status == 500 and "Asterisk could not create a channel for it (unknown technology or resource?)"
        or "Asterisk refused it", err.status, tostring(err.message)),
      { endpoint = endpoint, status = err.status, error = err })
  end
  if ok then
    -- the guard outlives Asterisk's own timeout, which ends the channel first
    ok, ev = pcall(call._wait, call, function(e) return e.type == "StasisStart" end, (timeout + 5) * 1000)
    if ok and ev == nil then
      ok, err = false, callmod.call_error("originate", "no_answer",
        string.format("%s: no answer within %d s", endpoint, timeout), { endpoint = endpoint })
    elseif not ok then
      err = ev
      if self.replaced then
        err = callmod.call_error("originate", "failed", string.format(
          "%s: application %s was replaced by another connection while dialling", endpoint, self.name),
          { endpoint = endpoint })
      elseif call.hungup and callmod.is_hangup(err) and err.channel_id == call.id then
        -- the far end never answered.  Dial's final status may come after
        -- the hang-up (a Local channel whose far half hung up: NOANSWER
        -- follows ChannelHangupRequest): wait for it or ChannelDestroyed
        local st = call.dialstatus or ""
        if (st == "" or RANG[st]) and not call.destroyed then
          call:_wait_late(function(e) return is_late_end(e, call.id) end, 2000)
        end
        local cause, status = call.hangup_cause, call.dialstatus
        if status == "" then status = nil end
        -- a final status, else the cause, else: it rang and nobody answered
        -- (Asterisk 18 ends an originate's timeout with cause 0 and no final status)
        local reason = DIALSTATUS[status or ""] or CAUSES[cause] or (RANG[status or ""] and "no_answer") or "failed"
        local why
        if status then why = (RANG[status] and "last dial status " or "dial status ") .. status .. ", " .. cause_text(cause, call.hangup_cause_txt)
        else why = "no dial status, " .. cause_text(cause, call.hangup_cause_txt) end
        err = callmod.call_error("originate", reason, string.format("%s: %s (%s)", endpoint,
          (reason:gsub("_", " ")), why), { cause = cause, dialstatus = status, endpoint = endpoint })
      end
    end
  end
  if not ok then
    self.counters.failed = self.counters.failed + 1
    if sent and not call.hungup then
      -- abandoned (no answer in time, or the waiting call hung up): drop the new leg
      local id = call.id
      sched.spawn(function() pcall(self.client.channels.hangup, { channelId = id }) end)
    end
    self:_remove(call, "failed")
    error(err, 0)
  end
  call.state = "up"
  call.started = true
  self.counters.started = self.counters.started + 1
  call:_set_channel(ev.channel)
  return call
end

--- Another connection registered this app's name with Asterisk
-- (ApplicationReplaced): from now on Asterisk sends this app's events
-- there, so this app is deaf.  Never fight over the name (no reconnect):
-- say so loudly, end every call (their waits raise the Hangup error, their
-- channels are hung up: nobody here can hear them any more), close the
-- connection, then app.on_replaced(app) if set, else the process shuts
-- down (ari.shutdown) and the ari-lua host exits with status 3
-- (M.EXIT_REPLACED: a supervisor can tell it from a crash, and should not
-- restart it only to take the name back).
function App:_replaced()
  if self.replaced then return end
  self.replaced = true
  self.accepting = false
  -- a client of our own (not opts.client, which may serve other apps)
  local owned = self.own_client
  log.error("%s: another connection registered the Stasis application '%s' (ApplicationReplaced): this one "
    .. "gets no more events; ending it (%d call(s) lost)", self.name, self.name, self.ncalls)
  if owned then self.client:close_events() end
  self.client:remove_router(self.router)
  local list = {}
  for _, call in pairs(self.calls) do list[#list + 1] = call end
  sched.spawn(function()
    for _, call in ipairs(list) do
      local was_up = not call.hungup
      call.replaced = true
      call:_mark_hungup("ApplicationReplaced")
      if was_up then pcall(self.client.channels.hangup, { channelId = call.id }) end
      if call.co == nil and not call.removed then
        -- not run by a script (dialling, expected): nobody else ends it
        call:_run_hooks()
        self:_remove(call, call.started and "hangup" or "failed")
      end
    end
    -- scripts finish in their own coroutines: give them a moment
    local deadline = core.now() + 2000
    while self.ncalls > 0 and core.now() < deadline do sched.sleep(10) end
    if owned then self.client:close() end
    if self.on_replaced then
      self.on_replaced(self)
    else
      config.exit_code = config.exit_code or M.EXIT_REPLACED
      require("ari").shutdown("application " .. self.name .. " replaced")
    end
  end)
end

--- Stop taking new calls; let running calls finish within the grace period
-- (ari.config.shutdown_grace ms, --shutdown-grace), then hang up what
-- remains and close the client.  Runs as a coroutine (ari.on_shutdown).
function App:shutdown(grace)
  if not self.accepting then return end
  self.accepting = false
  grace = grace or config.shutdown_grace or 10000
  local deadline = core.now() + grace
  log.info("%s: shutting down, %d call(s) active", self.name, self.ncalls)
  while self.ncalls > 0 and core.now() < deadline do sched.sleep(20) end
  if self.ncalls > 0 then
    log.warn("%s: grace period over, hanging up %d call(s)", self.name, self.ncalls)
    local list = {}
    for _, call in pairs(self.calls) do list[#list + 1] = call end
    for _, call in ipairs(list) do
      if not call.hungup then pcall(call.hangup, call) end
    end
    local t = core.now() + 1000
    while self.ncalls > 0 and core.now() < t do sched.sleep(10) end
  end
  self.client:remove_router(self.router)
  self.client:close()
end

-- Bridges ---------------------------------------------------------------

local Bridge = {}
Bridge.__index = Bridge
M.Bridge = Bridge
Bridge.__tostring = function(b) return "Bridge(" .. b.id .. ")" end

--- app:bridge{ type = "mixing"|"holding"|"mixing,dtmf_events"..., name = ..., id = ... }
-- creates a bridge whose events go to its waiters (Bridge:wait).
function App:bridge(opts)
  opts = opts or {}
  local id = opts.id or uuid.new()
  local b = setmetatable({ id = id, app = self, client = self.client, queue = {}, waiters = {}, members = {} }, Bridge)
  self.bridges[id] = b -- routed before the request: BridgeCreated is not lost
  self.nbridges = self.nbridges + 1
  local ok, res = pcall(self.client.bridges.createWithId, { bridgeId = id, type = opts.type or "mixing", name = opts.name })
  if not ok then self:_drop_bridge(b); error(res, 0) end
  b.bridge = res
  return b
end

function App:_drop_bridge(b)
  if self.bridges[b.id] == b then
    self.bridges[b.id] = nil
    self.nbridges = self.nbridges - 1
  end
  b.gone = true
  local ws = b.waiters
  b.waiters, b.queue = {}, {}
  for i = 1, #ws do ws[i].wake(nil) end
end

function Bridge:_deliver(ev)
  local t = ev.type
  if t == "ChannelEnteredBridge" then self.members[ev.channel.id] = true
  elseif t == "ChannelLeftBridge" then self.members[ev.channel.id] = nil
  elseif t == "BridgeDestroyed" then self.app:_drop_bridge(self); return end
  local ws = self.waiters
  for i = 1, #ws do
    local w = ws[i]
    if w.match(ev) then table.remove(ws, i); w.wake(ev); return end
  end
  local q = self.queue
  q[#q + 1] = ev
  if #q > 64 then table.remove(q, 1) end
end

--- bridge:wait(event_type or match_fn, { timeout = ms, filter = fn }) ->
-- the oldest unconsumed matching event of this bridge, or nil on timeout
-- or when the bridge is destroyed.
function Bridge:wait(typ, opts)
  opts = opts or {}
  local match = callmod.matcher(typ, opts.filter)
  local q = self.queue
  for i = 1, #q do if match(q[i]) then return table.remove(q, i) end end
  if self.gone then return nil end
  local w = { match = match }
  local timer
  local ok, ev = pcall(sched.suspend, function(wake)
    w.wake = wake
    self.waiters[#self.waiters + 1] = w
    if opts.timeout then timer = core.timer(opts.timeout, function() wake(nil) end) end
  end)
  if timer then timer:stop() end
  local ws = self.waiters
  for i = 1, #ws do if ws[i] == w then table.remove(ws, i); break end end
  if not ok then error(ev, 0) end
  return ev
end

local function chan_id(c) return type(c) == "table" and c.id or c end

--- Add a call (or channel id); opts: role, mute, absorb_dtmf, inhibit_connected_line_updates.
function Bridge:join(call, opts)
  opts = opts or {}
  self.client.bridges.addChannel { bridgeId = self.id, channel = chan_id(call), role = opts.role,
    mute = opts.mute, absorbDTMF = opts.absorb_dtmf,
    inhibitConnectedLineUpdates = opts.inhibit_connected_line_updates }
end
function Bridge:leave(call)
  self.client.bridges.removeChannel { bridgeId = self.id, channel = chan_id(call) }
end
--- Play to everyone in the bridge; waits until the playback has finished
-- (returns its state: "done", "failed" and a CallError naming the media;
-- nil if the bridge went away or opts.timeout ms passed).  Media is
-- checked as for call:play.
function Bridge:play(media, opts)
  opts = opts or {}
  local list = callmod.check_media("bridge play", media)
  local pid = uuid.new()
  self.client.bridges.playWithId { bridgeId = self.id, playbackId = pid, lang = opts.lang, media = list }
  local function finished(ev) return ev.type == "PlaybackFinished" and ev.playback.id == pid end
  local function waitf(ms) return self:wait(finished, { timeout = ms }) end
  local ev = callmod.wait_playback(self.client, pid, function(ms)
    local e = waitf(ms)
    if e == nil and self.gone then return "gone" end
    return e
  end, opts.timeout, waitf)
  if ev == "gone" then return nil end
  if ev == "vanished" then
    return "failed", callmod.call_error("bridge play", "failed", "playback of " .. table.concat(list, ", ")
      .. " ended without finishing", { media = table.concat(list, ", ") })
  end
  if ev == nil then
    if not self.gone then pcall(self.client.playbacks.stop, { playbackId = pid }) end
    return nil
  end
  local state = ev.playback.state
  if state == "failed" then
    local what = ev.playback.media_uri or table.concat(list, ", ")
    return state, callmod.call_error("bridge play", "failed", "cannot play " .. what
      .. " (no such file, or not playable)", { media = what })
  end
  return state
end
function Bridge:moh(class) self.client.bridges.startMoh { bridgeId = self.id, mohClass = class } end
function Bridge:stop_moh() self.client.bridges.stopMoh { bridgeId = self.id } end
function Bridge:destroy()
  if self.gone then return end
  local ok, err = pcall(self.client.bridges.destroy, { bridgeId = self.id })
  self.app:_drop_bridge(self)
  if not ok and not errors.not_found(err) then error(err, 0) end
end
--- Number of channels in the bridge (from ChannelEntered/LeftBridge).
function Bridge:count() local n = 0; for _ in pairs(self.members) do n = n + 1 end; return n end

--- ari.bridge{...}: a bridge on the most recently created app.
function M.bridge(opts)
  local app = apps[#apps]
  if app == nil then error(errors.usage("ari.bridge: create an app first (ari.app)", 2), 0) end
  return app:bridge(opts)
end

return M
