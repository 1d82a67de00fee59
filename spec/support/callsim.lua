-- Test harness for the Call layer: an in-process simulated Asterisk
-- (ari.sim over loopback HTTP + WebSocket) driven by a scenario, and an
-- ari.app connected to it.  Used by spec/call_*_spec.lua and spec/app_*_spec.lua.
local ari = require "ari"
local simmod = require "ari.sim"
local scen = require "ari.sim.scenario"

local M = {}

--- Run a scenario against an app.  setup(app, sim) registers on_call (or
-- originates, as a coroutine).  opts: speed (default 20), timeout (ms real,
-- default 20000).  Returns { sim, app, stats, done }.
function M.run(scn, setup, opts)
  opts = opts or {}
  local r = {}
  ari.run(function()
    local sim = simmod.new { speed = opts.speed or 20, scenario = scn, logger = function() end }
    sim:listen { host = "127.0.0.1", port = 0 }
    local done = false
    local started = false
    sim.connect_hooks[#sim.connect_hooks + 1] = function(apps)
      if started then return end
      started = true
      scen.start(sim, apps[1], function() done = true end)
    end
    local app = ari.app { app = scn.app or "test", url = sim.url, user = sim.user, password = sim.password,
      auto_hangup = opts.auto_hangup }
    r.sim, r.app = sim, app
    local deadline = ari.now() + (opts.timeout or 20000)
    local setup_done = setup == nil
    if setup then
      -- runs up to its first wait now
      require("ari.sched").spawn(setup, function(ok, err)
        setup_done = true
        if not ok then r.setup_error = err end
      end, app, sim)
    end
    while not (done and setup_done) and ari.now() < deadline do ari.sleep(5) end
    local d2 = ari.now() + 2000
    while app:active() > 0 and ari.now() < d2 do ari.sleep(5) end
    ari.sleep(20) -- late events (StasisEnd, ChannelDestroyed) of the last calls
    r.done = done
    r.stats = app:stats()
    app.client:remove_router(app.router)
    app.client:close()
    sim:close()
  end)
  if r.setup_error then error(r.setup_error, 0) end
  return r
end

--- Transcript entries of a call (by the caller's number in the sim's call
-- label, "call from <from> to ..."), or all when from is nil.
function M.entries(sim, from)
  local keys = {}
  for k, c in pairs(sim.calls) do
    if from == nil or (c.label and c.label:find("from " .. from .. " ", 1, true)) then keys[c.id] = true end
  end
  local out = {}
  for _, e in ipairs(sim.transcript) do
    if from == nil or keys[e.call] then out[#out + 1] = e end
  end
  return out
end

--- Count entries whose summary matches a Lua pattern.
function M.count(entries, pat)
  local n = 0
  for _, e in ipairs(entries) do if e.summary:find(pat) then n = n + 1 end end
  return n
end

return M
