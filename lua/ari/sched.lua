-- ari.sched: coroutines on the loop.
--
-- Every wait in ari-lua (a REST reply, a timer, an event) goes through
-- sched.suspend: the coroutine yields, and the function given to the
-- operation (`wake`) resumes it exactly once.  A wait can be cancelled from
-- outside (sched.cancel), which resumes the coroutine by raising an error in
-- it; a wake that arrives afterwards is ignored.  Errors never escape into
-- the loop: spawn() runs its function under xpcall and reports failures
-- with their traceback through sched.on_error.
local core = require "ari.core"
local errors = require "ari.errors"

local co_create, co_resume, co_yield, co_running, co_status =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running, coroutine.status
local traceback = debug.traceback
local select, error, type = select, error, type

local M = {}

local CANCEL = setmetatable({}, { __tostring = function() return "ari.sched.CANCEL" end })

-- co -> token of its current wait (absent when not waiting)
local waits = setmetatable({}, { __mode = "k" })
-- co -> packed values delivered before the coroutine actually yielded
local early = setmetatable({}, { __mode = "k" })
local next_token = 0
local live = 0

local function default_on_error(msg)
  io.stderr:write("ari-lua: ", tostring(msg), "\n")
end
M.on_error = default_on_error

-- co -> guard of a coroutine begun by sched.start: guard:_died(co, err)
-- runs if co dies by an error (instead of on_error)
local guards = setmetatable({}, { __mode = "k" })

