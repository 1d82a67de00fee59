-- ari.call: one channel in Stasis, driven by one coroutine (docs/calls.md).
--
-- Every helper that waits (play, get_digits, record, sleep, wait, dial)
-- yields the calling coroutine and resumes when the event arrives.  The app
-- (ari.app) delivers the call's events through Call:_deliver, synchronously
-- and in arrival order.  An event nobody is waiting for goes to the call's
-- mailbox (the last 64), where a later wait finds it: an event that beats
-- the REST reply that caused it (PlaybackFinished before the reply to
-- /play) is never lost.  DTMF digits go to a type-ahead buffer read by
-- get_digits (and by play's interrupt_on_dtmf) until flush_digits().
--
-- When the channel hangs up or leaves the app (ChannelHangupRequest,
-- StasisEnd, ChannelDestroyed, or our own hangup), the current wait and
-- every later one raise a Hangup error; the app's runner treats it as a
-- normal end.
local sched = require "ari.sched"
local core = require "ari.core"
local uuid = require "ari.uuid"
local log = require "ari.log"
local models = require "ari.models"
local errors = require "ari.errors"

local M = {}

local QUEUE_MAX = 64

-- Errors ------------------------------------------------------------------

-- Both are of the ari.errors family (errors.is(e, "hangup"),
-- errors.is(e, "call")), each with a metatable of its own.
local Hangup = errors.class { __name = "ari.hangup", kind = "hangup" }
Hangup.__tostring = function(e)
  return string.format("call %s %s%s", e.channel_id or "?", e.message,
    e.cause and (" (cause " .. tostring(e.cause) .. ")") or "")
end
M.Hangup = Hangup

local CallError = errors.class { __name = "ari.call_error", kind = "call" }
CallError.__tostring = function(e)
  return string.format("%s: %s", e.operation or "call", e.message or e.reason or "failed")
end
M.CallError = CallError

--- Is e the error raised in a call's waits once it has hung up?
function M.is_hangup(e) return getmetatable(e) == Hangup end

--- A failure of a call helper: { kind = "call", operation, reason, message,
-- ... } (extra: more fields, e.g. status and error for a REST failure).
local function call_error(op, reason, message, extra)
  local e = setmetatable({ kind = "call", operation = op, reason = reason, message = message }, CallError)
  if extra then for k, v in pairs(extra) do e[k] = v end end
  e.kind = "call"
  return e
end
M.call_error = call_error

-- Call ------------------------------------------------------------------------

local Call = {}
Call.__index = Call
M.Call = Call

local HANGUP_EVENTS = { ChannelHangupRequest = true, StasisEnd = true, ChannelDestroyed = true }
local attach = models.attach

function Call.__tostring(self) return "Call(" .. tostring(self.id) .. ")" end

-- [perf] Defaults every call reads through its class until it sets its
-- own: a parked call keeps only the fields it changed.
Call.digits = ""        -- the type-ahead buffer

-- Each app's calls share a class (a metatable whose __index is itself,
-- falling back to Call) holding app and client: two fields fewer in every
-- call (the table's hash part is sized in powers of two).
local function class_of(app)
  local cls = rawget(app, "_call_class")
  if cls == nil or cls.client ~= app.client then
    cls = setmetatable({ app = app, client = app.client, __tostring = Call.__tostring }, { __index = Call })
    cls.__index = cls
    rawset(app, "_call_class", cls)
  end
  return cls
end

--- New Call for channel (a Channel object or an id) owned by app.
function M.new(app, channel)
  local id = type(channel) == "table" and channel.id or channel
  local self = setmetatable({
    id = id,
    co = nil,           -- the coroutine running this call's script (cancelled on hang-up)
    queue = {},         -- mailbox: events nobody has consumed yet
    waiters = {},       -- pending waits: { match, wake, co }
    -- digits (type-ahead), hooks (on_hangup functions) and hungup (true
    -- once gone) are set when needed: every field here is kept by every
    -- parked call
  }, class_of(app))
  if type(channel) == "table" then self:_set_channel(channel) else self.log = log.new(id) end
  return self
end

-- A fresh channel snapshot: keep it, with working methods (call.channel:ring()).
function Call:_set_channel(ch)
  self.channel = ch
  models.attach(ch, self.client)
  if self.log == nil or self.log.prefix == self.id then
    self.log = log.new(ch.name and (self.id .. " " .. ch.name) or self.id)
  end
end

function Call:_hangup_error()
  local msg = self.replaced and "lost: the application was replaced (see the error log)"
    or self.left and "left the application" or "hung up"
  return setmetatable({ kind = "hangup", message = msg, hangup = true,
    channel_id = self.id, cause = self.hangup_cause, event = self.hangup_event }, Hangup)
end

local function check_up(self)
  if self.hungup then error(self:_hangup_error(), 0) end
end

--- The app delivers every event of this call here, in arrival order.
function Call:_deliver(ev)
  local t = ev.type
  if t == "ChannelDtmfReceived" then
    self.digits = self.digits .. (ev.digit or "")
  elseif t == "Dial" then
    local p = ev.peer
    if p and p.id == self.id then self.dialstatus = ev.dialstatus; self.channel = p; attach(p, self.client) end
  end
  local ch = ev.channel
  if ch and ch.id == self.id then
    self.channel = ch
    attach(ch, self.client)
    if HANGUP_EVENTS[t] then
      if t == "ChannelHangupRequest" or t == "ChannelDestroyed" then
        self.hangup_cause = ev.cause or self.hangup_cause
        self.hangup_cause_txt = ev.cause_txt or self.hangup_cause_txt
        if t == "ChannelDestroyed" then self.destroyed = true end
      end
      self:_mark_hungup(t)
    end
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

-- The channel is gone (or left the app): end every wait of this call once.
function Call:_mark_hungup(why)
  if self.hungup then return end
  self.hungup = true
  self.hangup_event = why
  local err = self:_hangup_error()
  local ws = self.waiters
  self.waiters = {}
  -- The script's coroutine may be waiting elsewhere (a REST reply, another
  -- call, a bridge, ari.sleep): cancel that wait.  Decided before waking
  -- anyone, so a coroutine that moves on to a new wait is not disturbed.
  local co = self.co
  local cancel = co ~= nil and co ~= coroutine.running() and sched.waiting(co)
  if cancel then
    for i = 1, #ws do if ws[i].co == co then cancel = false; break end end
  end
  -- ... except our own DELETE (call:hangup): its reply follows at once, and
  -- aborting the transfer would close the HTTP connection (a new TCP
  -- connection for the next request).
  if cancel and self._hangup_co == co then cancel = false end
  if cancel then sched.cancel(co, err) end
  for i = 1, #ws do ws[i].wake(HANGUP_MARK, err) end
  local linked = self.linked -- dial's hangup_together: the other side goes too, now
  if linked then
    self.linked = nil
    sched.spawn(function()
      for i = 1, #linked do
        local other = linked[i]
        if not other.hungup then pcall(other.hangup, other) end
      end
    end)
  end
  if self.co == nil and self.started and self.app then
    -- an originated call has no runner: it ends here
    sched.spawn(function()
      self:_run_hooks()
      self.app:_remove(self, "hangup")
    end)
  end
