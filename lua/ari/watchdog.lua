-- ari.watchdog: end a call script that runs too long without yielding.
--
-- Lua coroutines are cooperative: a call script in a busy loop holds the
-- whole process (every other call, the sockets, the timers).  With the app
-- option watchdog_ms (opt-in, default off) each call's coroutine gets a
-- count hook (debug.sethook, every `M.count` VM instructions) that checks
-- how long the coroutine has been running since it was last resumed; past
-- the limit it raises a WatchdogError inside that coroutine, so only that
-- call ends (the app logs it as a script error and hangs the channel up).
--
-- How "since it was last resumed" is known without touching the scheduler:
-- while any watched call runs, a loop timer (the heartbeat, every tenth of
-- the limit) advances a counter.  The counter cannot change while a
-- coroutine runs, so the first hook that sees a new value starts the clock
-- (core.hrtime) and later hooks with the same value measure from there.
-- The clock thus starts up to `count` instructions late (well under a
-- millisecond) or, for a coroutine resumed twice within one heartbeat, up to
-- a tenth of the limit early: the error comes after 0.9 to 1 times the limit
-- of uninterrupted running (plus the time to the next hook).  If the whole
-- loop is held up by others, the call running when the limit passes is the
-- one ended.  Not caught: time spent inside one C function (a blocking
-- os.execute, a huge string.rep), which runs no VM instruction.
--
-- Once the limit is passed the call is condemned: the hook then fires on
-- every instruction of the script and raises again, so a script that
-- catches the error (pcall) and loops on cannot go on; only the app's own
-- error handling runs.
local core = require "ari.core"

local hrtime = core.hrtime
local sethook, getinfo = debug.sethook, debug.getinfo

local M = { count = 100000 }

local WatchdogError = require("ari.errors").class { __name = "ari.watchdog_error", kind = "watchdog" }
WatchdogError.__tostring = function(e) return "watchdog: " .. e.message end
M.WatchdogError = WatchdogError

function M.is_watchdog(e) return getmetatable(e) == WatchdogError end

--- Run handler(...) under xpcall(handler, msgh, ...) in the running
-- coroutine (a call's runner) with the watchdog on; returns what xpcall
-- returns.  app: the App (counters, client), call: the Call, limit: ms.
-- The heartbeat: one repeating loop timer while any watched call runs.
local tick, watched, beat, beat_period = 0, 0, nil, nil
local function beat_start(limit)
  watched = watched + 1
  local period = math.max(5, limit // 10)
  if beat and beat_period <= period then return end
  if beat then beat:stop() end
  beat_period = period
  beat = core.timer(period, function() tick = tick + 1 end, period)
  beat:unref()
end
local function beat_stop()
  watched = watched - 1
  if watched == 0 and beat then beat:stop(); beat, beat_period = nil, nil end
end

function M.xpcall(app, call, limit, handler, msgh, ...)
  local co = coroutine.running()
  local limit_ns = limit * 1000000
  local seen, start = nil, 0
  local err -- set once the limit is passed
  -- no error is raised in the watchdog's own frame, nor while the app's
  -- message handler runs
  local function exempt()
    local info = getinfo(3, "f") -- 1 exempt, 2 the hook, 3 where the hook fired
    if info == nil or info.func == M.xpcall then return true end
    local lvl = 3
    while info do
      if info.func == msgh then return true end
      lvl = lvl + 1
      info = getinfo(lvl, "f")
    end
    return false
  end
  local hook
  function hook()
    if err == nil then
      if tick ~= seen then seen, start = tick, hrtime(); return end
      local ran = hrtime() - start
      if ran < limit_ns then return end
      local ms = ran // 1000000
      err = setmetatable({ kind = "watchdog", watchdog = true, channel_id = call.id, limit = limit, elapsed = ms,
        message = string.format("call %s ran %d ms without yielding (watchdog_ms %d)", tostring(call.id), ms, limit) }, WatchdogError)
      local c = app.counters
      c.watchdog = (c.watchdog or 0) + 1
      sethook(co, hook, "", 1) -- condemned: every instruction from now on
    end
    if exempt() then return end
    error(err, 0)
  end
  beat_start(limit)
  sethook(co, hook, "", M.count)
  local r = table.pack(xpcall(handler, msgh, ...))
  sethook(co)
  beat_stop()
  return table.unpack(r, 1, r.n)
end

return M
