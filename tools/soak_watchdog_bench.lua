-- tools/soak_watchdog_bench.lua: what the watchdog (app option watchdog_ms,
-- ari.watchdog) costs.  Prints figures, asserts nothing.
--   ari-lua tools/soak_watchdog_bench.lua [N]
-- 1. a CPU-bound Lua loop (N iterations) in a coroutine, without and with
--    the count hook (with it the VM checks a hook counter at every
--    instruction);
-- 2. the per-call setup: watchdog.xpcall around an empty handler, against
--    plain xpcall (two debug.sethook calls, a few closures).
-- Each figure is the best of 5 runs (CPU time, os.clock).
local watchdog = require "ari.watchdog"
local N = tonumber(arg[1]) or 20000000

local function best(fn)
  local b = math.huge
  for _ = 1, 5 do
    local t = os.clock()
    fn()
    b = math.min(b, os.clock() - t)
  end
  return b
end

local function work()
  local x = 0
  for i = 1, N do x = x + (i & 7) end
  return x
end

local plain = best(function() coroutine.wrap(work)() end)
local hooked = best(function()
  coroutine.wrap(function()
    local co = coroutine.running()
    debug.sethook(co, function() end, "", watchdog.count)
    work()
    debug.sethook(co)
  end)()
end)
print(string.format("loop of %d iterations: %.3f s plain, %.3f s with the hook (%+.1f%%)",
  N, plain, hooked, (hooked / plain - 1) * 100))

local M = 200000
local app = { counters = {} }
local call = { id = "x" }
local function handler() end
local function msgh(e) return e end
local px = best(function() for _ = 1, M do xpcall(handler, msgh) end end)
local wx = best(function()
  coroutine.wrap(function() for _ = 1, M do watchdog.xpcall(app, call, 1000, handler, msgh) end end)()
end)
print(string.format("per call: xpcall %.2f us, watchdog.xpcall %.2f us (%.2f us more)",
  px / M * 1e6, wx / M * 1e6, (wx - px) / M * 1e6))
