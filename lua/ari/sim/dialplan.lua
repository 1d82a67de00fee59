-- ari.sim.dialplan: the ;2 half of a Local channel running a simulated
-- dialplan (the scenario's `dialplan` table, see docs/simulator.md).
--
--   dialplan = { caller = { s = { { "Answer" }, { "Wait", "120" }, { "Hangup" } },
--                           ["_X."] = { ... } } }
--
-- Applications: Answer, Ringing, Progress, Wait(s), SendDTMF(digits),
-- Playback(sound), MusicOnHold(class,s), Echo, Busy, Congestion, Hangup,
-- Stasis(app[,args]), NoOp, Set(VAR=value).  Each priority sends
-- ChannelDialplan for ;2 (to the apps subscribed to it), as Asterisk does;
-- ;1 follows: answered when ;2 answers, ringing when ;2 rings, BUSY /
-- CONGESTION when ;2 says so.  Running off the end hangs ;2 up.
-- A module of Sim methods and helpers, installed by ari.sim (init.lua).
local sched = require "ari.sched"
local util = require "ari.sim.util"

-- An Asterisk extension pattern (_X., _NXX, _[a-z0-9].) as a Lua pattern.
local function pattern_of(ext)
  if ext:sub(1, 1) ~= "_" then return nil end
  local out = { "^" }
  local i = 2
  while i <= #ext do
    local c = ext:sub(i, i)
    local u = c:upper()
    if u == "X" then out[#out + 1] = "%d"
    elseif u == "Z" then out[#out + 1] = "[1-9]"
    elseif u == "N" then out[#out + 1] = "[2-9]"
    elseif c == "[" then
      local j = ext:find("]", i, true) or #ext
      out[#out + 1] = ext:sub(i, j)
      i = j
    elseif c == "." then out[#out + 1] = ".+"
    elseif c == "!" then out[#out + 1] = ".*"
    else out[#out + 1] = (c:gsub("%p", "%%%0")) end
    i = i + 1
  end
  return table.concat(out) .. "$"
end

--- The priorities of exten@context in a dialplan table, or nil.
local function dialplan_lookup(dp, context, exten)
  local ctx = dp and dp[context]
  if type(ctx) ~= "table" then return nil end
  if ctx[exten] then return ctx[exten] end
  local keys = {}
  for k in pairs(ctx) do if type(k) == "string" and k:sub(1, 1) == "_" then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do
    if exten:match(pattern_of(k)) then return ctx[k] end
  end
  return nil
end

local function sleep(sim, ms)
  sched.suspend(function(wake) sim:after(ms, wake) end)
end

-- Wait (on ;2's far waiters) until cond() holds or ;2 is gone.
local function wait_until(sim, peer, cond)
  while peer.alive and not cond() do
    sched.suspend(function(wake)
      peer.far_waiters = peer.far_waiters or {}
      table.insert(peer.far_waiters, wake)
    end)
  end
  return peer.alive
end

local function subst(s, peer)
  s = tostring(s or "")
  return (s:gsub("%${(%w+)}", function(v)
    if v == "EXTEN" then return peer.dialplan.exten end
    if v == "CONTEXT" then return peer.dialplan.context end
    return peer.vars[v] or ""
  end))
end

--- The far end's audio towards ch starts or stops (a simulated
-- dialplan's Playback / MusicOnHold): recordings hear it, and with
-- TALK_DETECT set, ChannelTalkingStarted when it starts and
-- ChannelTalkingFinished after the detector's silence threshold (default
-- 2500 ms) of silence; a hang-up before that sends no TalkingFinished.
local function far_audio(self, ch, on)
  if not ch.alive or ch.talking == on then return end
  ch.talking = on
  self:recording_talk(ch, on)
  if not ch.talk_detect then return end
  if on then
    if ch.dp_talk_timer then
      ch.dp_talk_timer.stop(); ch.dp_talk_timer = nil
    elseif not ch.dp_talking then
      ch.dp_talking = true
      ch.dp_talk_start = self:elapsed()
      self:chan_event(ch, "ChannelTalkingStarted", { "channel", self:snapshot(ch) })
    end
  elseif ch.dp_talking then
    local stopped = self:elapsed()
    ch.dp_talk_timer = self:after(ch.talk_silence_ms or 2500, function()
      ch.dp_talk_timer = nil
      if not ch.alive or ch.talking or not ch.dp_talking then return end
      ch.dp_talking = nil
      self:chan_event(ch, "ChannelTalkingFinished", { "duration",
        math.floor(stopped - (ch.dp_talk_start or stopped)), "channel", self:snapshot(ch) })
    end)
  end
end
local function audio(sim, ch, on) sim:far_audio(ch, on) end

--- ;1 of a Local pair changed its connected line: ;2 takes it as its
-- caller id (ChannelCallerId for ;2), at once, or when ;2's current
-- priority stops setting frames aside (Wait, SendDTMF, ...; at the latest
-- when ;2 is gone, as Asterisk sends it then, after ChannelDestroyed).
local function local_connected(self, ch)
  local peer = ch.peer
  if not (peer and peer.alive and peer.dialplan_driven and not ch.name:find(";2$")) then return end
  peer.pending_cid = { name = ch.connected.name, number = ch.connected.number }
  if not peer.dp_deferring then self:apply_deferred(peer) end
end

local function apply_deferred(self, peer)
  local c = peer.pending_cid
  if not c then return end
  peer.pending_cid = nil
  peer.caller = { name = c.name, number = c.number }
  self:chan_event(peer, "ChannelCallerId", { "caller_presentation", 0,
    "caller_presentation_txt", "Presentation Allowed, Not Screened", "channel", self:snapshot(peer) })
end

-- ast_safe_sleep() and Answer's wait for media set control frames aside
-- until they end: a connected-line update from ;1 (see
-- Sim:local_connected) is applied to ;2 only then.
local function dsleep(run, ms)
  local sim, peer = run.sim, run.peer
  peer.dp_deferring = true
  sleep(sim, ms)
  peer.dp_deferring = nil
  if peer.alive and not peer.hanging then sim:apply_deferred(peer) end
end

-- The simulated applications: fn(run, args, data, name) with run = { sim,
-- ch (;1), peer (;2), ctl }, args the comma-separated arguments, name the
-- application in lower case; a true result ends the dialplan.

local function app_answer(run)
  local sim, peer, ctl = run.sim, run.peer, run.ctl
  local was = peer.state
  if was ~= "Up" then sim:set_state(peer, "Up") end
  if ctl.answered then ctl.answered() end
  -- Answer() on a ringing channel waits up to 500 ms for media
  if was ~= "Up" then dsleep(run, 500) end
end

local function app_ringing(run)
  if run.ctl.ringing then run.ctl.ringing() end
end

local function app_wait(run, args)
  dsleep(run, math.floor((tonumber(args[1]) or 0) * 1000))
end

-- SendDTMF(digits[,between_ms[,duration_ms]]): 100 ms of quiet, then each
-- digit (received when it ends) and a pause after it
local function app_senddtmf(run, args)
  local sim, ch, peer = run.sim, run.ch, run.peer
  local gap = tonumber(args[2]) or 250
  local dur = tonumber(args[3]) or 100
  dsleep(run, 100)
  for d in (args[1] or ""):gmatch(".") do
    if not (peer.alive and ch.alive) then break end
    if d == "w" then dsleep(run, 500)
    elseif d == "W" then dsleep(run, 1000)
    elseif d:match("[%d%*#A-Da-d]") then
      dsleep(run, dur)
      if not (peer.alive and ch.alive) then break end
      sim:far_dtmf(ch, d:upper(), dur)
      sim:recording_dtmf(ch, d:upper())
      dsleep(run, gap)
    end
  end
end

local function app_playback(run, args)
  local sim, ch, peer = run.sim, run.ch, run.peer
  local ms, found = 0, true
  for f in (args[1] or ""):gmatch("[^&]+") do
    if sim.sounds[f] then ms = ms + sim.sounds[f] else found = false end
  end
  if ms > 0 then
    audio(sim, ch, true)
    sleep(sim, ms)
    audio(sim, ch, false)
  end
  if peer.alive and not peer.hanging then
    sim:set_var(peer, "PLAYBACKSTATUS", found and "SUCCESS" or "FAILED")
  end
end

local function never() return false end

local function app_musiconhold(run, args)
  local sim, ch = run.sim, run.ch
  audio(sim, ch, true)
  local secs = tonumber(args[2])
  if secs then dsleep(run, secs * 1000) else wait_until(sim, run.peer, never) end
  audio(sim, ch, false)
end

local function app_echo(run)
  wait_until(run.sim, run.peer, never)
end

-- Busy() and Congestion()
local function app_busy(run, args, _, name)
  local sim, ch, peer, ctl = run.sim, run.ch, run.peer, run.ctl
  sim:set_state(peer, "Busy")
  peer.dp_cause = name == "busy" and 17 or 34
  if ctl.busy and ch.alive and ch.state ~= "Up" then
    ctl.busy(name == "busy" and "BUSY" or "CONGESTION")
  end
  local secs = tonumber(args[1])
  if secs then dsleep(run, secs * 1000) else wait_until(sim, peer, never) end
end

local function app_stasis(run, args, data)
  local sim, peer = run.sim, run.peer
  local appname = args[1]
  local rest = data:match("^[^,]*,(.*)$")
  peer.on_local_answer = run.ctl.answered
  if sim:stasis_start(peer, appname, rest) then
    wait_until(sim, peer, function() return peer.app == nil end)
  end
end

local function app_hangup(run, args)
  run.sim:hangup(run.peer, tonumber(args[1]) or 16, false, { explicit = true })
  return true
end

local function app_set(run, _, data)
  local k, v = data:match("^([^=]+)=(.*)$")
  if k then run.sim:set_var(run.peer, k, v) end
end

-- Progress(), NoOp(): nothing to simulate
local function app_nothing() end

local APPS = { answer = app_answer, ringing = app_ringing, wait = app_wait, senddtmf = app_senddtmf,
  playback = app_playback, musiconhold = app_musiconhold, echo = app_echo, busy = app_busy,
  congestion = app_busy, stasis = app_stasis, hangup = app_hangup, set = app_set,
  progress = app_nothing, noop = app_nothing }

-- Run the priorities (in the dialplan's coroutine).
local function run_steps(run, steps, first)
  local sim, peer = run.sim, run.peer
  for i, raw in ipairs(steps) do
    local prio = first + i
    -- a channel being hung up runs no further priority
    if not peer.alive or peer.hanging then return end
    local app, data
    if type(raw) == "string" then app, data = raw, "" else app, data = raw[1], raw[2] end
    data = subst(data, peer)
    peer.dialplan.priority = prio
    peer.dialplan.app_name, peer.dialplan.app_data = app, data
    sim:chan_event(peer, "ChannelDialplan", { "dialplan_app", app, "dialplan_app_data", data,
      "channel", sim:snapshot(peer) })
    local a = app:lower()
    local args = {}
    for x in (data .. ","):gmatch("([^,]*),") do args[#args + 1] = x end
    local fn = APPS[a]
    if fn == nil then
      sim:note(peer.call, "dialplan: application %s is not simulated", app)
    elseif fn(run, args, data, a) then
      return
    end
  end
  -- the dialplan ran out: the channel hangs up
  if peer.alive and not peer.hanging then sim:hangup(peer, 16, false, { explicit = true }) end
end

--- Run the priorities `steps` on peer (;2) for ch (;1).  ctl: answered(),
-- ringing(), busy(status, cause): callbacks of the dial in progress.
-- ctl.continued: a channel sent on by continueInDialplan (its hang-up
-- sends no PBX soft request); ctl.first_priority: the number of steps[1].
local function run_dialplan(self, ch, peer, steps, ctl)
  peer.runs_dialplan = ctl.continued and "continued" or true
  peer.dialplan_driven = true
  local run = { sim = self, ch = ch, peer = peer, ctl = ctl }
  local first = (ctl.first_priority or 1) - 1
  sched.spawn(function() run_steps(run, steps, first) end, function(ok, err)
    if not ok then self:log("error", "simulated dialplan: %s", tostring(err)) end
  end)
end

return util.module {
  -- methods of the Sim class
  methods = { far_audio = far_audio, local_connected = local_connected, apply_deferred = apply_deferred,
    run_dialplan = run_dialplan },
  extension_pattern = pattern_of,
  dialplan_lookup = dialplan_lookup,
}
