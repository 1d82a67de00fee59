-- Hot reload (ari.reload): the app script runs again in a fresh
-- environment; running calls finish on their old code, new calls take the
-- new code, a script that fails changes nothing.  Against the in-process
-- simulator over loopback HTTP/WebSocket.
local ari = require "ari"
local config = require "ari.config"
local sched = require "ari.sched"
local reload = require "ari.reload"
local appmod = require "ari.app"
local simmod = require "ari.sim"
local scen = require "ari.sim.scenario"
local util = require "spec.support.util"

local tmpdir = os.tmpname()
os.remove(tmpdir)
os.execute("mkdir -p " .. tmpdir)
package.path = tmpdir .. "/?.lua;" .. package.path

local function write(name, text)
  local path = tmpdir .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

-- Poll until cond() holds; a failure guard, not a timing assertion.
local wait_until = util.poll

-- A simulator with our sounds, served on loopback; config points at it.
-- Returns sim and media[channel id] = { media uris played, in order }.
local function start_sim(speed)
  local sim = simmod.new { speed = speed, scenario = { sounds = {
    ["old-code"] = 400, ["new-code"] = 400, ["broken"] = 400 } } }
  sim:listen { host = "127.0.0.1", port = 0 }
  config.url, config.user, config.password = sim.url, sim.user, sim.password
  local media = {}
  sim.event_hooks[#sim.event_hooks + 1] = function(_, ev)
    if ev.type == "PlaybackStarted" then
      local id = ev.playback.target_uri:match("^channel:(.+)$")
      if id then
        local l = media[id] or {}
        media[id] = l
        l[#l + 1] = ev.playback.media_uri
      end
    end
  end
  return sim, media
end

local function connected(sim, name)
  return function() local a = sim.apps[name]; return a ~= nil and next(a.sessions) ~= nil end
end

-- Shut every app down (they close their clients) and the simulator.
local function teardown(sim)
  ari.run(function()
    for _, a in ipairs(appmod.apps) do if a.accepting then a:shutdown(0) end end
  end)
  for i = #appmod.apps, 1, -1 do appmod.apps[i] = nil end
  appmod.reuse = nil
  sim:close()
end

local function count(t, v) local n = 0; for _, x in pairs(t) do if x == v then n = n + 1 end end; return n end

local SIMPLE = [[
local ari = require "ari"
local app = ari.app "%s"
app:on_call(function(call)
  call:answer()
  call:play("sound:%s")
  call:hangup()
end)
]]

describe("hot reload", function()
  it("reloads under 500 concurrent calls: none is dropped, running calls keep the old code, new calls take the new", function()
    local N = 500
    local sim, media = start_sim(10)
    local path = write("reload_load.lua", [[
local ari = require "ari"
local app = ari.app "reloadload"
app:on_call(function(call)
  call:answer()
  call:get_digits{ max = 1, timeout = 60000 }
  call:play("sound:old-code")
  call:hangup()
end)
]])
    local old_ids, new_ids = {}, {}
    local ended, held = 0, 0
    local gate = {}
    local app, client
    ari.run(function()
      local main = assert(reload.load(path))
      main()
      app = appmod.apps[#appmod.apps]
      client = app.client
      wait_until(connected(sim, "reloadload"), "the app to connect")
      -- phase A: N callers, answered, each waits at the gate before pressing 1
      local script_a = {
        { "wait_answer", timeout = 600000 },
        { "call", function()
          held = held + 1
          sched.suspend(function(wake) gate[#gate + 1] = wake end)
        end },
        { "dtmf", "1" },
        { "wait_hangup", timeout = 600000 },
      }
      for i = 1, N do
        local ch = scen.place_call(sim, { from = tostring(10000 + i), script = script_a }, "reloadload",
          function() ended = ended + 1 end)
        old_ids[#old_ids + 1] = ch.id
      end
      wait_until(function() return held == N end, "all phase-A calls to be answered", 60000)
      assert.equals(N, app:active())

      -- the new code, loaded while N calls are in the middle of the old one
      write("reload_load.lua", [[
local ari = require "ari"
local app = ari.app "reloadload"
app:on_call(function(call)
  call:answer()
  call:play("sound:new-code")
  call:hangup()
end)
]])
      local ok, err = app:reload()
      assert.is_true(ok, tostring(err))
      assert.equals(2, reload.generation)
      assert.equals(1, #appmod.apps)          -- the same app ...
      assert.equals(client, appmod.apps[1].client) -- ... on the same client and connection
      assert.equals(N, app:active())          -- nothing dropped by the reload itself

      -- phase B: N new calls while the old ones are still waiting
      local script_b = { { "wait_answer", timeout = 600000 }, { "wait_hangup", timeout = 600000 } }
      for i = 1, N do
        local ch = scen.place_call(sim, { from = tostring(20000 + i), script = script_b }, "reloadload",
          function() ended = ended + 1 end)
        new_ids[#new_ids + 1] = ch.id
      end
      -- phase B over (on both sides: the app sees the last hang-ups a moment after the simulator)
      wait_until(function() return ended >= N and app:active() <= N end, "phase-B calls to end", 60000)
      assert.equals(N, ended)
      assert.equals(N, app:active()) -- the old calls are still running
      assert.equals(N, #gate)
      for _, wake in ipairs(gate) do wake() end
      wait_until(function() return ended == 2 * N and app:active() == 0 end, "every call to end", 60000)
    end)
    local st = app:stats()
    assert.equals(2 * N, st.started)
    assert.equals(2 * N, st.ended)
    assert.equals(2 * N, st.normal)
    assert.equals(0, st.error)
    assert.equals(0, st.hangup)
    -- what each caller heard (the simulator's view)
    local old_ok, new_ok = 0, 0
    for _, id in ipairs(old_ids) do
      local m = media[id]
      if m and #m == 1 and m[1] == "sound:old-code" then old_ok = old_ok + 1 end
    end
    for _, id in ipairs(new_ids) do
      local m = media[id]
      if m and #m == 1 and m[1] == "sound:new-code" then new_ok = new_ok + 1 end
    end
    assert.equals(N, old_ok)
    assert.equals(N, new_ok)
    -- every channel was hung up by the app (not by a caller's timeout)
    local deletes = 0
    for _, e in ipairs(sim.transcript) do
      if e.kind == "rest" and e.method == "DELETE" and e.status == 204 and e.path:match("^/ari/channels/[^/]+$") then
        deletes = deletes + 1
      end
    end
    assert.equals(2 * N, deletes)
    teardown(sim)
  end)

  it("a script that fails to load or raises keeps the old code running, and says why", function()
    local sim, media = start_sim(20)
    local path = write("reload_fail.lua", SIMPLE:format("reloadfail", "old-code"))
    local errs = {}
    local app
    local function one_call()
      local done = false
      local ch = scen.place_call(sim, { script = { { "wait_answer" }, { "wait_hangup", timeout = 60000 } } },
        "reloadfail", function() done = true end)
      wait_until(function() return done end, "the call to end")
      return media[ch.id] and media[ch.id][1]
    end
    ari.run(function()
      assert(reload.load(path))()
      app = appmod.apps[#appmod.apps]
      wait_until(connected(sim, "reloadfail"), "the app to connect")
      local gen = reload.generation
      local f0 = reload.stats.failed
      assert.equals("sound:old-code", one_call())

      -- does not compile
      write("reload_fail.lua", "local ari = require 'ari'\nlocal x = = 1\n")
      local ok, err = app:reload()
      assert.is_false(ok)
      errs[#errs + 1] = err
      assert.matches("reload_fail.lua:2:", err)
      assert.equals(gen, reload.generation)
      assert.equals("sound:old-code", one_call())

      -- compiles, replaces the handler, then raises before it is done
      write("reload_fail.lua", SIMPLE:format("reloadfail", "broken") .. "error('not today')\n")
      ok, err = app:reload()
      assert.is_false(ok)
      assert.matches("not today", err)
      assert.equals(gen, reload.generation)
      assert.equals(f0 + 2, reload.stats.failed)
      assert.equals("sound:old-code", one_call())

      -- creates another app, then raises: that app does not survive
      write("reload_fail.lua", SIMPLE:format("reloadfail", "broken") ..
        "local other = ari.app 'otherapp'\nother:on_call(function(call) call:hangup() end)\nerror('half done')\n")
      ok, err = app:reload()
      assert.is_false(ok)
      assert.matches("half done", err)
      assert.equals(f0 + 3, reload.stats.failed)
      wait_until(function()
        for _, a in ipairs(appmod.apps) do if a.name == "otherapp" and a.accepting then return false end end
        return true
      end, "the failed generation's new app to shut down")
      assert.equals("sound:old-code", one_call())

      -- and a good script still takes over afterwards
      write("reload_fail.lua", SIMPLE:format("reloadfail", "new-code"))
      ok, err = app:reload()
      assert.is_true(ok, tostring(err))
      assert.equals(gen + 1, reload.generation)
      assert.equals("sound:new-code", one_call())
    end)
    assert.is_nil(reload.stats.last_error)
    teardown(sim)
  end)

  it("runs in a fresh environment, reloads the script's own modules, keeps reload.keep values", function()
    local sim = start_sim(20)
    local probe = { runs = 0 }
    package.loaded.reload_probe = probe
    write("reload_helper_mod.lua", "return { version = 1 }\n")
    local path = write("reload_env.lua", [[
local ari = require "ari"
local reload = require "ari.reload"
local probe = require "reload_probe"
probe.runs = probe.runs + 1
probe.saw_global = MARK          -- a global set by the previous generation?
MARK = "set by run " .. probe.runs
probe.version = require("reload_helper_mod").version
probe.kept = reload.keep("counter", function() return { created_in = probe.runs } end)
probe.args = { ... }
probe.app = ari.app "reloadenv"
probe.app:on_call(function(call) call:hangup() end)
]])
    ari.run(function()
      assert(reload.load(path))("a1", "a2")
      local app1, kept1 = probe.app, probe.kept
      assert.equals(1, probe.version)
      assert.is_nil(probe.saw_global)
      assert.is_nil(rawget(_G, "MARK")) -- the script's globals are its own
      write("reload_helper_mod.lua", "return { version = 2 }\n")
      assert.is_true((reload.reload("test")))
      assert.equals(2, probe.runs)
      assert.is_nil(probe.saw_global)     -- fresh environment
      assert.equals(2, probe.version)     -- its module was loaded again
      assert.equals(kept1, probe.kept)    -- the kept value survived
      assert.equals(1, probe.kept.created_in)
      assert.same({ "a1", "a2" }, probe.args) -- same arguments as the first run
      assert.equals(app1, probe.app)      -- the same app
    end)
    package.loaded.reload_probe = nil
    teardown(sim)
  end)

  it("SIGHUP reloads the script", function()
    local sim = start_sim(20)
    local probe = { runs = 0 }
    package.loaded.reload_probe = probe
    local path = write("reload_hup.lua", [[
local probe = require "reload_probe"
probe.runs = probe.runs + 1
]])
    local f = assert(io.open("/proc/self/stat"))
    local pid = f:read("l"):match("^(%d+)")
    f:close()
    ari.run(function()
      assert(reload.load(path))()
      local h = reload.watch()
      local gen = reload.generation
      assert.is_true(os.execute("kill -HUP " .. pid))
      wait_until(function() return reload.generation == gen + 1 end, "the SIGHUP reload")
      assert.equals(2, probe.runs)
      h:close()
    end)
    package.loaded.reload_probe = nil
    teardown(sim)
  end)
  it("the ari-lua host reloads its script on SIGHUP", function()
    local bin = os.getenv("ARI_LUA_BIN") or "./ari-lua"
    local script = write("reload_host.lua", [[
local ari = require "ari"
local reload = require "ari.reload"
local app = ari.app "hosthup"
app:on_call(function(call)
  call:answer()
  io.stdout:write("CALL generation 1\n")
  -- the next version, then SIGHUP to ourselves; the next call starts once it has taken over
  local src = io.open(reload.script):read("a"):gsub("CALL generation 1", "CALL generation 2")
                 :gsub("local f = io.open", "do return end local f = io.open")
  local f = io.open(reload.script, "w"); f:write(src); f:close()
  local pid = io.open("/proc/self/stat"):read("l"):match("^(%d+)")
  os.execute("kill -HUP " .. pid)
  while reload.generation < 2 do ari.sleep(5) end
  call:hangup()
end)
]])
    local scenario = write("reload_host_scn.lua", [[
return { app = "hosthup", load = { calls = 3, concurrency = 1,
  script = { { "wait_answer" }, { "wait_hangup", timeout = 30000 } } } }
]])
    local out = tmpdir .. "/reload_host.out"
    local ok = os.execute(string.format("%s --sim=%s --sim-speed 10 %s > %s 2>&1", bin, scenario, script, out))
    local o = io.open(out):read("a")
    assert.is_true(ok, o)
    local _, g1 = o:gsub("CALL generation 1", "")
    local _, g2 = o:gsub("CALL generation 2", "")
    assert.equals(1, g1, o)
    assert.equals(2, g2, o)
    assert.matches("reloaded .-reload_host.lua %(generation 2%)", o)
  end)
end)
