-- ari: the public entry point.  `local ari = require "ari"`.
local core = require "ari.core"
local sched = require "ari.sched"
local log = require "ari.log"

local M = {
  core = core,
  version = core.version,
  log = log,
}

core.set_logger(function(level, msg) log[level](msg) end)
core.set_error_handler(function(msg) log.error("%s", msg) end)
sched.on_error = function(msg) log.error("%s", msg) end

M.spawn = function(fn, ...) return sched.spawn(fn, nil, ...) end
M.sleep = sched.sleep
M.run = sched.run

--- ari.timer(ms, fn [, repeat_ms]) runs fn (as its own coroutine) after ms.
local timers = setmetatable({}, { __mode = "k" }) -- the script's timers (an active one is anchored by the core)
function M.timer(ms, fn, rep)
  local t = core.timer(ms, function() sched.spawn(fn) end, rep)
  timers[t] = true
  return t
end

--- Is an ari.timer still to fire?  (The host does not exit while one is.)
function M.timers_pending()
  for t in pairs(timers) do if t:active() then return true end end
  return false
end

--- Milliseconds of the loop's monotonic clock.
M.now = core.now

-- Shutdown: handlers registered by apps and clients run on SIGINT/SIGTERM
-- (or ari.shutdown()); each is called once, as a coroutine.
local shutdown_handlers = {}
local shutting_down = false
function M.on_shutdown(fn) shutdown_handlers[#shutdown_handlers + 1] = fn end
function M.shutting_down() return shutting_down end
function M.shutdown(reason)
  if shutting_down then return end
  shutting_down = true
  log.info("shutting down (%s)", reason or "requested")
  for i = #shutdown_handlers, 1, -1 do sched.spawn(shutdown_handlers[i]) end
end

-- Lazily loaded parts, so that `require "ari"` stays cheap.
local lazy = {
  json = "ari.json", connect = { "ari.client", "connect" }, app = { "ari.app", "app" },
  model_of = { "ari.models", "model_of" }, bridge = { "ari.app", "bridge" },
  audio = { "ari.media", "audio" }, media = "ari.media",
}
setmetatable(M, {
  __index = function(t, k)
    local spec = lazy[k]
    if spec == nil then return nil end
    local v
    if type(spec) == "string" then v = require(spec)
    else v = require(spec[1])[spec[2]] end
    rawset(t, k, v)
    return v
  end,
})

return M