end

-- Everything the call held goes (called by the app when the call ends).
function Call:_release()
  self.queue = {}
  self.digits = ""
  local ws = self.waiters
  self.waiters = {}
  for i = 1, #ws do ws[i].wake(HANGUP_MARK, self:_hangup_error()) end
end

--- Wait for an event of this call for which match(ev) is true: the oldest
-- one in the mailbox, else the next to arrive.  nil on timeout (ms).
local function wait_start(wake, self, waiter)
  waiter.wake = wake
  local ws = self.waiters
  ws[#ws + 1] = waiter
  local timeout = waiter.timeout
  if timeout and timeout >= 0 then
    waiter.timer = core.timer(timeout, wake) -- called without arguments: ev = nil
  end
end

-- The wait is over (woken, cancelled or failed to start): its timer and
-- its entry in the call's waiters go.
local function wait_end(self, waiter)
  local timer = waiter.timer
  if timer then timer:stop() end
  local ws = self.waiters
  for i = 1, #ws do
    if ws[i] == waiter then table.remove(ws, i); break end
  end
end

function Call:_wait(match, timeout)
  check_up(self)
  local q = self.queue
  for i = 1, #q do
    if match(q[i]) then return table.remove(q, i) end
  end
  -- [perf] one table per wait (no closures): start and cleanup functions
  -- are static, and no pcall frame stays on the parked coroutine's stack
  local waiter = { match = match, co = coroutine.running(), timeout = timeout }
  local ev, err = sched.suspend(wait_start, self, waiter, wait_end)
  wait_end(self, waiter)
  if ev == HANGUP_MARK then error(err, 0) end
  return ev
end

-- Wait for an event even once the call has hung up (the late events of
-- a channel that is going away: Dial's final status, ChannelDestroyed):
-- the mailbox first, else the next to arrive; nil on timeout or when the
-- call is released.
function Call:_wait_late(match, timeout)
  local q = self.queue
  for i = 1, #q do
    if match(q[i]) then return table.remove(q, i) end
  end
  if self.removed then return nil end
  local waiter = { match = match, co = coroutine.running(), timeout = timeout }
  local ev = sched.suspend(wait_start, self, waiter, wait_end)
  wait_end(self, waiter)
  if ev == HANGUP_MARK then return nil end
  return ev
end

--- A matcher from an event type (or a function) and an optional filter
-- (a function(ev) -> bool, or a table of field = value).
function M.matcher(spec, filter)
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

--- call:wait(event_type or fn, { timeout = ms, filter = fn|table }) -> the
-- event, or nil on timeout.  The mailbox is searched first (oldest first).
function Call:wait(typ, opts)
  opts = opts or {}
  return self:_wait(M.matcher(typ, opts.filter), opts.timeout)
end

--- Drop the mailbox (events not consumed yet).
function Call:flush_events() self.queue = {} end

-- REST on this channel: a 404 once the channel is going away is a hang-up.
function Call:_op(resource, op, params)
  check_up(self)
  local ok, res = pcall(self.client[resource][op], params)
  if ok then return res end
  if M.is_hangup(res) then error(res, 0) end
  if (errors.not_found(res) or (self.hungup and type(res) == "table")) and resource == "channels" then
    self:_mark_hungup("404")
    error(self:_hangup_error(), 0)
  end
  error(res, 0)
end

local function with_id(self, t)
  t = t or {}
  t.channelId = self.id
  return t
end

function Call:answer() self:_op("channels", "answer", with_id(self)) end
--- Indicate ringing to the caller (ring_stop ends it).
function Call:ring() self:_op("channels", "ring", with_id(self)) end
function Call:ring_stop() self:_op("channels", "ringStop", with_id(self)) end
--- Early media: tell the caller's side the call is in progress (183
-- Session Progress on SIP) without answering, so that what is played to the
-- channel before it is answered can be heard.  ARI has channels.progress
-- from Asterisk 20 (ARI 8); on an older server (Asterisk 18, ARI 6), or one
-- whose version is unknown to be new enough, this indicates ringing
-- instead (channels.ring: 180 Ringing, no early media on most channels).
function Call:progress()
  local c = self.client
  if c.server and c:supports("channels.progress") then
    self:_op("channels", "progress", with_id(self))
  else
    self:_op("channels", "ring", with_id(self))
  end
end
function Call:hold() self:_op("channels", "hold", with_id(self)) end
function Call:unhold() self:_op("channels", "unhold", with_id(self)) end
--- direction: "both" (default), "in" or "out".
function Call:mute(direction) self:_op("channels", "mute", with_id(self, { direction = direction or "both" })) end
function Call:unmute(direction) self:_op("channels", "unmute", with_id(self, { direction = direction or "both" })) end
--- Music on hold: call:moh() or call:moh{ class = "default" } (or a class name).
function Call:moh(opts)
  opts = type(opts) == "string" and { class = opts } or opts or {}
  self:_op("channels", "startMoh", with_id(self, { mohClass = opts.class }))
end
function Call:stop_moh() self:_op("channels", "stopMoh", with_id(self)) end
function Call:silence() self:_op("channels", "startSilence", with_id(self)) end
function Call:stop_silence() self:_op("channels", "stopSilence", with_id(self)) end
function Call:send_dtmf(dtmf, opts)
  opts = opts or {}
  self:_op("channels", "sendDTMF", with_id(self, { dtmf = dtmf, between = opts.between, duration = opts.duration }))
end

--- Hang up: call:hangup(), call:hangup{ cause = 17 } (Q.850 code) or
-- call:hangup{ reason = "busy" } (ARI reason name).  No-op once hung up.
function Call:hangup(opts)
  if self.hungup then return end
  if type(opts) == "number" then opts = { cause = opts } end
  opts = opts or {}
  local params = with_id(self)
  if opts.cause then params.reason_code = tostring(opts.cause) end
  if opts.reason then params.reason = opts.reason end
  self._hangup_co = coroutine.running()
  local ok, err = pcall(self.client.channels.hangup, params)
  self._hangup_co = nil
  if not ok and not errors.not_found(err) and not M.is_hangup(err) then error(err, 0) end
  self.hangup_cause = self.hangup_cause or opts.cause
  self:_mark_hungup("hangup")
end

-- Leaving the app: the script's end must not hang the channel up.
-- From then on the call's waits raise the Hangup error ("left the
-- application") at once: the channel is no longer this script's.
-- StasisEnd often beats the REST reply: like our own DELETE, the request's
-- wait is not cancelled by it.
local function leave(self, op, params)
  self._hangup_co = coroutine.running()
  local ok, err = pcall(self._op, self, "channels", op, params)
  self._hangup_co = nil
  if not ok then error(err, 0) end
  self.left = true
  self:_mark_hungup("left")
end
--- Send the channel back to the dialplan (opts: context, extension, priority, label).
function Call:continue_in_dialplan(opts)
  opts = opts or {}
  leave(self, "continueInDialplan", with_id(self, {
    context = opts.context, extension = opts.extension, priority = opts.priority, label = opts.label }))
end
--- Redirect the channel to an endpoint (e.g. "PJSIP/bob").
function Call:redirect(endpoint) leave(self, "redirect", with_id(self, { endpoint = endpoint })) end
--- Move the channel to another Stasis app (args: a string of app arguments).
function Call:move(app, args) leave(self, "move", with_id(self, { app = app, appArgs = args })) end

--- Channel variable (nil when not set).
function Call:get_var(name)
  check_up(self)
  local ok, res = pcall(self.client.channels.getChannelVar, with_id(self, { variable = name }))
  if ok then return res and res.value end
  if errors.not_found(res) and not self.hungup then
    -- 404 is both "no such variable" and "no such channel"
    if not (res.message or ""):lower():find("channel", 1, true) then return nil end
  end
  if errors.not_found(res) or (self.hungup and type(res) == "table") then
    self:_mark_hungup("404")
    error(self:_hangup_error(), 0)
  end
  error(res, 0)
end
--- Set a channel variable (value nil or "" clears it).  A get_var that
-- follows sees the new value: Asterisk 18 applies the set after its reply,
-- so for a plain variable (not a function such as "TALK_DETECT(set)") the
-- call waits for the ChannelVarset event too (at most 1 s).
function Call:set_var(name, value)
  local v = value ~= nil and tostring(value) or nil
  self:_op("channels", "setChannelVar", with_id(self, { variable = name, value = v }))
  if type(name) == "string" and not name:find("(", 1, true) then
    local want, id = v or "", self.id
    self:_wait(function(ev)
      return ev.type == "ChannelVarset" and ev.variable == name and (ev.value or "") == want
        and ev.channel ~= nil and ev.channel.id == id
    end, 1000)
  end
end

--- Sleep ms; a hang-up ends it with the Hangup error.
local never = function() return false end
function Call:sleep(ms) self:_wait(never, ms) end

--- Forget the digits typed ahead; returns them.
function Call:flush_digits() local d = self.digits; self.digits = ""; return d end

-- Playback --------------------------------------------------------------

-- Media URI schemes Asterisk plays (res_stasis_playback); a URI with any
-- other scheme is refused before anything is sent: Asterisk would accept
-- it (201) and then never end the playback.  Add to this table if an
-- Asterisk learns a new scheme.
local SCHEMES = { sound = true, recording = true, number = true, digits = true, characters = true, tone = true }
M.MEDIA_SCHEMES = SCHEMES

local function media_text(list) return table.concat(list, ", ") end

--- The media as a list of URIs, checked: raises a CallError (reason
-- "invalid") for anything Asterisk would not play.
function M.check_media(op, media)
  local list = type(media) == "string" and { media } or media
  if type(list) ~= "table" or #list == 0 then
    error(call_error(op, "invalid", "media must be a URI or a non-empty list of URIs, got "
      .. (type(list) == "table" and "an empty list" or type(media))), 0)
  end
  for i = 1, #list do
    local m = list[i]
    if type(m) ~= "string" then
      error(call_error(op, "invalid", "media URI #" .. i .. " is a " .. type(m) .. ", not a string"), 0)
    end
    local scheme, rest = m:match("^(%a+):(.*)$")
    if scheme == nil or not SCHEMES[scheme] then
      local known = {}
      for k in pairs(SCHEMES) do known[#known + 1] = k .. ":" end
      table.sort(known)
      error(call_error(op, "invalid", string.format("cannot play %q: unknown media scheme (Asterisk plays %s)",
        m, table.concat(known, " ")), { media = m }), 0)
    end
    if scheme == "number" and not rest:find("^%s*[+-]?%d") then
      error(call_error(op, "invalid", string.format("cannot play %q: not a number", m), { media = m }), 0)
    end
  end
  return list
end

-- How long a playback may go unheard of before its existence is checked,
-- doubling after each check up to the max (ms).  Asterisk sends no
-- PlaybackFinished for some media it cannot play (a recording: that does
-- not exist): the playback just vanishes (GET /playbacks/{id} -> 404).
M.PLAYBACK_CHECK_MS, M.PLAYBACK_CHECK_MAX_MS = 2000, 32000

--- Wait for a playback's end: waitf(ms) -> a matching event or nil (on
-- timeout); the playback is checked whenever nothing came for a while.
-- Returns the event, "vanished" (gone without PlaybackFinished) or nil
-- when timeout (ms, total) ran out.  Used by Call:play and Bridge:play.
function M.wait_playback(client, pid, waitf, timeout, finished_wait)
  local deadline = timeout and core.now() + timeout
  local interval = M.PLAYBACK_CHECK_MS
  while true do
    local ms = interval
    if deadline then
      local left = deadline - core.now()
      if left <= 0 then return nil end
      if left < ms then ms = left end
    end
    local ev = waitf(ms)
    if ev then return ev end
    if deadline and core.now() >= deadline then return nil end
    local ok, err = pcall(client.playbacks.get, { playbackId = pid })
    if not ok then
      -- only a REST failure is ours to judge: a hang-up, a cancel or a bug goes on
      if not (errors.is(err, "http") or errors.is(err, "transport") or errors.is(err, "decode")) then
        error(err, 0)
      end
      if errors.not_found(err) then
        -- gone: its PlaybackFinished may still be on its way
        ev = finished_wait(1000)
        return ev or "vanished"
      end
      -- anything else (a transport hiccup): keep waiting
    end
    interval = math.min(interval * 2, M.PLAYBACK_CHECK_MAX_MS)
  end
end

--- Play media (a URI or a list of URIs) and wait until it has finished.
-- opts: lang, interrupt_on_dtmf (true = any digit, or a string of the
-- digits that interrupt), timeout (ms; the playback is stopped then).
-- Returns "done", "timeout", the digit that interrupted it (the digit
-- stays in the type-ahead buffer), or "failed" and a CallError naming the
-- media (not found, not playable).  A digit already typed ahead interrupts
-- at once: nothing is played.  A URI with a scheme Asterisk does not play
-- (or number: without a number) raises a CallError (reason "invalid").
function Call:play(media, opts)
  opts = opts or {}
  check_up(self)
  local list = M.check_media("play", media)
  local interrupt = opts.interrupt_on_dtmf
  if interrupt == true then interrupt = "0123456789*#ABCD" end
  if interrupt then
    for i = 1, #self.digits do
      local d = self.digits:sub(i, i)
      if interrupt:find(d, 1, true) then return d end
    end
  end
  local pid = uuid.new()
  self:_op("channels", "playWithId", with_id(self, { playbackId = pid, media = list,
    lang = opts.lang, offsetms = opts.offsetms, skipms = opts.skipms }))
  local function finished(ev)
    return ev.type == "PlaybackFinished" and ev.playback.id == pid
  end
  local match = finished
  if interrupt then
    match = function(ev)
      if ev.type == "ChannelDtmfReceived" then return interrupt:find(ev.digit, 1, true) ~= nil end
      return finished(ev)
    end
  end
  local ev = M.wait_playback(self.client, pid, function(ms) return self:_wait(match, ms) end, opts.timeout,
    function(ms) return self:_wait(finished, ms) end)
  -- the media last started (PlaybackStarted/Continuing in the mailbox) names what failed
  local current
  local q = self.queue
  for i = #q, 1, -1 do
    local e = q[i]
    local pb = e.playback
    if pb and pb.id == pid then
      current = current or pb.media_uri
      table.remove(q, i)
    end
  end
  if ev == "vanished" then
    local what = current or media_text(list)
    local err = call_error("play", "failed", string.format("playback of %s ended without finishing%s",
      what, what:find("^recording:") and " (no such stored recording?)" or ""), { media = what })
    self.log:warn("%s", tostring(err))
    return "failed", err
  end
  if ev and ev.type == "PlaybackFinished" then
    local state = ev.playback.state or "done"
    if state == "failed" then
      local what = ev.playback.media_uri or current or media_text(list)
      local err = call_error("play", "failed", "cannot play " .. what .. " (no such file, or not playable)",
        { media = what })
      self.log:warn("%s", tostring(err))
      return state, err
    end
    return state
  end
  -- interrupted by a digit or timed out: stop the playback, consume its end
  local ok = pcall(self.client.playbacks.stop, { playbackId = pid })
  if ok then self:_wait(finished, 2000) end
  if ev == nil then return "timeout" end
  return ev.digit
end

--- Say digits one by one ("123" -> one, two, three); play's options.
function Call:say_digits(digits, opts) return self:play("digits:" .. tostring(digits), opts) end
--- Say a number ("123" -> one hundred twenty-three); play's options.
function Call:say_number(n, opts) return self:play("number:" .. tostring(n), opts) end

-- Digits ----------------------------------------------------------------

local function is_dtmf(ev) return ev.type == "ChannelDtmfReceived" end

--- Collect digits from the type-ahead buffer and the keypad.
-- opts: max (default 1), timeout (ms for the first digit, default 5000),
-- interdigit_timeout (ms between digits, default 3000), terminators
-- (digits that end input; default "#"; "" for none).  A terminator is not
-- part of the result; '*' and '#' are ordinary digits unless listed in
-- terminators.  Returns the digits (maybe "") and why input ended: "max",
-- "terminator" or "timeout".
function Call:get_digits(opts)
  opts = opts or {}
  local max = opts.max or 1
  local first_to = opts.timeout or 5000
  local inter_to = opts.interdigit_timeout or 3000
  local terms = opts.terminators or "#"
  local got = ""
  while true do
    check_up(self)
    local buf = self.digits
    if #buf > 0 then
      local d = buf:sub(1, 1)
      self.digits = buf:sub(2)
      if terms ~= "" and terms:find(d, 1, true) then return got, "terminator" end
      got = got .. d
      if #got >= max then return got, "max" end
    elseif self:_wait(is_dtmf, #got == 0 and first_to or inter_to) == nil then
      return got, "timeout"
    end
  end
end

--- Prompt and collect digits, with retries.  opts:
--   media               prompt (URI or list), interrupted by the first digit
--   min, max            digits wanted (default 1, max default min)
--   tries               attempts (default 3)
--   timeout             ms to wait for the first digit once the prompt ended (default 5000)
--   interdigit_timeout  ms between digits (default 3000)
--   terminators         default "#"; the terminator is not part of the input
--   regexp              Lua pattern the whole input must match
--   invalid             media played after a failed try (not after the last)
--   flush               drop typed-ahead digits before the first prompt (default false)
-- Returns the digits, or nil once every try failed.
function Call:play_and_get_digits(opts)
  local min = opts.min or 1
  local max = opts.max or math.max(min, 1)
  local tries = opts.tries or 3
  if opts.flush then self:flush_digits() end
  for try = 1, tries do
    if opts.media then self:play(opts.media, { interrupt_on_dtmf = true, lang = opts.lang }) end
    local digits, how = self:get_digits { max = max, timeout = opts.timeout or 5000,
      interdigit_timeout = opts.interdigit_timeout or 3000, terminators = opts.terminators }
    local ok = #digits >= min
    if ok and opts.regexp then ok = digits:find("^" .. opts.regexp .. "$") ~= nil end
    if ok then return digits end
    self.log:debug("play_and_get_digits: try %d of %d: '%s' (%s)", try, tries, digits, how)
    self:flush_digits()
    if opts.invalid and try < tries then self:play(opts.invalid, { lang = opts.lang }) end
  end
  return nil
end

-- Recording -------------------------------------------------------------

--- Record the caller.  opts: name (default "rec-<uuid>"), format ("wav"),
-- max_duration (s, 0 = none), max_silence (s), beep (bool), terminate_on
-- ("none", "any", "*", "#"; default "#"), if_exists ("fail", "overwrite",
-- "append").  Returns the finished LiveRecording (name, duration, state,
-- ...); raises a CallError (reason "failed") on RecordingFailed.
function Call:record(opts)
  opts = opts or {}
  local name = opts.name or ("rec-" .. uuid.new())
  self:_op("channels", "record", with_id(self, {
    name = name, format = opts.format or "wav", maxDurationSeconds = opts.max_duration,
    maxSilenceSeconds = opts.max_silence, beep = opts.beep, terminateOn = opts.terminate_on or "#",
    ifExists = opts.if_exists }))
  local ev = self:_wait(function(ev)
    return (ev.type == "RecordingFinished" or ev.type == "RecordingFailed") and ev.recording.name == name
  end)
  if ev.type == "RecordingFailed" then
    error(call_error("record", "failed", "recording " .. name .. " failed: " .. tostring(ev.recording.cause),
      { recording = ev.recording }), 0)
  end
  return ev.recording
end

-- Bridging and dialing ----------------------------------------------------

--- Put this call and `other` (a Call) in a new bridge (opts.type, default
-- "mixing"); the bridge is destroyed when this call ends.  Returns it.
function Call:bridge_with(other, opts)
  check_up(self)
  local bridge = self.app:bridge { type = (opts and opts.type) or "mixing" }
  self:on_hangup(function()
    if not bridge._destroyed then bridge._destroyed = true; pcall(bridge.destroy, bridge) end
  end)
  bridge:join(self)
  bridge:join(other)
  return bridge
end

--- Originate to endpoint, wait for the answer and bridge it with this call.
-- opts: timeout (s, default 30), caller_id, variables, formats, ringback (indicate
-- ringing to this call while dialling), hangup_together (default true: when
-- either side hangs up, so does the other).  Returns the peer Call and the
-- bridge; or nil, reason ("busy", "no_answer", "congestion",
-- "unavailable", "rejected", "failed") and the CallError.  A hang-up of
-- this call while dialling raises as every wait does (the leg is dropped).
function Call:dial(endpoint, opts)
  opts = opts or {}
  check_up(self)
  if opts.ringback then self:ring() end
  local ok, peer = pcall(self.app.originate, self.app, { endpoint = endpoint, timeout = opts.timeout,
    caller_id = opts.caller_id, variables = opts.variables, formats = opts.formats })
  if opts.ringback and not self.hungup then pcall(self.ring_stop, self) end
  if not ok then
    if getmetatable(peer) == CallError then return nil, peer.reason, peer end
    error(peer, 0)
  end
  -- the far end answered: so does this call, if it has not yet
  if self.channel and self.channel.state ~= "Up" and not self.hungup then
    local aok, aerr = pcall(self.answer, self)
    if not aok then pcall(peer.hangup, peer); error(aerr, 0) end
  end
  if opts.hangup_together ~= false then
    -- as soon as either side hangs up (or leaves the app), so does the other
    local l = self.linked or {}
    l[#l + 1] = peer
    self.linked = l
    peer.linked = { self }
  end
  local bok, bridge = pcall(self.bridge_with, self, peer)
  if not bok then
    pcall(peer.hangup, peer)
    error(bridge, 0)
  end
  return peer, bridge
end

--- Snoop on this channel: opts spy ("none", "both", "out", "in"; default
-- "both"), whisper (default "none"), app_args.  The snoop channel enters
-- this app without starting on_call; returns its Call once it is in the
-- app (StasisStart), ready for call:record{...} or bridging.
function Call:snoop(opts)
  opts = opts or {}
  check_up(self)
  self.app:wait_registered("snoop")
  local snoop = self.app:expect()
  local ok, err = pcall(self.client.channels.snoopChannelWithId, { channelId = self.id, snoopId = snoop.id,
    spy = opts.spy or "both", whisper = opts.whisper or "none", app = self.app.name, appArgs = opts.app_args })
  local ev
  if ok then ok, ev = pcall(snoop._wait, snoop, function(e) return e.type == "StasisStart" end, opts.timeout or 5000) end
  if not ok or ev == nil then
    self.app:forget(snoop)
    if ok then pcall(self.client.channels.hangup, { channelId = snoop.id }) end
    error(ok and call_error("snoop", "timeout", "snoop channel did not enter the app") or (err or ev), 0)
  end
  snoop.started = true
  self.app.counters.started = self.app.counters.started + 1
  snoop:_set_channel(ev.channel)
  self:on_hangup(function() if not snoop.hungup then pcall(snoop.hangup, snoop) end end)
  return snoop
end

-- Audio -----------------------------------------------------------------

--- The call's audio as a stream (docs/media.md): opts format, transport,
-- connection_type, host, bind, queue_ms, in_queue_ms, timeout, variables.
function Call:media(opts) return require("ari.media").open(self, opts) end

local function finish_died(app, call, err, tb) app:_finish(call, false, err, tb) end

-- The call's script raised err and its coroutine co is dead (the call is
-- the coroutine's guard, ari.app's runner): finish the call (hang-up,
-- hooks, on_end) in a new coroutine.
function Call:_died(co, err)
  local tb = not M.is_hangup(err) and debug.traceback(co, tostring(err)) or nil
  sched.spawn(finish_died, nil, self.app, self, err, tb)
end

--- Register fn(call) to run once when the call ends (after its script, or
-- when an originated call hangs up).
function Call:on_hangup(fn)
  local hooks = self.hooks
  if hooks == nil then hooks = {}; self.hooks = hooks end
  hooks[#hooks + 1] = fn
end

function Call:_run_hooks()
  local hooks = self.hooks
  if hooks == nil then return end
  self.hooks = nil
  for i = 1, #hooks do
    local ok, err = xpcall(hooks[i], debug.traceback, self)
    if not ok then self.log:error("on_hangup hook failed: %s", tostring(err)) end
  end
end

--- Wait until the channel hangs up: true, or false after timeout (ms).
function Call:wait_hangup(timeout)
  if self.hungup then return true end
  local ok, err = pcall(self._wait, self, never, timeout)
  if ok then return false end
  if M.is_hangup(err) and err.channel_id == self.id then return true end
  error(err, 0)
end

return M
