-- ari.reload: run the app script again without dropping calls.
--
--   local reload = require "ari.reload"
--   local main = reload.load("app.lua")  -- compile in a fresh _ENV; main(...) runs it (generation 1)
--   reload.reload([reason])              -- -> true | false, err   (also: app:reload(), SIGHUP)
--   reload.watch()                       -- SIGHUP -> reload(); returns the signal handle
--   reload.generation                    -- 1 after the first run, +1 per successful reload
--   reload.stats                         -- { ok = n, failed = n, last_error = msg | nil }
--   reload.keep(name, init)              -- init() once; the same value in every generation
--
-- A reload compiles the script again and runs it, with the arguments of the
-- first run, in a new environment (a fresh table whose misses fall back to
-- _G: nothing the old script set as a global is visible).  During and after a
-- reload, `ari.app(name)` gives back the app the previous generation made
-- (same client, same events socket, same calls), and the script's
-- `app:on_call(fn)` replaces the handler for calls that start from then on.
-- A call keeps the function it started with, so running calls finish on the
-- old code.  Lua modules the script required (not ari's own) are loaded
-- again too.
--
-- The new code takes over when the script has returned, or has reached its
-- first wait (ari.sleep, a REST call...) without error.  A script that does
-- not compile, or raises before that point, changes nothing: the previous
-- handlers are restored, apps it created are shut down, the error is
-- logged and returned.
local sched = require "ari.sched"
local log = require "ari.log"

local M = { generation = 0, script = nil, stats = { ok = 0, failed = 0 } }

local args = { n = 0 }
local baseline       -- package.loaded names present before the first run
local kept = {}      -- reload.keep values
local NIL = {}

local function compile(path)
  local env = setmetatable({}, { __index = _G })
  local chunk, err = loadfile(path, "bt", env)
  if chunk == nil then return nil, err end
  return chunk
end

local function snapshot_loaded()
  local t = {}
  for k in pairs(package.loaded) do t[k] = true end
  return t
end

--- Compile the script at path (in a fresh environment) and remember it for
-- reloads.  Returns a function that runs it as generation 1, or nil, err.
function M.load(path)
  local chunk, err = compile(path)
  if chunk == nil then return nil, err end
  M.script = path
  return function(...)
    args = table.pack(...)
    baseline = snapshot_loaded()
    M.generation = 1
    return chunk(...)
  end
end

-- Lua modules loaded since the first run that are the user's (found on
-- package.path, not ari's own): dropped from package.loaded so that the new
-- script requires them again.  Returns what was dropped (to put back).
local function drop_user_modules()
  local dropped = {}
  if baseline == nil then return dropped end
  for name, mod in pairs(package.loaded) do
    if not baseline[name] and type(name) == "string" and name ~= "ari" and name:sub(1, 4) ~= "ari."
      and package.searchpath(name, package.path) then
      dropped[name] = mod
    end
  end
  for name in pairs(dropped) do package.loaded[name] = nil end
  return dropped
end

--- One value shared by every generation of the script: init() runs the
-- first time; later calls (in reloaded scripts) return the same value.
function M.keep(name, init)
  local v = kept[name]
  if v == nil then
    v = init()
    if v == nil then v = NIL end
    kept[name] = v
  end
  if v == NIL then return nil end
  return v
end

local function fail(msg)
  M.stats.failed = M.stats.failed + 1
  M.stats.last_error = msg
  log.error("reload of %s failed; the previous code keeps running: %s", tostring(M.script), msg)
  return false, msg
end

local function errtext(e)
  if type(e) == "table" then
    return tostring(e) .. (e.traceback and ("\n" .. e.traceback) or "")
  end
  return tostring(e)
end

--- Load the script again (see the header).  Returns true, or false and
-- the reason.
function M.reload(reason)
  if M.script == nil then return fail("no script to reload (not started by the ari-lua host or reload.load)") end
  local chunk, err = compile(M.script)
  if chunk == nil then return fail(err) end
  local appmod = require "ari.app"
  local apps = appmod.apps
  local saved = {}
  for i, a in ipairs(apps) do saved[i] = { app = a, handler = a.handler, on_end = a.on_end } end
  local napps = #apps
  local claimed = {}
  local prev_reuse = appmod.reuse
  -- [hook in ari.app] ari.app(name) gives back the previous generation's app
  appmod.reuse = function(name)
    if claimed[name] then return nil end
    for i = 1, napps do
      local a = apps[i]
      if a.name == name and a.accepting then
        claimed[name] = true
        return a
      end
    end
  end
  local dropped = drop_user_modules()
  local gen = M.generation + 1
  local state = "running" -- running | ok | failed
  local ferr
  log.info("reloading %s (%s)", M.script, reason or "requested")
  sched.spawn(chunk, function(ok, e)
    if ok then
      if state == "running" then state = "ok" end
    elseif state == "running" then
      state, ferr = "failed", e
    else
      log.error("reloaded script %s (generation %d) raised after it took over: %s", M.script, gen, errtext(e))
    end
  end, table.unpack(args, 1, args.n))
  if state == "failed" then
    for _, s in ipairs(saved) do s.app.handler, s.app.on_end = s.handler, s.on_end end
    for i = #apps, napps + 1, -1 do
      local a = apps[i]
      sched.spawn(function() a:shutdown() end)
    end
    for name, mod in pairs(dropped) do package.loaded[name] = mod end
    appmod.reuse = prev_reuse
    return fail(errtext(ferr))
  end
  state = "ok" -- it returned, or it is waiting: either way it has taken over
  M.generation = gen
  M.stats.ok = M.stats.ok + 1
  M.stats.last_error = nil
  for i = 1, napps do
    local a = apps[i]
    if a.accepting and not claimed[a.name] then
      log.warn("reload: the script no longer creates app %s; it keeps its previous handler", a.name)
    end
  end
  log.info("reloaded %s (generation %d)", M.script, gen)
  return true
end

--- SIGHUP reloads the script.  Returns the signal handle (:close()).
function M.watch()
  local core = require "ari.core"
  return core.signal("SIGHUP", function() M.reload("SIGHUP") end)
end

return M
