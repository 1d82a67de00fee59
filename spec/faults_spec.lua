-- Faults against the simulated Asterisk: malformed and unexpected events,
-- a duplicate StasisStart, a handler that errors, one that never yields
-- (the watchdog), REST 5xx, a timeout and a slow answer inside one call,
-- the events socket dropping mid-call and coming back, and the event fuzz
-- corpus replayed through the routing path.
local ari = require "ari"
local core = require "ari.core"
local callsim = require "spec.support.callsim"
local util = require "spec.support.util"
local client_mod = require "ari.client"
local app_mod = require "ari.app"

local read = util.read

-- the REST transport of ari.client, wrapped
local function wrapped(fn)
  return function(req)
    local r = fn(req)
    if r ~= nil then return table.unpack(r) end
    return require("ari.http").request(req)
  end
end


local simmod = require "ari.sim"
local scen = require "ari.sim.scenario"

-- callsim.run with a REST transport of our own (opts.transport(req) ->
-- { status, body, headers } or nil for the real one), extra app options
-- (opts.app), a client with a REST timeout (opts.rest_timeout ms); also
-- counts the events socket's connects.
local function run(scn, setup, opts)
  opts = opts or {}
  local r = {}
  ari.run(function()
    local sim = simmod.new { speed = 20, scenario = scn, logger = function() end }
    sim:listen { host = "127.0.0.1", port = 0 }
    local done, started = false, false
    sim.connect_hooks[#sim.connect_hooks + 1] = function(apps)
      if started then return end
      started = true
      scen.start(sim, apps[1], function() done = true end)
    end
    local aopts = { app = scn.app or "test", url = sim.url, user = sim.user, password = sim.password,
      transport = opts.transport and wrapped(opts.transport) }
    if opts.rest_timeout then
      -- a client of our own, with a short REST timeout
      aopts.client = ari.connect { url = sim.url, user = sim.user, password = sim.password, app = aopts.app,
        timeout = opts.rest_timeout }
    end
    for k, v in pairs(opts.app or {}) do aopts[k] = v end
    local app = ari.app(aopts)
    r.sim, r.app = sim, app
    local deadline = ari.now() + (opts.timeout or 20000)
    if setup then ari.spawn(setup, app, sim) end
    while not done and ari.now() < deadline do ari.sleep(5) end
    local d2 = ari.now() + 2000
    while app:active() > 0 and ari.now() < d2 do ari.sleep(5) end
    ari.sleep(20)
    r.done = done
    r.stats = app:stats()
    r.app_connects = app.client.stats.connects
    app.client:remove_router(app.router)
    app.client:close()
    sim:close()
  end)
  return r
end

describe("unexpected events", function()
  -- an app on a client without a socket; REST answered by a stub
  local function stub_app()
    local rest = {}
    local client = client_mod.connect { url = "http://127.0.0.1:1", user = "u", password = "p", events = false,
      transport = function(req) rest[#rest + 1] = req.method .. " " .. req.path; return 204, "", {} end }
    local app = app_mod.app { app = "f", client = client }
    return app, client, rest
  end
  local function ev(text) return client_mod.json_decode(text) end

  it("malformed JSON, unknown types, unknown channels and a duplicate StasisStart", function()
    local errors = {}
    local sched = require "ari.sched"
    local old = sched.on_error
    sched.on_error = function(m) errors[#errors + 1] = m end
    ari.run(function()
      local app, client = stub_app()
      local started, args = 0, {}
      app:on_call(function(call, a)
        started = started + 1
        args[#args + 1] = a[1]
        call:answer()
        call:wait_hangup()
      end)
      -- what ws.c hands over for text that does not decode: nothing reaches dispatch
      assert.is_nil(client_mod.json_decode('{"type":"StasisStart",'))
      client:dispatch(nil)
      client:dispatch("StasisStart")
      client:dispatch({ 1, 2, 3 })
      client:dispatch(ev('{"type":"NoSuchEvent","channel":{"id":"c1"}}'))
      client:dispatch(ev('{"type":"ChannelDtmfReceived","digit":"1","channel":{"id":"nobody"}}'))
      client:dispatch(ev('{"type":"StasisStart","application":"f","channel":{"pd":12},"args":[]}'))
      client:dispatch(ev('{"type":"StasisStart","application":"f","channel":7,"args":[]}'))
      local ss = '{"type":"StasisStart","application":"f","channel":{"id":"c1","name":"PJSIP/a","state":"Ring"},"args":["%s"]}'
      client:dispatch(ev(ss:format("first")))
      client:dispatch(ev(ss:format("second"))) -- duplicate: the same call, not a second one
      ari.sleep(10)
      assert.equals(1, started)
      assert.same({ "first" }, args)
      assert.equals(1, app:stats().active)
      client:dispatch(ev('{"type":"ChannelDestroyed","cause":16,"channel":{"id":"c1","name":"PJSIP/a"}}'))
      ari.sleep(10)
      assert.equals(0, app:stats().active)
      client:close()
    end)
    sched.on_error = old
    assert.same({}, errors)
  end)

  it("the event fuzz corpus (with its regressions) routes without an unhandled error", function()
    local errors = {}
    local sched = require "ari.sched"
    local old_on_error = sched.on_error
    ari.run(function()
      local route, counts = dofile("spec/fuzz/event_check.lua")
      sched.on_error = function(m) errors[#errors + 1] = m end
      local p = io.popen("ls -1 spec/fuzz/corpus/event")
      local n = 0
      for name in p:lines() do
        local v = core.json_decode(read("spec/fuzz/corpus/event/" .. name))
        route(v)
        n = n + 1
      end
      p:close()
      ari.sleep(20)
      assert.is_true(n > 50)
      assert.is_true(counts.calls > 0)
      assert.is_true(counts.handled > 0)
    end)
    sched.on_error = old_on_error
    assert.same({}, errors)
  end)
end)

describe("faults inside one call", function()
  local calls2 = { { from = "1001", script = { { "wait_answer" }, { "wait_hangup", timeout = 200000 } } },
                   { from = "1002", at = 100, script = { { "wait_answer" }, { "wait_hangup", timeout = 200000 } } } }

  it("a handler that raises ends only its call (hung up, counted as error)", function()
    local done = {}
    local r = callsim.run({ calls = calls2 }, function(app)
      app:on_call(function(call)
        call:answer()
        if call.channel.caller.number == "1001" then error("boom") end
        call:sleep(100)
        done[#done + 1] = call.channel.caller.number
      end)
    end)
    assert.is_true(r.done)
    assert.same({ "1002" }, done)
    assert.equals(1, r.stats.error)
    assert.equals(1, r.stats.normal)
    assert.equals(1, callsim.count(callsim.entries(r.sim, "1001"), "^DELETE /ari/channels/"))
  end)

  it("a REST 5xx surfaces in that call only", function()
    local seen = {}
    local r = run({ app = "test", calls = calls2 }, function(app)
      app:on_call(function(call)
        call:answer()
        local ok, err = pcall(call.set_var, call, "WHO", call.channel.caller.number)
        seen[call.channel.caller.number] = ok and "ok" or err.status
      end)
    end, { transport = function(req)
      if req.path:find("/variable$") and req.query_string:find("1001", 1, true) then
        return { 503, '{"message":"unavailable"}', { ["content-type"] = "application/json" } }
      end
    end })
    assert.is_true(r.done)
    assert.equals(503, seen["1001"])
    assert.equals("ok", seen["1002"])
  end)

  it("a REST timeout surfaces in that call only", function()
    local seen, order = {}, {}
    local r = run({ app = "test", calls = calls2 }, function(app, sim)
      -- the simulated Asterisk never answers 1001's set_var
      local request = sim.request
      sim.request = function(self, method, path, query, ...)
        if path:find("/variable$") and type(query) == "string" and query:find("1001", 1, true) then
          require("ari.sched").suspend(function() end)
        end
        return request(self, method, path, query, ...)
      end
      app:on_call(function(call)
        call:answer()
        local who = call.channel.caller.number
        local ok, err = pcall(call.set_var, call, "WHO", who)
        seen[who] = ok and "ok" or err
        order[#order + 1] = who
      end)
    end, { rest_timeout = 1000, timeout = 20000 })
    assert.is_true(r.done)
    assert.equals("ok", seen["1002"])
    local err = seen["1001"]
    assert.is_table(err)
    assert.equals("transport", err.kind)
    assert.equals("timeout", err.transport)
    assert.same({ "1002", "1001" }, order) -- 1002 did not wait for 1001's request
    assert.equals(2, r.stats.normal)
  end)

  it("a server that answers after 5 s blocks no other call", function()
    local finished = {}
    local t_start
    local r = run({ app = "test", calls = calls2 }, function(app)
      t_start = ari.now()
      app:on_call(function(call)
        call:answer()
        call:set_var("WHO", call.channel.caller.number)
        finished[call.channel.caller.number] = ari.now() - t_start
      end)
    end, { timeout = 30000, transport = function(req)
      if req.path:find("/variable$") and req.query_string:find("1001", 1, true) then ari.sleep(5000) end
    end })
    assert.is_true(r.done)
    assert.is_number(finished["1002"])
    assert.is_number(finished["1001"])
    -- 1002 finished before the delayed answer to 1001 came back
    assert.is_true(finished["1002"] < finished["1001"])
    assert.is_true(finished["1001"] >= 5000)
  end)
end)

describe("a duplicate StasisStart over the events socket", function()
  it("reaches the running call; no second coroutine starts", function()
    local runs, got = 0, nil
    local r = run({ calls = { { from = "1001", script = {
      { "wait_answer" },
      { "call", function(sim, ch)
        sim:deliver("StasisStart", { "args", simmod.split_args("dup"), "channel", sim:snapshot(ch) }, { ch.app }, ch.call)
      end },
      { "sleep", 2000 },
      { "dtmf", "7" },
      { "wait_hangup", timeout = 200000 } } } } }, function(app)
      app:on_call(function(call)
        runs = runs + 1
        call:answer()
        got = call:get_digits { max = 1, timeout = 6000 }
      end)
    end)
    assert.is_true(r.done)
    assert.equals(1, runs)
    assert.equals("7", got)
    assert.equals(1, r.stats.started)
    assert.equals(1, r.stats.normal)
    assert.equals(2, callsim.count(callsim.entries(r.sim, "1001"), "^StasisStart "))
  end)
end)

describe("a script that raises", function()
  it("ends its call with outcome error (logged with the traceback, channel hung up); a hang-up mid-wait is outcome hangup", function()
    local calls = { { from = "2001", script = { { "wait_answer" }, { "wait_hangup", timeout = 200000 } } },
                    { from = "2002", at = 50, script = { { "wait_answer" }, { "sleep", ms = 100 }, { "hangup" } } } }
    local ended, lines, hooks = {}, {}, {}
    local log = require "ari.log"
    log.set_output({ write = function(_, ...) lines[#lines + 1] = table.concat({ ... }) end, flush = function() end })
    local ok, r = pcall(run, { app = "test", calls = calls }, function(app)
      app.on_end = function(call, outcome, err) ended[call.channel.caller.number] = { outcome, err } end
      app:on_call(function(call)
        local who = call.channel.caller.number
        call:on_hangup(function() hooks[#hooks + 1] = who end)
        call:answer()
        if who == "2001" then
          call:sleep(20)
          local function check_the_pin() error("pin service unreachable") end
          check_the_pin()
        end
        call:get_digits { max = 4, timeout = 100000 } -- 2002 hangs up while we wait here
      end)
    end)
    log.set_output()
    assert(ok, r)
    assert.is_true(r.done)
    assert.equals("error", ended["2001"][1])
    assert.matches("pin service unreachable", tostring(ended["2001"][2]))
    assert.equals("hangup", ended["2002"][1])
    assert.is_true(require("ari.call").is_hangup(ended["2002"][2]))
    local text = table.concat(lines)
    assert.matches("script error: [^\n]*pin service unreachable", text)
    assert.matches("check_the_pin", text) -- the traceback of the script's coroutine
    assert.equals(1, callsim.count(callsim.entries(r.sim, "2001"), "^DELETE /ari/channels/"))
    assert.equals(0, callsim.count(callsim.entries(r.sim, "2002"), "^DELETE /ari/channels/"))
    table.sort(hooks)
    assert.same({ "2001", "2002" }, hooks)
    assert.same({ 1, 1, 0 }, { r.stats.error, r.stats.hangup, r.stats.active })
  end)
end)

describe("a script that never yields", function()
  local calls3 = { { from = "1001", script = { { "wait_answer" }, { "wait_hangup", timeout = 200000 } } },
                   { from = "1002", at = 100, script = { { "wait_answer" }, { "wait_hangup", timeout = 200000 } } },
                   { from = "1003", at = 200, script = { { "wait_answer" }, { "wait_hangup", timeout = 200000 } } } }

  it("is ended by the watchdog (even when it catches the error); the other calls complete", function()
    local done, caught, ended = {}, {}, {}
    local r = run({ app = "test", calls = calls3 }, function(app)
      app.on_end = function(call, outcome, err) ended[call.channel.caller.number] = { outcome, err } end
      app:on_call(function(call)
        call:answer()
        local who = call.channel.caller.number
        if who == "1001" then
          while true do end                 -- a plain busy loop
        elseif who == "1003" then
          while true do                     -- a busy loop that swallows errors
            local ok, e = pcall(function() while true do end end)
            if not ok then caught[#caught + 1] = e end
          end
        end
        call:sleep(50)
        done[#done + 1] = who
      end)
    end, { app = { watchdog_ms = 300 }, timeout = 20000 })
    assert.is_true(r.done)
    assert.same({ "1002" }, done)
    assert.equals(2, r.stats.error)
    assert.equals(1, r.stats.normal)
    assert.equals(2, r.stats.watchdog)
    assert.equals(0, r.stats.active)
    -- both ended with the watchdog's error; the one that catches errors
    -- could not even record it (after the first error nothing of the
    -- script runs)
    assert.same({}, caught)
    for _, who in ipairs { "1001", "1003" } do
      local outcome, err = ended[who][1], ended[who][2]
      assert.equals("error", outcome)
      assert.is_true(require("ari.watchdog").is_watchdog(err), who)
      assert.is_true(require("ari.errors").is(err, "watchdog"), who) -- of the ari.errors family
      assert.matches("without yielding", tostring(err))
      assert.is_true(err.elapsed >= 300)
    end
    assert.equals("normal", ended["1002"][1])
    -- both channels were hung up by the app
    for _, who in ipairs { "1001", "1003" } do
      assert.equals(1, callsim.count(callsim.entries(r.sim, who), "^DELETE /ari/channels/"), who)
    end
  end)

  it("leaves alone a script that works hard but yields in time", function()
    local n = 0
    local r = run({ app = "test", calls = calls3 }, function(app)
      app:on_call(function(call)
        call:answer()
        for _ = 1, 20 do
          local x = 0
          for i = 1, 200000 do x = x + i end  -- busy between yields, each stretch well under the limit
          call:sleep(1)
        end
        n = n + 1
      end)
    end, { app = { watchdog_ms = 2000 } })
    assert.is_true(r.done)
    assert.equals(3, n)
    assert.equals(3, r.stats.normal)
    assert.is_nil(r.stats.watchdog)
  end)
end)

describe("the events socket", function()
  it("drops mid-call and comes back: the call goes on and gets later events", function()
    local got
    local r = run({ calls = { { from = "1001", script = {
      { "wait_answer" },
      { "call", function(sim)
        -- close every events socket of the app from the server side
        for _, a in pairs(sim.apps) do
          for s in pairs(a.sessions) do
            if s.on_close then pcall(s.on_close) end
            s.close()
          end
        end
      end },
      { "sleep", 40000 },                     -- 2 s real at speed 20: the client reconnects meanwhile
      { "dtmf", "5" },
      { "wait_hangup", timeout = 200000 } } } } }, function(app)
      app:on_call(function(call)
        call:answer()
        got = call:get_digits { max = 1, timeout = 6000 }
      end)
      -- REST over HTTP: the socket drops while the answer is in flight, and
      -- an HTTP request does not depend on it (over the events socket that
      -- request fails with a transport error `reset`: spec/restws_spec.lua,
      -- spec/asterisk/modes_restws_spec.lua)
    end, { timeout = 20000, app = { transport = "http" } })
    assert.is_true(r.done)
    assert.equals("5", got)
    assert.is_true(r.app_connects >= 2, "connects " .. tostring(r.app_connects))
  end)
end)
