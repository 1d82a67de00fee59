-- ari.call: one channel in Stasis, driven by one coroutine.
--
-- Every helper that waits (play, get_digits, record, sleep, wait, dial)
-- yields the calling coroutine and resumes when the event arrives.  Events
-- for the call are delivered by the app (ari.app) in arrival order through
-- Call:_deliver; an event nobody waits for yet is queued (bounded), so an
-- event that beats the REST reply that caused it is never lost.  DTMF digits
-- go to a type-ahead buffer that get_digits reads.
--
-- When the channel hangs up (ChannelHangupRequest, StasisEnd or
-- ChannelDestroyed), the current wait and every later wait raise a Hangup
-- error, which the app's runner treats as a normal end.
local sched = require "ari.sched"
local core = require "ari.core"
local uuid = require "ari.uuid"
local log = require "ari.log"

local M = {}

local QUEUE_MAX = 64

-- Hangup / failure errors -------------------------------------------------

local Hangup = {}
Hangup.__index = Hangup
Hangup.__tostring = function(e)
  return string.format("call %s hung up%s", e.channel_id or "?", e.cause and (" (cause " .. tostring(e.cause) .. ")") or "")
end
M.Hangup = Hangup

local CallError = {}
CallError.__index = CallError
CallError.__tostring = function(e)
  return string.format("%s: %s", e.operation or "call", e.message or "failed")
end
M.CallError = CallError

function M.is_hangup(e) return getmetatable(e) == Hangup end

local function call_error(op, reason, message, extra)
  local e = setmetatable({ status = nil, operation = op, reason = reason, message = message }, CallError)
  if extra then for k, v in pairs(extra) do e[k] = v end end
  return e
end
M.call_error = call_error

-- Call ------------------------------------------------------------------------

local Call = {}
Call.__index = Call
M.Call = Call

local HANGUP_EVENTS = { ChannelHangupRequest = true, StasisEnd = true, ChannelDestroyed = true }

--- New Call for channel (a Channel object or id) owned by app.
function M.new(app, channel, co)
  local id = type(channel) == "table" and channel.id or channel
  local self = setmetatable({
    id = id,
    channel = type(channel) == "table" and channel or nil,
    app = app,
    client = app.client,
    co = co,            -- the coroutine running this call's logic (cancelled on hang-up)
    digits = "",        -- type-ahead buffer
    queue = {},         -- events not consumed yet
    waiters = {},       -- pending waits: { match = fn, wake = fn }
    hooks = {},
    hungup = false,
    vars = {},
    timers = 0,
  }, Call)
  local name = self.channel and self.channel.name
  self.log = log.new(name and (id .. " " .. name) or id)
  return self
end

function Call:__tostring() return "Call(" .. tostring(self.id) .. ")" end

-- Raised in every wait once the channel is gone.
function Call:_hangup_error()
  return setmetatable({ status = nil, message = "call hung up", hangup = true,
    channel_id = self.id, cause = self.hangup_cause }, Hangup)
end

local function check_up(self)
  if self.hungup then error(self:_hangup_error(), 0) end
end

