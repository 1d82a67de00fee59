-- tools/soak_sim.lua: the simulated Asterisk for the sequential soak run
-- (tools/soak.sh), as a separate process so that it is not the limit.
--   ari-lua tools/soak_sim.lua PORT SPEED CALLS CONCURRENCY SECONDS
-- Places CALLS calls (CONCURRENCY at a time) into the app "soak"; each
-- caller answers, sends DTMF 1, waits for the hang-up.  After SECONDS it
-- places no new call; once the placed calls have ended it prints one line
--   soak_sim calls=N events=N cpu=S rss_kb=N
-- (events: the events sent to the app while its socket was connected) and
-- exits.  Like bench/simd.lua, no transcript is kept.
local core = require "ari.core"
local simmod = require "ari.sim"
local scen = require "ari.sim.scenario"

local port, speed = tonumber(arg[1]) or 0, tonumber(arg[2]) or 1000
local calls, conc, seconds = tonumber(arg[3]) or 1000, tonumber(arg[4]) or 1, tonumber(arg[5]) or 60

local function rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a"); f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

local sim = simmod.new { speed = speed, logger = function(level, msg)
  if level ~= "debug" and level ~= "info" then io.stderr:write("sim ", level, ": ", msg, "\n") end
end, scenario = {
  app = "soak",
  timeout = 1e12,
  load = { { calls = calls, concurrency = conc,
             script = { { "wait_answer" }, { "dtmf", "1", gap = 0, duration = 10 }, { "wait_hangup", timeout = 600000 } } } },
} }
sim.record = function() end
local sink = setmetatable({}, { __newindex = function() end })
sim.chan_call, sim.pb_call = sink, sink
sim.new_call = function(self) self.call_seq = self.call_seq + 1; return self.call_seq end

local events, placed, ended = 0, 0, 0
local stopping, finished = false, false
sim.event_hooks[#sim.event_hooks + 1] = function(name)
  local a = sim.apps[name]
  if name == "soak" and a and next(a.sessions) then events = events + 1 end
end

local function finish()
  if finished then return end
  finished = true
  io.stdout:write(string.format("soak_sim calls=%d events=%d cpu=%.1f rss_kb=%d\n", ended, events, os.clock(), rss_kb()))
  io.stdout:flush()
  sim:close()
  core.stop()
end

-- after the deadline no new call is placed (the load generator then stops)
local place = scen.place_call
scen.place_call = function(s, c, app, on_end)
  if stopping then return { alive = true } end
  placed = placed + 1
  return place(s, c, app, function(ch)
    ended = ended + 1
    if on_end then on_end(ch) end
    if (stopping or ended == calls) and ended == placed then core.timer(500, finish) end
  end)
end

sim:listen { host = "127.0.0.1", port = port }
sim.connect_hooks[#sim.connect_hooks + 1] = function(apps)
  for _, a in ipairs(apps) do if a == "soak" then scen.start(sim, a) end end
end
local t = core.timer(seconds * 1000, function()
  stopping = true
  if ended == placed then core.timer(500, finish) end
end)
t:unref()
io.stdout:write("soak_sim listening on ", sim.url, "\n")
io.stdout:flush()
