-- Load against the simulated Asterisk: many concurrent calls, many
-- sequential calls.  Checked: every call started and ended normally, the
-- client handled exactly the events the simulator sent to the app, every
-- call's event sequence is complete, nothing is left registered.  Sizes
-- come from the environment (make soak raises them):
--   ARI_LOAD_CONCURRENT (default 1000), ARI_LOAD_SEQUENTIAL (default 1000).
-- Figures (wall time, RSS) are printed, never asserted.
local ari = require "ari"
local simmod = require "ari.sim"
local scen = require "ari.sim.scenario"

local function rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

local function load_run(calls, concurrency, opts)
  opts = opts or {}
  local r = { sent = 0, per_chan = {}, handled = 0, rss = {} }
  ari.run(function()
    local sim = simmod.new { speed = opts.speed or 50, logger = function() end, scenario = {
      app = "load",
      timeout = 1e9,
      load = { { calls = calls, concurrency = concurrency,
                 script = { { "wait_answer" }, { "dtmf", "1" }, { "wait_hangup", timeout = 600000 } } } },
    } }
    sim:listen { host = "127.0.0.1", port = 0 }
    sim.event_hooks[#sim.event_hooks + 1] = function(app, ev)
      if app == "load" then r.sent = r.sent + 1 end
    end
    local done, started = false, false
    sim.connect_hooks[#sim.connect_hooks + 1] = function(apps)
      if started then return end
      started = true
      scen.start(sim, apps[1], function() done = true end)
    end
    local app = ari.app { app = "load", url = sim.url, user = sim.user, password = sim.password }
    local per_chan = r.per_chan
    app.client:on("*", function(ev)
      r.handled = r.handled + 1
      local ch = ev.channel
      if ch and (ev.type == "StasisStart" or ev.type == "StasisEnd" or ev.type == "ChannelDestroyed") then
        local t = per_chan[ch.id] or {}
        per_chan[ch.id] = t
        t[#t + 1] = ev.type
      end
    end)
    local digits = 0
    app:on_call(function(call)
      call:answer()
      if call:get_digits { max = 1, timeout = 20000 } == "1" then digits = digits + 1 end
      call:hangup()
    end)
    local t0 = ari.now()
    local next_sample = 0
    while not done and ari.now() - t0 < (opts.timeout or 120000) do
      ari.sleep(20)
      local ended = app:stats().ended or 0
      if ended >= next_sample then
        r.rss[#r.rss + 1] = { ended, rss_kb() }
        next_sample = next_sample + math.max(1, calls // 10)
      end
    end
    local d2 = ari.now() + 3000
    while (app:active() > 0 or r.handled < r.sent) and ari.now() < d2 do ari.sleep(10) end
    r.ms = ari.now() - t0
    r.done = done
    r.digits = digits
    r.stats = app:stats()
    r.objs = 0
    for _, reg in pairs(app.client._objs) do for _ in pairs(reg) do r.objs = r.objs + 1 end end
    app.client:remove_router(app.router)
    app.client:close()
    sim:close()
  end)
  collectgarbage()
  r.rss_end = rss_kb()
  return r
end

local function check(r, calls, label)
  assert.is_true(r.done, label .. ": the scenario did not finish")
  assert.equals(calls, r.stats.started)
  assert.equals(calls, r.stats.ended)
  assert.equals(calls, r.stats.normal)
  assert.equals(0, r.stats.active)
  assert.equals(calls, r.digits)
  assert.equals(r.sent, r.handled) -- no lost (or invented) events
  local n = 0
  for id, seq in pairs(r.per_chan) do
    n = n + 1
    assert.same({ "StasisStart", "StasisEnd", "ChannelDestroyed" }, seq, "call " .. id)
  end
  assert.equals(calls, n)
  assert.equals(0, r.objs) -- nothing left registered per object
  local first, last = r.rss[1], r.rss[#r.rss]
  print(string.format("\n  %s: %d calls in %d ms, %d events, RSS %d kB at %d calls -> %d kB at %d calls, %d kB after",
    label, calls, r.ms, r.sent, first and first[2] or 0, first and first[1] or 0, last and last[2] or 0,
    last and last[1] or 0, r.rss_end))
end

describe("load", function()
  it("concurrent calls: none lost, every event handled, every sequence complete", function()
    local n = tonumber(os.getenv("ARI_LOAD_CONCURRENT")) or 1000
    local r = load_run(n, n, { timeout = 600000 })
    check(r, n, "concurrent")
  end)

  it("sequential calls: the same, one call at a time", function()
    local n = tonumber(os.getenv("ARI_LOAD_SEQUENTIAL")) or 1000
    local r = load_run(n, 1, { speed = 200, timeout = 3600000 * 24 })
    check(r, n, "sequential")
  end)
end)