-- co ended by an error (its guard's _died, else on_error)
local function died(co, err)
  local g = guards[co]
  if g ~= nil then
    guards[co] = nil
    live = live - 1
    g:_died(co, err)
  else
    M.on_error(traceback(co, tostring(err)))
  end
end

local function resume(co, ...)
  local ok, err = co_resume(co, ...)
  if not ok then died(co, err) end
end
M.resume = resume

local function finish(ok, ...)
  live = live - 1
  return ok, ...
end

local function handler(e)
  if type(e) == "table" then
    -- structured errors keep their identity; the traceback rides along
    if e.traceback == nil and getmetatable(e) == nil then e.traceback = traceback(nil, 2) end
    return e
  end
  return traceback(tostring(e), 2)
end
M.traceback_handler = handler

local function body(fn, on_done, ...)
  live = live + 1
  if on_done then
    on_done(finish(xpcall(fn, handler, ...)))
  else
    local ok, err = finish(xpcall(fn, handler, ...))
    if not ok then M.on_error(err) end
  end
end

--- Start fn(...) as a new coroutine now.  Returns the coroutine.
-- on_done(ok, err_or_first_result, ...) is called when it ends, whether by
-- return or by error; without on_done an error is reported via on_error.
function M.spawn(fn, on_done, ...)
  local co = co_create(body)
  resume(co, fn, on_done, ...)
  return co
end

-- Pooled coroutines for event handlers (client:on handlers, per-object
-- handler queues): creating a coroutine per event was the largest single
-- cost of dispatch.  A pooled coroutine runs one handler, then parks itself
-- in the pool (yielding POOLED) until the next handler.  The coroutine is
-- never handed out (spawn_handler returns nothing), so nobody outside
-- holds it; a handler that keeps coroutine.running() and cancels it after
-- it returned would reach the next handler, which is why only handlers use
-- the pool.
local POOLED = {}
local pool, pool_n = {}, 0
local POOL_MAX = 32

local function pooled_body(fn, a, b)
  local co = co_running()
  while true do
    live = live + 1
    local ok, err = xpcall(fn, handler, a, b)
    live = live - 1
    if not ok then M.on_error(err) end
    fn, a, b = nil, nil, nil
    if pool_n >= POOL_MAX then return end
    pool_n = pool_n + 1
    pool[pool_n] = co
    fn, a, b = co_yield(POOLED)
  end
end

--- Run fn(a, b) in a (pooled) coroutine now; errors go to on_error.
function M.spawn_handler(fn, a, b)
  local co
  if pool_n > 0 then
    co = pool[pool_n]
    pool[pool_n] = nil
    pool_n = pool_n - 1
  else
    co = co_create(pooled_body)
  end
  resume(co, fn, a, b)
end

function M.live() return live end

--- Start fn(...) as a new coroutine whose body is fn itself: no wrapper
-- frame and no pcall (used by the app's call runner, whose coroutine is
-- parked for the length of a call: every frame it keeps costs memory).
-- If fn raises, the coroutine dies and guard:_died(co, err) is called
-- (from the code that resumed it; the dead coroutine's stack is still there
-- for debug.traceback(co)); without a guard the error goes to on_error.
-- fn calls sched.finished(co) when it returns normally.
function M.start(fn, guard, ...)
  local co = co_create(fn)
  live = live + 1
  if guard ~= nil then guards[co] = guard end
  resume(co, ...)
  return co
end

--- A coroutine begun by sched.start is ending normally: its guard is
-- dropped (an error from here on goes to on_error) and the live count
-- goes down.
function M.finished(co)
  guards[co] = nil
  live = live - 1
end

local function unpack_early(t) return table.unpack(t, 1, t.n) end

local function check(cleanup, a, b, h, first, ...)
  if first == CANCEL then
    if cleanup then cleanup(a, b, h) end
    error((...), 0)
  end
  return first, ...
end

-- Mark the running coroutine as waiting: its new wait's token.
local function arm(level)
  local co, main = co_running()
  if main then error(errors.usage("ari: this call must run inside a coroutine (use ari.run or ari.spawn)", (level or 2) + 1), 0) end
  next_token = next_token + 1
  local tok = next_token
  waits[co] = tok
  return co, tok
end

-- The rest of a wait once start(...) has run (ok, h: its pcall): the
-- values of a wake that came before the yield, else the yield's.
local function settle(co, cleanup, a, b, ok, h)
  if not ok then
    waits[co], early[co] = nil, nil
    if cleanup then cleanup(a, b, nil) end
    error(h, 0)
  end
  local e = early[co]
  if e then
    early[co] = nil
    return check(cleanup, a, b, h, unpack_early(e))
  end
  return check(cleanup, a, b, h, co_yield())
end

--- Suspend the running coroutine until the function passed to `start`
-- is called; return what it was called with.  `start(wake)` begins the
-- operation; wake may be called at once, later, or never (then only a
-- cancel ends the wait).  Extra arguments are passed on: start(wake, a, b)
-- (lets callers use one static start function instead of a closure).
-- cleanup(a, b, h), when given, runs if the wait ends by a cancel (or
-- start fails) just before the error is raised, with h what start returned
-- (nil if it failed): callers undo what start did without a pcall around
-- the wait (a pcall is one more C frame, and its stack slots, kept by every
-- coroutine parked in the wait) and without a closure to remember h.
function M.suspend(start, a, b, cleanup)
  local co, tok = arm(2)
  local function wake(...)
    if waits[co] ~= tok then return false end
    waits[co] = nil
    if co_status(co) == "running" then
      early[co] = table.pack(...)
    else
      resume(co, ...)
    end
    return true
  end
  return settle(co, cleanup, a, b, pcall(start, wake, a, b))
end

--- sched.suspend for a waiter that keeps one record across many waits:
-- start(tok, a, b) gets the wait's token instead of a new wake closure,
-- and the waker calls sched.wake(co, tok, ...), which does what wake(...)
-- does (false when that wait is over).  Cancels and cleanup as in suspend.
function M.suspend_token(start, a, b, cleanup)
  local co, tok = arm(2)
  return settle(co, cleanup, a, b, pcall(start, tok, a, b))
end

--- [perf] The leanest wait, for a waiter that keeps its own state and
-- wakes by token (a media stream's read, once per 20 ms frame: no start
-- function, no pcall, no vararg layers).  sched.arm() -> co, tok marks the
-- running coroutine as waiting; the caller then yields (coroutine.yield)
-- with nothing in between that could wake it (no Lua code runs: only C
-- calls that do not call back), and gets what sched.wake(co, tok, ...)
-- delivered, or (sched.CANCEL, err) when the wait was cancelled: the
-- caller cleans up and raises err.
M.arm = arm
M.CANCEL = CANCEL

--- sched.wake for such a waiter, which is known to be suspended in its
-- yield when its token still matches (no status check, no varargs).
function M.wake_lean(co, tok, v)
  if waits[co] ~= tok then return false end
  waits[co] = nil
  local ok, err = co_resume(co, v)
  if not ok then died(co, err) end
  return true
end

function M.wake(co, tok, ...)
  if co == nil or waits[co] ~= tok then return false end
  waits[co] = nil
  if co_status(co) == "running" then
    early[co] = table.pack(...)
  else
    resume(co, ...)
  end
  return true
end

--- Is co blocked in a wait?
function M.waiting(co) return waits[co] ~= nil end

--- End co's current wait by raising err inside it.  Returns true if co was
-- waiting.
function M.cancel(co, err)
  if waits[co] == nil then return false end
  waits[co] = nil
  if co_status(co) == "running" then
    early[co] = table.pack(CANCEL, err)
  else
    resume(co, CANCEL, err)
  end
  return true
end

--- Sleep ms milliseconds (cancellable).
function M.sleep(ms)
  local t
  local ok, err = pcall(M.suspend, function(wake) t = core.timer(ms, wake) end)
  if not ok then
    if t then t:stop() end
    error(err, 0)
  end
end

--- Run the loop until fn(...) (started as a coroutine) has finished and
-- nothing else is pending, or until it has finished when opts.until_done.
-- Returns fn's results or raises its error.  Must be called from the main
-- thread (not from a coroutine).
function M.run(fn, ...)
  local result
  M.spawn(fn, function(...) result = table.pack(...) end, ...)
  while result == nil do
    if not core.run(true) and result == nil then
      error(errors.usage("ari.run: the loop ran out of work before the function finished (a wait nobody will wake)", 2), 0)
    end
  end
  if not result[1] then error(result[2], 0) end
  return table.unpack(result, 2, result.n)
end

return M
