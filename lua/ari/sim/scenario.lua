-- ari.sim.scenario: scripted callers, far-end behaviours, load generators.
-- The format is documented in docs/simulator.md.
local sched = require "ari.sched"

local M = {}

local function glob(p)
  if p:find("%", 1, true) or p:find("^", 1, true) then return p end -- already a Lua pattern
  return "^" .. p:gsub("[%-%.%+%[%]%(%)%$%?]", "%%%0"):gsub("%*", ".*") .. "$"
end

-- A call's or far end's `audio` / `voice` (ari.sim.audio sources); a WAV
-- path is relative to the scenario file's directory.
local function check_audio(c, what, base_dir)
  local audio = require "ari.sim.audio"
  for _, key in ipairs { "audio", "voice" } do
    local spec = c[key]
    if type(spec) == "table" and type(spec.wav) == "string" and base_dir and not spec.wav:match("^/") then
      local copy = {}
      for k, v in pairs(spec) do copy[k] = v end
      copy.wav = base_dir .. spec.wav
      c[key] = copy
      spec = copy
    end
    local err = audio.check(spec)
    if err then error("scenario: " .. what .. "." .. key .. ": " .. err, 0) end
  end
end

--- Load a scenario: a table, a path to a Lua file returning one, or nil.
function M.load(s)
  if s == nil or s == true or s == "" then return { default = true, calls = {}, endpoints = {}, load = {} } end
  local base_dir
  if type(s) == "string" then
    base_dir = s:match("^(.*/)") or "./"
    local chunk, err = loadfile(s, "t", setmetatable({}, { __index = _G }))
    if not chunk then error("scenario: " .. tostring(err), 0) end
    local ok, v = pcall(chunk)
    if not ok then error("scenario " .. s .. ": " .. tostring(v), 0) end
    if type(v) ~= "table" then error("scenario " .. s .. " must return a table", 0) end
    s = v
  end
  if type(s) ~= "table" then error("scenario must be a table", 0) end
  local out = { app = s.app, calls = {}, endpoints = {}, load = {}, sounds = s.sounds,
    endpoint_list = s.endpoint_list, timeout = s.timeout, dialplan = s.dialplan, technologies = s.technologies,
    websocket_clients = s.websocket_clients }
  for i, c in ipairs(s.calls or {}) do
    if type(c) ~= "table" then error("scenario: calls[" .. i .. "] must be a table", 0) end
    check_audio(c, "calls[" .. i .. "]", base_dir)
    out.calls[#out.calls + 1] = c
  end
  local eps = s.endpoints or {}
  if eps[1] then
    for _, e in ipairs(eps) do
      local c = {}
      for k, v in pairs(e) do c[k] = v end
      check_audio(c, "endpoint " .. tostring(e.pattern or e[1]), base_dir)
      c.pattern = glob(e.pattern or e[1] or "*")
      out.endpoints[#out.endpoints + 1] = c
    end
  else
    local keys = {}
    for k in pairs(eps) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return #a > #b end) -- the most specific first
    for _, k in ipairs(keys) do
      local c = {}
      for kk, v in pairs(eps[k]) do c[kk] = v end
      check_audio(c, "endpoint " .. k, base_dir)
      c.pattern = glob(k)
      out.endpoints[#out.endpoints + 1] = c
    end
  end
  for i, l in ipairs(s.load or {}) do check_audio(l, "load[" .. i .. "]", base_dir); out.load[#out.load + 1] = l end
  if s.load and s.load.calls or (s.load and s.load.rate) then out.load = { s.load } end
  return out
end

function M.attach(sim, scn)
  if scn.sounds then for k, v in pairs(scn.sounds) do sim.sounds[k] = v end end
  if scn.endpoint_list then
    for _, e in ipairs(scn.endpoint_list) do
      local tech, res = e:match("^([^/]+)/(.+)$")
      if tech then sim.endpoint_list[#sim.endpoint_list + 1] = { technology = tech, resource = res } end
    end
  end
  sim.pending_calls = 0
  sim.finished_calls = 0
  sim.scenario_started = {}
  -- Asterisk's websocket_client.conf: connections chan_websocket dials out
  sim.websocket_clients = scn.websocket_clients
end

-- Waiting on a channel's far end ----------------------------------------------
local HANGUP = setmetatable({}, { __tostring = function() return "channel hung up" end })
M.HANGUP = HANGUP

local function wait_for(sim, ch, cond, timeout)
  local deadline = timeout and (sim:elapsed() + timeout)
  while true do
    if cond() then return true end
    if not ch.alive then error(HANGUP, 0) end
    local t
    local what = sched.suspend(function(wake)
      ch.far_waiters = ch.far_waiters or {}
      table.insert(ch.far_waiters, wake)
      if deadline then t = sim:after(math.max(0, deadline - sim:elapsed()), function() wake("timeout") end) end
    end)
    if t then t.stop() end
    if what == "timeout" then return false end
  end
end

local function sleep(sim, ms)
  sched.suspend(function(wake) sim:after(ms, wake) end)
end

local function step_name(step)
  if type(step) == "string" then return step, {} end
  return step[1], step
end

--- Run one script (list of steps) for the far end of channel ch.
function M.run_steps(sim, ch, steps)
  for _, raw in ipairs(steps or {}) do
    local name, st = step_name(raw)
    if not ch.alive then return end
    local ok = true
    if name == "wait_answer" then
      ok = wait_for(sim, ch, function() return ch.state == "Up" end, st.timeout)
    elseif name == "wait_stasis" then
      ok = wait_for(sim, ch, function() return ch.app ~= nil end, st.timeout)
    elseif name == "wait_playback" then
      local n0 = ch.playbacks_done or 0
      ok = wait_for(sim, ch, function() return (ch.playbacks_done or 0) > n0 end, st.timeout)
    elseif name == "wait_playback_start" then
      ok = wait_for(sim, ch, function() return ch.playq and ch.playq.current ~= nil end, st.timeout)
    elseif name == "wait_recording" then
      local n0 = ch.recordings_done or 0
      ok = wait_for(sim, ch, function() return (ch.recordings_done or 0) > n0 end, st.timeout)
    elseif name == "wait_bridge" then
      ok = wait_for(sim, ch, function() return ch.bridge ~= nil end, st.timeout)
    elseif name == "wait_dtmf" then
      local want = st[2] or ""
      local start = #ch.received_dtmf
      ok = wait_for(sim, ch, function()
        local got = ch.received_dtmf:sub(start + 1)
        if want == "" then return #got > 0 end
        return got:find(want, 1, true) ~= nil
      end, st.timeout)
    elseif name == "wait_hangup" then
      local done = wait_for(sim, ch, function() return false end, st.timeout)
      ok = done
    elseif name == "sleep" or name == "wait" then
      sleep(sim, st[2] or st.ms or 1000)
    elseif name == "dtmf" then
      local digits = tostring(st[2] or "")
      local gap = st.gap or 100
      local dur = st.duration or 100
      for d in digits:gmatch(".") do
        if not ch.alive then return end
        sleep(sim, dur)
        if not ch.alive then return end
        sim:far_dtmf(ch, d, dur)
        sim:recording_dtmf(ch, d)
        sleep(sim, gap)
      end
    elseif name == "talk" or name == "silence" then
      local ms = st[2] or st.ms or 1000
      local talking = name == "talk"
      if ch.talking ~= talking then
        ch.talking = talking
        sim:recording_talk(ch, talking)
        if ch.talk_detect then
          if talking then
            ch.talk_start = sim:elapsed()
            sim:chan_event(ch, "ChannelTalkingStarted", { "channel", sim:snapshot(ch) })
          else
            sim:chan_event(ch, "ChannelTalkingFinished", { "duration",
              math.floor(sim:elapsed() - (ch.talk_start or sim:elapsed())), "channel", sim:snapshot(ch) })
          end
        end
      end
      sleep(sim, ms)
      if talking and ch.alive and st.keep ~= true then
        ch.talking = false
        sim:recording_talk(ch, false)
        if ch.talk_detect then
          sim:chan_event(ch, "ChannelTalkingFinished", { "duration",
            math.floor(sim:elapsed() - (ch.talk_start or sim:elapsed())), "channel", sim:snapshot(ch) })
        end
      end
    elseif name == "hold" then
      sim:chan_event(ch, "ChannelHold", { "musicclass", st.musicclass, "channel", sim:snapshot(ch) })
    elseif name == "unhold" then
      sim:chan_event(ch, "ChannelUnhold", { "channel", sim:snapshot(ch) })
    elseif name == "tone" then
      -- the far end sends a tone: ChannelToneDetected if TONE_DETECT is set
      -- for that frequency (or { "tone" } for whatever is detected)
      local det = ch.tone_detect
      if det and (st[2] == nil or det == true or tonumber(st[2]) == det) then
        sim:chan_event(ch, "ChannelToneDetected", { "channel", sim:snapshot(ch) })
      end
      sleep(sim, st.ms or 100)
    elseif name == "blind_transfer" then
      sim:far_blind_transfer(ch, tostring(st[2] or "s"), st.context or ch.dialplan.context)
      return
    elseif name == "hangup" then
      sim:hangup(ch, st.cause or 16)
      return
    elseif name == "answer" then
      sim:answer(ch)
    elseif name == "call" then
      if type(st[2]) == "function" then st[2](sim, ch) end
    else
      sim:note(ch.call, "scenario: unknown step '%s' ignored", tostring(name))
    end
    if not ok then
      sim:note(ch.call, "scenario: step '%s' timed out", name)
      if st.on_timeout == "continue" then ok = true else
        sim:hangup(ch, 16)
        return
      end
    end
  end
end

local function run_script(sim, ch, steps, on_done)
  sched.spawn(function()
    local ok, err = pcall(M.run_steps, sim, ch, steps)
    if not ok and err ~= HANGUP then
      sim:note(ch.call, "scenario script error: %s", tostring(err))
      sim:log("error", "scenario script error: %s", tostring(err))
    end
  end, function(ok, err)
    if not ok then sim:log("error", "scenario: %s", tostring(err)) end
    if on_done then on_done() end
  end)
end

--- The far end of an answered outbound channel (endpoint behaviour).
function M.run_far(sim, ch, b)
  local steps = {}
  if b.dtmf then
    steps[#steps + 1] = { "sleep", b.dtmf_after or 500 }
    steps[#steps + 1] = { "dtmf", b.dtmf, gap = b.dtmf_gap or 100 }
  end
  for _, s in ipairs(b.script or {}) do steps[#steps + 1] = s end
  run_script(sim, ch, steps)
end

local DEFAULT_SCRIPT = { { "wait_hangup", timeout = 60000 }, { "hangup" } }

--- Place one scripted call into the app.
function M.place_call(sim, c, app, on_end)
  local from = tostring(c.from or "1000")
  local to = tostring(c.to or "100")
  local caller = { name = c.caller_name or c.name or "", number = from }
  local n = sim:seq("chan")
  local tech = c.tech or "PJSIP"
  local ch = sim:new_channel {
    id = c.channel_id, name = string.format("%s/%s-%08x", tech, from, n), tech = tech,
    state = "Ring", caller = caller, connected = { name = "", number = "" },
    context = c.context or "from-internal", exten = to, priority = 1,
    call = sim:new_call(c.label or ("call from " .. from .. " to " .. to)),
  }
  ch.endpoint = tech .. "/" .. from
  ch.scripted = true
  for k, v in pairs(c.variables or {}) do ch.vars[k] = tostring(v) end
  -- what the caller sends into a bridge with an external media channel
  ch.audio, ch.voice = c.audio, c.voice
  sim:note(ch.call, "incoming call %s from %s to %s", ch.id, from, to)
  sim:chan_event(ch, "ChannelDialplan", { "dialplan_app", "Stasis",
    "dialplan_app_data", app .. (c.args and ("," .. c.args) or ""), "channel", sim:snapshot(ch) })
  local done = false
  local function finish()
    if done then return end
    done = true
    if on_end then on_end(ch) end
  end
  ch.on_destroyed = finish
  if not sim:stasis_start(ch, app, c.args) then return ch end
  run_script(sim, ch, c.script or DEFAULT_SCRIPT)
  return ch
end

--- Start the scenario's calls into app `app` (called once that app has
-- connected).  on_all_done() runs when every scripted call has ended.
function M.start(sim, app, on_all_done)
  local scn = sim.scenario
  if sim.scenario_started[app] then return end
  sim.scenario_started[app] = true
  local calls = {}
  for _, c in ipairs(scn.calls) do
    if (c.app or scn.app or app) == app then calls[#calls + 1] = c end
  end
  local loads = {}
  for _, l in ipairs(scn.load) do
    if (l.app or scn.app or app) == app then loads[#loads + 1] = l end
  end
  if scn.default and #calls == 0 and #loads == 0 then calls[1] = { from = "1000", to = "100" } end
  local outstanding = 0
  local function one_done()
    outstanding = outstanding - 1
    sim.finished_calls = sim.finished_calls + 1
    if outstanding == 0 and on_all_done then on_all_done() end
  end
  local function track(c)
    outstanding = outstanding + 1
    sim.pending_calls = sim.pending_calls + 1
    sim:after(c.at or 0, function()
      local ch = M.place_call(sim, c, app, function() one_done() end)
      if not ch.alive then one_done() end
    end)
  end
  for _, c in ipairs(calls) do track(c) end
  for _, l in ipairs(loads) do
    local script = l.script or DEFAULT_SCRIPT
    local base = { from = l.from, to = l.to, args = l.args, script = script, audio = l.audio, voice = l.voice }
    if l.calls then
      local total, conc = l.calls, l.concurrency or l.calls
      local started = 0
      outstanding = outstanding + total
      local function launch()
        if started >= total then return end
        started = started + 1
        local c = {}
        for k, v in pairs(base) do c[k] = v end
        if l.from == nil then c.from = tostring(2000 + started) end
        local ch
        ch = M.place_call(sim, c, app, function()
          sim:after(0, launch)
          one_done()
        end)
        if not ch.alive then sim:after(0, launch); one_done() end
      end
      sim:after(l.at or 0, function() for _ = 1, math.min(conc, total) do launch() end end)
    elseif l.rate then
      local duration = l.duration or 10000
      local interval = 1000 / l.rate
      local total = math.floor(duration / interval + 0.5)
      outstanding = outstanding + total
      for i = 1, total do
        sim:after((l.at or 0) + (i - 1) * interval, function()
          local c = {}
          for k, v in pairs(base) do c[k] = v end
          if l.from == nil then c.from = tostring(2000 + i) end
          local ch = M.place_call(sim, c, app, function() one_done() end)
          if not ch.alive then one_done() end
        end)
      end
    end
  end
  if outstanding == 0 and on_all_done then sim:after(0, on_all_done) end
end

return M
