-- ari.testing: run your app against the simulated Asterisk inside a busted
-- spec (or any Lua 5.4 program) and look at what happened.
--
--   local testing = require "ari.testing"
--   local r = testing.run{
--     app = "examples/ivr.lua",            -- a script (as run by ari-lua), or
--     -- on_call = function(call, args) ... end, name = "test",   -- just a handler
--     scenario = "examples/scenarios/ivr.lua",   -- file or table (docs/simulator.md)
--     speed = 50,                          -- simulated time runs 50x faster
--   }
--   assert.same({ "sound:hello-world" }, r.calls[1].played)
--   assert.equals("1", r.calls[1].digits)
--   assert.equals(16, r.calls[1].hangup_cause)
--
-- testing.run returns when every scripted call has ended (or after
-- `timeout` real ms: r.timed_out).  The result:
--   r.calls        the scenario's calls in order (incoming calls first come
--                  first); each a view (below) of all the channels of the call
--   r.incoming     only the calls that came in from the scenario
--   r.channels     channel id -> view of one channel; r.channel_order
--   r.bridges      bridge id -> { id, type, entered = {channel ids in order},
--                  max_members, played = {media...}, destroyed }
--   r.requests     every REST request { method, path, status, call }
--   r.transcript   the simulator's transcript entries; r:text() formatted
--   r.log          log lines the app wrote (not printed unless opts.verbose)
--   r.errors       the log lines at error level (script errors)
--   r.stats        the app's call counts { started, ended, normal, hangup, error }
--   r.timed_out    true when the run was cut short by `timeout`
--   r.media        every external media stream's figures, in the order the
--                  streams ended (docs/simulator.md "External media": what
--                  the caller sent, what the app sent back: frames, ms, rms,
--                  peak_rms, loud_ms, digest); media runs in real time, so
--                  give such runs speed = 1
--   r:find(pattern) -> true when a transcript line matches (Lua pattern)
-- A view: { id, label, channel (first channel id), name, caller, answered,
--   played = {media URIs in start order}, playbacks = {{ id, media, state }},
--   digits (DTMF the app received), dtmf_sent (what the app sent),
--   recordings = {{ name, state, duration, cause }}, bridges = {ids},
--   hangup_cause, hangup_cause_txt, hung_up_by ("app" | "far end"),
--   events = {types in order}, requests = {"POST /channels/.../answer" ...},
--   variables = { name = value set by the app },
--   media = {figures of the external media streams bridged with the call} }.
-- Run one app per testing.run; runs may follow one another in one process.
local core = require "ari.core"
local sched = require "ari.sched"
local config = require "ari.config"
local log = require "ari.log"
local errors = require "ari.errors"

local M = {}

local Result = {}
Result.__index = Result

function Result:text()
  return require("ari.sim.host").format_transcript({ transcript = self.transcript, calls = self._sim_calls })
end

function Result:find(pattern)
  for _, e in ipairs(self.transcript) do
    if e.summary and e.summary:find(pattern) then return true end
  end
  return false
end

function Result:__tostring() return self:text() end

local function new_view(id)
  return { id = id, played = {}, playbacks = {}, digits = "", dtmf_sent = "", recordings = {},
    bridges = {}, events = {}, requests = {}, variables = {}, answered = false, media = {} }
end

