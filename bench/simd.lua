-- bench/simd.lua: the simulated Asterisk as a separate benchmark process.
--   ari-lua bench/simd.lua PORT SPEED scenario.lua
-- Same as `ari-lua sim --listen 127.0.0.1:PORT --sim-speed SPEED scenario.lua`
-- except that the transcript is not kept (a million calls would otherwise
-- grow the simulator without bound) and the process prints its own CPU
-- time on SIGTERM/SIGINT.  It does not change the client under test.
local core = require "ari.core"
local simmod = require "ari.sim"
local scen = require "ari.sim.scenario"

local port, speed, scenario = tonumber(arg[1]), tonumber(arg[2]) or 1, arg[3]
local sim = simmod.new { speed = speed, scenario = scenario,
  logger = function(level, msg) io.stderr:write("sim ", level, ": ", msg, "\n") end }
-- No transcript: over a long run it (and the tables that attribute requests
-- to calls for it) would grow without bound.
sim.record = function() end
local sink = setmetatable({}, { __newindex = function() end })
sim.chan_call, sim.pb_call = sink, sink
sim.new_call = function(self) self.call_seq = self.call_seq + 1; return self.call_seq end
sim:listen { host = "127.0.0.1", port = port }
sim.connect_hooks[#sim.connect_hooks + 1] = function(apps)
  for _, app in ipairs(apps) do
    if sim.scenario.app == nil or sim.scenario.app == app then scen.start(sim, app) end
  end
end
io.stdout:write("simd listening on ", sim.url, "\n")
io.stdout:flush()
local sigs = {}
local function stop()
  io.stderr:write(string.format("simd cpu %.3f s\n", os.clock()))
  -- external media streams that ended (bench/media_bench.lua): the
  -- simulator's own late output ticks
  local n, late, out = 0, 0, 0
  for _, m in pairs(sim.media_stats or {}) do
    n = n + 1
    late = late + (m.to_app.late_ticks or 0)
    out = out + (m.to_app.frames or 0)
  end
  if n > 0 then io.stderr:write(string.format("simd media streams=%d late_ticks=%d frames_out=%d\n", n, late, out)) end
  sim:close()
  for _, s in ipairs(sigs) do s:close() end
  core.stop()
end
sigs[1] = core.signal("SIGINT", stop)
sigs[2] = core.signal("SIGTERM", stop)