--- The app delivers every event that concerns this call, in arrival order.
function Call:_deliver(ev)
  local t = ev.type
  if t == "ChannelDtmfReceived" then
    self.digits = self.digits .. (ev.digit or "")
  end
  if ev.channel and ev.channel.id == self.id then self.channel = ev.channel end
  if HANGUP_EVENTS[t] and (ev.channel == nil or ev.channel.id == self.id) then
    self:_mark_hungup(ev)
  end
  local ws = self.waiters
  for i = 1, #ws do
    local w = ws[i]
    if w.match(ev) then
      table.remove(ws, i)
      w.wake(ev)
      return
    end
  end
  if t ~= "ChannelDtmfReceived" then
    local q = self.queue
    q[#q + 1] = ev
    if #q > QUEUE_MAX then table.remove(q, 1) end
  end
end

local HANGUP_MARK = setmetatable({}, { __tostring = function() return "hangup" end })

function Call:_mark_hungup(ev)
  if self.hungup then return end
  self.hungup = true
  self.hangup_cause = ev and (ev.cause or (ev.channel and ev.channel.hangupcause)) or self.hangup_cause
  self.hangup_event = ev and ev.type
  local err = self:_hangup_error()
  -- End every pending wait on this call, and whatever else the call's own
  -- coroutine is waiting on (a REST reply, ari.sleep...).  Each wake is
  -- bound to its wait, so a coroutine that has moved on is not disturbed.
  local ws = self.waiters
  self.waiters = {}
  local in_waiters = false
  for i = 1, #ws do if ws[i].co == self.co then in_waiters = true end end
  local running = coroutine.running()
  if self.co and not in_waiters and self.co ~= running then sched.cancel(self.co, err) end
  for i = 1, #ws do ws[i].wake(HANGUP_MARK, err) end
  if not self.runner and self.app then
    -- an originated call has no runner: it ends here
    sched.spawn(function()
      self:_run_hooks()
      self.app:_remove(self, "hangup")
    end)
  end
end

--- Wait for an event of this call for which match(ev) is true; returns it,
--  or nil on timeout.
function Call:_wait(match, timeout)
  check_up(self)
  local q = self.queue
  for i = 1, #q do
    if match(q[i]) then return table.remove(q, i) end
  end
  local timer
  local waiter = { match = match, co = coroutine.running() }
  local ok, ev, err = pcall(sched.suspend, function(wake)
    waiter.wake = wake
    self.waiters[#self.waiters + 1] = waiter
    if timeout and timeout >= 0 then
      timer = core.timer(timeout, function() wake(nil) end)
    end
  end)
  if timer then timer:stop() end
  local ws = self.waiters
  for i = 1, #ws do
    if ws[i] == waiter then table.remove(ws, i); break end
  end
  if not ok then error(ev, 0) end
  if ev == HANGUP_MARK then error(err, 0) end
  return ev
end

local function matcher(spec, filter)
  if type(spec) == "function" then return spec end
  local typ = spec
  if filter == nil then return function(ev) return ev.type == typ end end
  if type(filter) == "function" then
    return function(ev) return ev.type == typ and filter(ev) end
  end
  return function(ev)
    if ev.type ~= typ then return false end
    for k, v in pairs(filter) do if ev[k] ~= v then return false end end
    return true
  end
end

--- call:wait(event_type, { timeout = ms, filter = fn|table }) -> event or nil.
function Call:wait(typ, opts)
  opts = opts or {}
  return self:_wait(matcher(typ, opts.filter), opts.timeout)
end

-- REST on this channel: a 404 on a channel that is going away is a hang-up.
function Call:_op(resource, op, params)
  check_up(self)
  local fn = self.client[resource][op]
  local ok, res = pcall(fn, params)
  if ok then return res end
  if type(res) == "table" and res.status == 404 and resource == "channels" then
    self:_mark_hungup(nil)
    error(self:_hangup_error(), 0)
  end
  if self.hungup and type(res) == "table" then error(self:_hangup_error(), 0) end
  error(res, 0)
end

local function with_id(self, t)
  t = t or {}
  t.channelId = self.id
  return t
end

function Call:answer() return self:_op("channels", "answer", with_id(self)) end
function Call:ring() return self:_op("channels", "ring", with_id(self)) end
function Call:ring_stop() return self:_op("channels", "ringStop", with_id(self)) end
function Call:progress()
  -- ARI has no "progress" operation; early media is ringing with media, so
  -- this answers nothing and indicates ringing (documented in docs/calls.md).
  return self:_op("channels", "ring", with_id(self))
end
function Call:hold() return self:_op("channels", "hold", with_id(self)) end
function Call:unhold() return self:_op("channels", "unhold", with_id(self)) end
function Call:mute(direction) return self:_op("channels", "mute", with_id(self, { direction = direction or "both" })) end
function Call:unmute(direction) return self:_op("channels", "unmute", with_id(self, { direction = direction or "both" })) end
function Call:moh(opts)
  opts = type(opts) == "string" and { class = opts } or opts or {}
  return self:_op("channels", "startMoh", with_id(self, { mohClass = opts.class }))
end
function Call:stop_moh() return self:_op("channels", "stopMoh", with_id(self)) end
function Call:silence() return self:_op("channels", "startSilence", with_id(self)) end
function Call:stop_silence() return self:_op("channels", "stopSilence", with_id(self)) end
function Call:send_dtmf(dtmf, opts)
  opts = opts or {}
  return self:_op("channels", "sendDTMF", with_id(self, { dtmf = dtmf, between = opts.between, duration = opts.duration }))
end

--- Hang up (cause or reason, e.g. { cause = 17 } or { reason = "busy" }).
function Call:hangup(opts)
  if self.hungup then return end
  opts = opts or {}
  if type(opts) == "number" then opts = { cause = opts } end
  local params = with_id(self)
  if opts.cause then params.reason_code = tostring(opts.cause) end
  if opts.reason then params.reason = opts.reason end
  local ok, err = pcall(self.client.channels.hangup, params)
  if not ok and not (type(err) == "table" and err.status == 404) and not M.is_hangup(err) then error(err, 0) end
  self:_mark_hungup({ type = "hangup", cause = opts.cause })
end

function Call:continue_in_dialplan(opts)
  opts = opts or {}
  return self:_op("channels", "continueInDialplan", with_id(self, {
    context = opts.context, extension = opts.extension, priority = opts.priority, label = opts.label }))
end
function Call:redirect(endpoint) return self:_op("channels", "redirect", with_id(self, { endpoint = endpoint })) end
function Call:move(app, args)
  return self:_op("channels", "move", with_id(self, { app = app, appArgs = args }))
end

function Call:get_var(name)
  local ok, res = pcall(self._op, self, "channels", "getChannelVar", with_id(self, { variable = name }))
  if ok then return res and res.value end
  if type(res) == "table" and res.status == 404 and not self.hungup then return nil end
  error(res, 0)
end
function Call:set_var(name, value)
  return self:_op("channels", "setChannelVar", with_id(self, { variable = name, value = value ~= nil and tostring(value) or nil }))
end

--- Sleep ms; a hang-up ends it with the Hangup error.
function Call:sleep(ms)
  self:_wait(function() return false end, ms)
end

--- Forget the digits typed ahead.
function Call:flush_digits() local d = self.digits; self.digits = ""; return d end

-- Playback --------------------------------------------------------------

local function media_list(media, lang)
  if type(media) == "string" then return { media } end
  return media
end

local function finished_matcher(pid)
  return function(ev)
    return ev.type == "PlaybackFinished" and ev.playback and ev.playback.id == pid
  end
end

--- Play media (a URI or a list of URIs) and wait until it has finished.
-- opts: lang, interrupt_on_dtmf (true or a string of digits that interrupt),
-- timeout (ms; stops the playback).  Returns "finished", or the digit that
-- interrupted it (the digit stays in the type-ahead buffer), or "timeout".
function Call:play(media, opts)
  opts = opts or {}
  check_up(self)
  local interrupt = opts.interrupt_on_dtmf
  if interrupt and #self.digits > 0 then
    local d = self.digits:sub(1, 1)
    if interrupt == true or interrupt:find(d, 1, true) then return d end
  end
  local pid = uuid.new()
  self:_op("channels", "playWithId", with_id(self, { playbackId = pid, media = media_list(media),
    lang = opts.lang, offsetms = opts.offsetms, skipms = opts.skipms }))
  local is_finished = finished_matcher(pid)
  local match = is_finished
  if interrupt then
    match = function(ev)
      if is_finished(ev) then return true end
      return ev.type == "ChannelDtmfReceived" and (interrupt == true or interrupt:find(ev.digit, 1, true) ~= nil)
    end
  end
  local ev = self:_wait(match, opts.timeout)
  if ev and ev.type == "PlaybackFinished" then return "finished" end
  -- interrupted by a digit or timed out: stop the playback, consume its end
  local ok = pcall(self.client.playbacks.stop, { playbackId = pid })
  if ok and not self.hungup then self:_wait(is_finished, 2000) end
  if ev == nil then return "timeout" end
  return ev.digit
end

function Call:say_digits(digits, opts) return self:play("digits:" .. tostring(digits), opts) end
function Call:say_number(n, opts) return self:play("number:" .. tostring(n), opts) end

-- Digits ----------------------------------------------------------------

local function is_dtmf(ev) return ev.type == "ChannelDtmfReceived" end

--- Collect digits.  opts: max (default 1), timeout (ms to wait for the
-- first digit, default 5000), interdigit_timeout (ms between digits, default
-- timeout), terminators (digits ending input, default "#"; a terminator is
-- not part of the result; "" for none).  Returns digits (possibly "") and
-- how input ended: "max", "terminator" or "timeout".
function Call:get_digits(opts)
  opts = opts or {}
  local max = opts.max or 1
  local first_to = opts.timeout or 5000
  local inter_to = opts.interdigit_timeout or first_to
  local terms = opts.terminators
  if terms == nil then terms = "#" end
  local got = ""
  while true do
    check_up(self)
    if #self.digits > 0 then
      local d = self.digits:sub(1, 1)
      self.digits = self.digits:sub(2)
      if terms ~= "" and terms:find(d, 1, true) then return got, "terminator" end
      got = got .. d
      if #got >= max then return got, "max" end
    else
      local ev = self:_wait(is_dtmf, #got == 0 and first_to or inter_to)
      if ev == nil then return got, "timeout" end
    end
  end
end

--- Play a prompt and collect digits, with retries.  opts: media (prompt),
-- min (default 1), max (default 1... 128), tries (default 3), timeout (first
-- digit, after the prompt ends; default 5000), interdigit_timeout (default
-- 3000), terminators (default "#"), invalid (media played after bad input),
-- regexp (a Lua pattern the digits must match entirely), flush (flush typed-
-- ahead digits before the first prompt, default false).  Digits pressed
-- during the prompt stop it and count as input.  Returns the digits, or nil
-- after the last try.
function Call:play_and_get_digits(opts)
  local min = opts.min or 1
  local max = opts.max or math.max(min, 1)
  local tries = opts.tries or 3
  if opts.flush then self:flush_digits() end
  for try = 1, tries do
    if opts.media then self:play(opts.media, { interrupt_on_dtmf = true, lang = opts.lang }) end
    local digits, how = self:get_digits { max = max, timeout = opts.timeout or 5000,
      interdigit_timeout = opts.interdigit_timeout or 3000, terminators = opts.terminators }
    local ok = #digits >= min and #digits <= max
    if ok and opts.regexp then ok = digits:match("^" .. opts.regexp .. "$") ~= nil end
    if ok then return digits end
    self.log:debug("play_and_get_digits: try %d got '%s' (%s)", try, digits, how)
    if opts.invalid and try < tries then
      self:flush_digits()
      self:play(opts.invalid, { lang = opts.lang })
    end
  end
  return nil
end

-- Recording -------------------------------------------------------------

--- Record the caller.  opts: name (default a random id), format ("wav"),
-- max_duration (s), max_silence (s), beep (bool), terminate_on ("none",
-- "any", "*", "#"; default "#"), if_exists ("fail", "overwrite", "append").
-- Returns the finished LiveRecording (from RecordingFinished) or raises.
function Call:record(opts)
  opts = opts or {}
  local name = opts.name or ("rec-" .. uuid.new())
  self:_op("channels", "record", with_id(self, {
    name = name, format = opts.format or "wav", maxDurationSeconds = opts.max_duration,
    maxSilenceSeconds = opts.max_silence, beep = opts.beep, terminateOn = opts.terminate_on or "#",
    ifExists = opts.if_exists }))
  local ev = self:_wait(function(ev)
    return (ev.type == "RecordingFinished" or ev.type == "RecordingFailed") and ev.recording and ev.recording.name == name
  end)
  if ev.type == "RecordingFailed" then
    error(call_error("record", "failed", "recording " .. name .. " failed: " .. tostring(ev.recording.cause), { recording = ev.recording }), 0)
  end
  return ev.recording
end

-- Bridging and dialing ----------------------------------------------------

--- Put this call and `other` (a Call) in a new mixing bridge; returns it.
function Call:bridge_with(other, opts)
  local bridge = self.app:bridge { type = (opts and opts.type) or "mixing" }
  bridge:join(self)
  bridge:join(other)
  return bridge
end

--- Originate to endpoint, wait for the answer and bridge it with this call.
-- opts: timeout (s), caller_id, variables, hangup_together (default true:
-- when either side hangs up the other is hung up).  Returns the peer Call
-- and the bridge, or raises a CallError with reason "busy", "no_answer",
-- "congestion" or "failed".
function Call:dial(endpoint, opts)
  opts = opts or {}
  local peer = self.app:originate { endpoint = endpoint, timeout = opts.timeout, caller_id = opts.caller_id,
    variables = opts.variables, parent = self }
  local ok, bridge = pcall(self.bridge_with, self, peer)
  if not ok then
    pcall(peer.hangup, peer)
    error(bridge, 0)
  end
  if opts.hangup_together ~= false then
    self:on_hangup(function() if not peer.hungup then pcall(peer.hangup, peer) end end)
    peer:on_hangup(function() if not self.hungup then pcall(self.hangup, self) end end)
  end
  return peer, bridge
end

--- Register fn(call) to run once when the call ends (after the script).
function Call:on_hangup(fn) self.hooks[#self.hooks + 1] = fn end

--- Run the hang-up hooks once.
function Call:_run_hooks()
  local hooks = self.hooks
  self.hooks = {}
  for i = 1, #hooks do
    local ok, err = xpcall(hooks[i], sched.traceback_handler, self)
    if not ok then self.log:error("on_hangup hook failed: %s", tostring(err)) end
  end
end

--- Wait until the channel hangs up (returns normally).
function Call:wait_hangup(timeout)
  if self.hungup then return true end
  local ok, err = pcall(self._wait, self, function() return false end, timeout)
  if ok then return false end
  if M.is_hangup(err) then return true end
  error(err, 0)
end

return M