local function add_unique(list, v)
  for _, x in ipairs(list) do if x == v then return end end
  list[#list + 1] = v
end

local function target_of(obj)
  local uri = obj and obj.target_uri or ""
  local kind, id = uri:match("^(%a+):(.+)$")
  return kind, id
end

-- Collects events into per-channel and per-bridge views.
local function collector(sim, r, app_name)
  local pb_target = {}
  local function chan(id)
    local v = r.channels[id]
    if v == nil then
      v = new_view(id)
      r.channels[id] = v
      r.channel_order[#r.channel_order + 1] = id
      local sch = sim.channels[id]
      if sch then
        v.name, v.scripted, v.call = sch.name, sch.scripted or false, sch.call
        v.caller = sch.caller and sch.caller.number
      end
    end
    return v
  end
  local function bridge(id, typ)
    local b = r.bridges[id]
    if b == nil then
      b = { id = id, type = typ, entered = {}, max_members = 0, members = 0, played = {}, destroyed = false }
      r.bridges[id] = b
    end
    b.type = b.type or typ
    return b
  end
  return function(app, ev)
    if app_name and app ~= app_name then return end
    local t = ev.type
    local ch = ev.channel
    local v = ch and chan(ch.id)
    if v then
      v.events[#v.events + 1] = t
      if ch.state == "Up" then v.answered = true end
    end
    if t == "ChannelDtmfReceived" and v then
      v.digits = v.digits .. (ev.digit or "")
    elseif t == "ChannelDestroyed" and v then
      v.hangup_cause, v.hangup_cause_txt = ev.cause, ev.cause_txt
    elseif t == "ChannelHangupRequest" and v and v.hung_up_by == nil then
      v.hung_up_by = ev.soft and "app" or "far end"
    elseif t == "ChannelVarset" and v and ev.variable then
      v.variables[ev.variable] = ev.value
    elseif t == "PlaybackStarted" and ev.playback then
      local pb = ev.playback
      local kind, id = target_of(pb)
      local media = pb.media_uri
      local target
      if kind == "channel" then target = chan(id) elseif kind == "bridge" then target = bridge(id) end
      if target then
        target.played[#target.played + 1] = media
        if target.playbacks then target.playbacks[#target.playbacks + 1] = { id = pb.id, media = media, state = pb.state } end
        pb_target[pb.id] = target
      end
    elseif (t == "PlaybackFinished" or t == "PlaybackContinuing") and ev.playback then
      local target = pb_target[ev.playback.id]
      if target and target.playbacks then
        for i = #target.playbacks, 1, -1 do
          local p = target.playbacks[i]
          if p.id == ev.playback.id then p.state = ev.playback.state; break end
        end
      end
    elseif (t == "RecordingStarted" or t == "RecordingFinished" or t == "RecordingFailed") and ev.recording then
      local rec = ev.recording
      local kind, id = target_of(rec)
      if kind == "channel" then
        local cv = chan(id)
        local entry
        for _, x in ipairs(cv.recordings) do if x.name == rec.name then entry = x end end
        if entry == nil then entry = { name = rec.name }; cv.recordings[#cv.recordings + 1] = entry end
        entry.state, entry.format = rec.state, rec.format
        entry.duration, entry.cause = rec.duration, rec.cause
      end
    elseif t == "ChannelEnteredBridge" and ev.bridge then
      local b = bridge(ev.bridge.id, ev.bridge.bridge_type)
      if ch then
        b.entered[#b.entered + 1] = ch.id
        add_unique(v.bridges, ev.bridge.id)
      end
      b.members = b.members + 1
      if b.members > b.max_members then b.max_members = b.members end
    elseif t == "ChannelLeftBridge" and ev.bridge then
      local b = bridge(ev.bridge.id, ev.bridge.bridge_type)
      b.members = math.max(0, b.members - 1)
    elseif t == "BridgeDestroyed" and ev.bridge then
      bridge(ev.bridge.id, ev.bridge.bridge_type).destroyed = true
    end
  end, chan
end

-- REST requests: which channel a path names, DTMF the app sent.
local function add_request(r, chan, e)
  local req = { method = e.method, path = e.path, status = e.status, call = e.call }
  r.requests[#r.requests + 1] = req
  local path, q = (e.path or ""):match("^([^?]*)%??(.*)$")
  path = path:gsub("^/ari", "")
  local id = path:match("^/channels/([^/]+)")
  if id and id ~= "create" and id ~= "externalMedia" then
    local v = chan(id)
    v.requests[#v.requests + 1] = e.method .. " " .. path
    if path:match("/dtmf$") and e.status and e.status < 300 then
      local d = q:match("dtmf=([^&]*)")
      if d then v.dtmf_sent = v.dtmf_sent .. require("ari.sim").url_decode(d) end
    end
  end
end

-- The call views: one per simulator call, over its channels.
local function build_calls(sim, r)
  local calls, incoming = {}, {}
  for _, c in ipairs(sim.calls) do
    local view = new_view(c.id)
    view.label = c.label
    view.channels = {}
    for _, chid in ipairs(c.channels) do
      local cv = r.channels[chid]
      if cv then
        view.channels[#view.channels + 1] = chid
        if view.channel == nil then
          view.channel, view.name, view.caller, view.scripted = chid, cv.name, cv.caller, cv.scripted
          view.digits, view.dtmf_sent = cv.digits, cv.dtmf_sent
          view.hangup_cause, view.hangup_cause_txt, view.hung_up_by = cv.hangup_cause, cv.hangup_cause_txt, cv.hung_up_by
          view.answered = cv.answered
          view.variables = cv.variables
        end
        for _, k in ipairs { "played", "playbacks", "recordings", "events", "requests" } do
          for _, x in ipairs(cv[k]) do view[k][#view[k] + 1] = x end
        end
        for _, b in ipairs(cv.bridges) do add_unique(view.bridges, b) end
      end
    end
    if view.channel then
      calls[#calls + 1] = view
      if view.scripted then incoming[#incoming + 1] = view end
    end
  end
  r.calls, r.incoming = calls, incoming
  -- external media streams (ari.sim.extmedia): under the call they were bridged with
  r.media = {}
  local by_id = {}
  for _, v in ipairs(calls) do by_id[v.id] = v end
  for _, e in ipairs(sim.transcript) do
    if e.kind == "media" and e.media then
      r.media[#r.media + 1] = e.media
      local v = by_id[e.call]
      if v then v.media[#v.media + 1] = e.media end
    end
  end
end

-- A log sink that keeps lines (and prints them when verbose).
local function sink(r, verbose)
  return {
    write = function(self, ...)
      local s = table.concat({ ... })
      for l in s:gmatch("[^\n]+") do
        r.log[#r.log + 1] = l
        if l:find("ERROR", 1, true) or l:find('"level":"error"', 1, true) then r.errors[#r.errors + 1] = l end
      end
      if verbose then io.stderr:write(s) end
      return self
    end,
    flush = function(self) return self end,
  }
end

local function load_app(opts)
  if type(opts.app) == "function" then return opts.app end
  if type(opts.app) == "string" then
    local chunk, err = loadfile(opts.app)
    if not chunk then error({ message = "ari.testing: cannot load " .. opts.app .. ": " .. tostring(err) }, 0) end
    return chunk
  end
  if type(opts.on_call) == "function" then
    return function()
      local app = require("ari.app").app(opts.name or "test")
      app:on_call(opts.on_call)
    end
  end
  error(errors.usage("ari.testing.run: give app (a script path or function) or on_call", 3), 0)
end

--- Run an app against a scenario; see the header for opts and the result.
-- opts: app | on_call (+ name), scenario, speed (default 20), timeout (real
-- ms, default 30000), args (script arguments), sounds, verbose,
-- shutdown_grace (real ms the app gets to finish its calls, default 2000).
function M.run(opts)
  opts = opts or {}
  local main = load_app(opts)
  local simmod = require "ari.sim"
  local appmod = require "ari.app"
  local scen = require "ari.sim.scenario"
  local r = setmetatable({ channels = {}, channel_order = {}, bridges = {}, requests = {}, log = {}, errors = {},
    stats = { started = 0, ended = 0, normal = 0, hangup = 0, error = 0 }, timed_out = false }, Result)
  local sim = simmod.new { speed = opts.speed or 20, scenario = opts.scenario, sounds = opts.sounds,
    password = "sim-" .. require("ari.uuid").new():sub(1, 8), -- redacted from logs: not a common word
    logger = function(level, msg) r.log[#r.log + 1] = "sim " .. level .. ": " .. msg end }
  sim:listen { host = "127.0.0.1", port = 0 }
  local saved = { url = config.url, user = config.user, password = config.password, app = config.app,
    shutdown_grace = config.shutdown_grace }
  config.url, config.user, config.password = sim.url, sim.user, sim.password
  if opts.on_call then config.app = opts.name or "test" end
  config.shutdown_grace = opts.shutdown_grace or 2000
  log.add_credentials(sim.user, sim.password)
  log.set_output(sink(r, opts.verbose))
  local want_app = sim.scenario.app or (opts.on_call and (opts.name or "test")) or nil
  local hook, chan = collector(sim, r, nil)
  local run_app
  sim.event_hooks[#sim.event_hooks + 1] = function(app, ev)
    if run_app == nil or app == run_app then hook(app, ev) end
  end
  local first_app = #appmod.apps + 1
  local done, wake_done = false, nil
  local function finish()
    if done then return end
    done = true
    if wake_done then wake_done() end
  end
  sim.connect_hooks[#sim.connect_hooks + 1] = function(apps)
    for _, name in ipairs(apps) do
      if want_app == nil or want_app == name then
        run_app = name
        want_app = name
        scen.start(sim, name, finish)
        return
      end
    end
  end
  local ok, err = pcall(sched.run, function()
    local timer = core.timer(opts.timeout or 30000, function()
      r.timed_out = true
      finish()
    end)
    local mok, merr = xpcall(main, sched.traceback_handler, table.unpack(opts.args or {}))
    if not mok then
      timer:stop()
      error(merr, 0)
    end
    if not done then
      sched.suspend(function(wake) wake_done = wake end)
    end
    timer:stop()
    -- let the app see the last events, then stop it
    sched.sleep(20)
    for i = first_app, #appmod.apps do
      local app = appmod.apps[i]
      pcall(app.shutdown, app)
      local st = type(app.stats) == "function" and app:stats() or app.stats or {}
      for _, k in ipairs { "started", "ended", "normal", "hangup", "error" } do
        r.stats[k] = r.stats[k] + (tonumber(st[k]) or 0)
      end
    end
    sim:close()
    sched.sleep(10) -- let closed handles go
  end)
  sim:close()
  log.set_output(nil)
  for k, v in pairs(saved) do config[k] = v end
  for _, e in ipairs(sim.transcript) do
    if e.kind == "rest" then add_request(r, chan, e) end
  end
  r.transcript = sim.transcript
  r._sim_calls = sim.calls
  build_calls(sim, r)
  if not ok then
    if opts.verbose then io.stderr:write(r:text()) end
    error(err, 0)
  end
  return r
end

return M
