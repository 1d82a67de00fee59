-- Outbound WebSockets: the simulated Asterisk connects to ari-lua's
-- listener (ari.outbound), persistent and per-call, REST going back as
-- RESTRequest on the same socket.
local ari = require "ari"
local core = require "ari.core"
local simmod = require "ari.sim"
local scenario = require "ari.sim.scenario"
local simout = require "ari.sim.outbound"
local outbound = require "ari.outbound"
local util = require "spec.support.util"

local wait_until = util.waiter(5000)

-- A simulator (not listening: the only way in is the outbound socket) and
-- an app listening on an ephemeral port.
local function setup(name, opts)
  opts = opts or {}
  local sim = simmod.new { speed = 20 }
  local app = ari.app { app = name, listen = "127.0.0.1:0", user = "ast", password = "secret",
    orphan_timeout = opts.orphan_timeout }
  local l = app.client.outbound
  local cfg = { name = "c1", type = opts.type or "persistent", uri = "ws://127.0.0.1:" .. l:port(),
    username = "ast", password = opts.password or "secret", apps = { name },
    reconnect_interval = 200, reconnect_attempts = opts.attempts or 3, connection_timeout = 500 }
  local h = simout.attach(sim, { cfg })
  return sim, app, l, h
end

local function teardown(sim, app, h)
  h.close()
  app.client:close()
  sim:close()
end

local function place(sim, app_name, c, ended)
  return scenario.place_call(sim, c, app_name, function(ch) ended[#ended + 1] = ch end)
end

describe("outbound WebSocket, persistent", function()
  it("receives the app's events and answers over the same socket", function()
    ari.run(function()
      local sim, app, l, h = setup("ivr")
      local registered = 0
      app.client:on("ApplicationRegistered", function(ev)
        assert.equals("ivr", ev.application)
        registered = registered + 1
      end)
      local runs = {}
      app:on_call(function(call, args)
        runs[#runs + 1] = { id = call.id, args = args }
        call:answer()
        call:play("sound:hello-world")
        call:hangup()
      end)
      wait_until(function() return l.registered.ivr end, 3000, "ApplicationRegistered")
      local ended = {}
      place(sim, "ivr", { from = "1001", to = "100", args = "x,y", channel_id = "p-1",
        script = { { "wait_hangup", timeout = 10000 } } }, ended)
      wait_until(function() return #ended == 1 end, 5000, "call end")
      assert.equals(1, #runs)
      assert.equals("p-1", runs[1].id)
      assert.same({ "x", "y" }, runs[1].args)
      assert.equals(1, registered)
      assert.equals(1, l:count())
      -- answer, play, hangup went as RESTRequests
      assert.is_true(l.transport.stats.requests >= 3)
      local answered = false
      for _, e in ipairs(sim.transcript) do
        if e.kind == "rest" and e.path and e.path:find("/answer", 1, true) then answered = true end
      end
      assert.is_true(answered)
      teardown(sim, app, h)
    end)
  end)

  it("loses nothing across a reconnect: Asterisk queues the events", function()
    ari.run(function()
      local sim, app, l, h = setup("ivr")
      local regs = 0
      app.client:on("ApplicationRegistered", function() regs = regs + 1 end)
      local digits
      app:on_call(function(call)
        call:answer()
        digits = call:get_digits { max = 3, timeout = 20000 }
        call:play("sound:beep")
        call:hangup()
      end)
      wait_until(function() return l.registered.ivr end, 3000)
      local ended = {}
      -- the caller presses 1, 2, 3 while the app is away
      place(sim, "ivr", { channel_id = "q-1", script = { { "wait_answer" }, { "sleep", 200 }, { "dtmf", "123", gap = 100 },
        { "wait_hangup", timeout = 20000 } } }, ended)
      wait_until(function() return sim.channels["q-1"] and sim.channels["q-1"].state == "Up" end, 3000, "answer")
      for s in pairs(l.sessions) do s.ws:close(1001, "restart") end
      wait_until(function() return #ended == 1 end, 8000, "call end")
      assert.equals("123", digits)
      assert.equals(2, regs)
      assert.equals(2, h.stats.connects)
      teardown(sim, app, h)
    end)
  end)

  it("counts each registration as a (re)connect of the client: state for /readyz, reconnect hooks (resync)", function()
    ari.run(function()
      local sim, app, l, h = setup("ivr")
      local sock = app.client._sockets[1]
      local states = { sock:state() } -- listening, nothing seen yet: ready
      local hooks = 0
      app.client:on_reconnect(function() hooks = hooks + 1 end)
      wait_until(function() return l.registered.ivr end, 3000)
      states[#states + 1] = sock:state()
      for s in pairs(l.sessions) do s.ws:close(1001, "restart") end
      wait_until(function() return l:count() == 0 end, 3000, "the connection to close")
      states[#states + 1] = sock:state() -- the persistent connection is away
      wait_until(function() return hooks == 1 end, 5000, "the reconnect hooks")
      states[#states + 1] = sock:state()
      assert.equals(2, app.client.stats.connects)
      assert.same({ reconnects = 1 }, sock:stats())
      wait_until(function() return app.resyncs == 1 end, 5000, "the app's resync")
      teardown(sim, app, h)
      states[#states + 1] = sock:state()
      assert.same({ "open", "open", "waiting", "open", "closed" }, states)
      local metrics = require "ari.metrics"
      assert.is_function(metrics.ready)
    end)
  end)

  it("handles ApplicationUnregistered (the connection removed from ari.conf)", function()
    ari.run(function()
      local sim, app, l, h = setup("ivr")
      local unreg
      app.client:on("ApplicationUnregistered", function(ev) unreg = ev.application end)
      wait_until(function() return l.registered.ivr end, 3000)
      assert.is_true(h.unregister("c1"))
      wait_until(function() return unreg ~= nil and l:count() == 0 end, 3000, "unregistered")
      assert.equals("ivr", unreg)
      assert.is_false(l.registered.ivr)
      assert.is_false(sim:app_active("ivr"))
      teardown(sim, app, h)
    end)
  end)

  it("refuses bad credentials and connections without the ari subprotocol", function()
    ari.run(function()
      local sim, app, l, h = setup("ivr", { password = "wrong" })
      wait_until(function() return l.stats.refused >= 2 end, 3000, "refusals")
      assert.equals(0, l:count())
      assert.is_nil(l.registered.ivr)
      h.close()
      local closed
      local conn = core.ws_connect({ url = "ws://127.0.0.1:" .. l:port() .. "/",
        headers = { Authorization = "Basic " .. require("ari.ws").base64("ast:secret") } }, {
        on_open = function() closed = "opened" end,
        on_close = function() closed = closed or "closed" end,
        on_error = function() closed = closed or "error" end,
      })
      wait_until(function() return closed ~= nil end, 3000)
      assert.are_not.equal("opened", closed)
      conn:close()
      app.client:close()
      sim:close()
    end)
  end)
end)

describe("outbound WebSocket, per call", function()
  it("serves one connection per call, many at once", function()
    ari.run(function()
      local sim, app, l, h = setup("pc", { type = "per_call_config" })
      local apps_seen, concurrent, peak = {}, 0, 0
      app.client:on("ApplicationRegistered", function(ev) apps_seen[#apps_seen + 1] = ev.application end)
      app:on_call(function(call)
        concurrent = concurrent + 1
        if concurrent > peak then peak = concurrent end
        call:answer()
        call:play("sound:silence/1")
        concurrent = concurrent - 1
        call:hangup()
      end)
      local ended, N = {}, 6
      for i = 1, N do
        place(sim, "pc", { from = tostring(2000 + i), channel_id = "pc-" .. i,
          script = { { "wait_hangup", timeout = 20000 } } }, ended)
      end
      wait_until(function() return #ended == N end, 8000, "calls end")
      assert.equals(N, #apps_seen)
      for _, a in ipairs(apps_seen) do assert.matches("^pc:PJSIP/200%d%-", a) end
      assert.equals(N, l.stats.connections)
      assert.is_true(peak > 1)
      wait_until(function() return l:count() == 0 end, 3000, "connections closed")
      for _, ch in ipairs(ended) do assert.equals("SUCCESS", ch.vars.STASISSTATUS) end
      teardown(sim, app, h)
    end)
  end)

  it("a call survives its connection breaking when Asterisk reconnects", function()
    ari.run(function()
      local sim, app, l, h = setup("pc", { type = "per_call_config" })
      local digits, answered
      app:on_call(function(call)
        call:answer()
        answered = true
        digits = call:get_digits { max = 2, timeout = 20000 }
        call:hangup()
      end)
      local ended = {}
      place(sim, "pc", { channel_id = "r-1", script = { { "wait_answer" }, { "sleep", 300 }, { "dtmf", "42", gap = 100 },
        { "wait_hangup", timeout = 20000 } } }, ended)
      -- the reply to answer must be in: a request in flight fails with its connection
      wait_until(function() return answered end, 3000, "answer")
      for s in pairs(l.sessions) do s.ws:close(1001, "blip") end
      wait_until(function() return #ended == 1 end, 8000, "call end")
      assert.equals("42", digits)
      assert.equals(2, l.stats.connections)
      teardown(sim, app, h)
    end)
  end)

  it("ends a call whose connection is gone for good", function()
    ari.run(function()
      local sim, app, l, h = setup("pc", { type = "per_call_config", orphan_timeout = 100 })
      local outcome
      app.on_end = function(_, how) outcome = how end
      app:on_call(function(call)
        call:answer()
        call:wait("ChannelDtmfReceived", { timeout = 20000 })
      end)
      place(sim, "pc", { channel_id = "o-1", script = { { "wait_hangup", timeout = 20000 } } }, {})
      wait_until(function() return sim.channels["o-1"] and sim.channels["o-1"].state == "Up" end, 3000, "answer")
      h.close() -- Asterisk goes away: no reconnect
      wait_until(function() return l:count() == 0 end, 3000)
      wait_until(function() return app:active() == 0 end, 3000, "call ended")
      assert.equals("hangup", outcome)
      app.client:close()
      sim:close()
    end)
  end)

  it("fails the Stasis() call when nobody is listening", function()
    ari.run(function()
      local sim = simmod.new { speed = 20 }
      local srv = require("ari.server").listen { host = "127.0.0.1", port = 0 }
      local port = srv:port()
      srv:close() -- a port with nobody behind it
      local h = simout.attach(sim, { { type = "per_call_config", uri = "ws://127.0.0.1:" .. port, apps = "pc",
        reconnect_interval = 100, reconnect_attempts = 2, connection_timeout = 300 } })
      local ended = {}
      place(sim, "pc", { channel_id = "f-1" }, ended)
      wait_until(function() return #ended == 1 end, 5000, "hang-up")
      assert.equals("FAILED", ended[1].vars.STASISSTATUS)
      assert.equals(3, h.stats.failures)
      h.close()
      sim:close()
    end)
  end)
end)

describe("ari.outbound", function()
  it("parses listen addresses", function()
    assert.same({ "127.0.0.1", 8090 }, { outbound.parse_listen("127.0.0.1:8090") })
    assert.same({ "127.0.0.1", 8090 }, { outbound.parse_listen("8090") })
    assert.same({ "127.0.0.1", 8090 }, { outbound.parse_listen(":8090") })
    assert.same({ "::1", 9 }, { outbound.parse_listen("[::1]:9") })
    assert.has_error(function() outbound.parse_listen("nohost") end)
    assert.has_error(function() outbound.parse_listen("127.0.0.1:70000") end)
  end)

  -- a fake accepted connection (what the server's on_websocket makes)
  local function session(l)
    local s = { open = true, apps = {}, channels = {}, remote = "test" }
    s.ws = { send = function() return true end, close = function() l:_closed(s, 1001) end }
    l:_opened(s)
    return s
  end
  local function msg(l, s, ev) l:_message(s, core.json_encode(ev)) end
  local function chan(id) return { id = id, name = "Local/x-1;1", state = "Up" } end

  -- per-call session life as real Asterisk 20/22/23 shows it (spec/asterisk/modes_outbound_spec.lua)
  local function run_listener(fn)
    local seen = {}
    local client = { dispatch = function(_, ev) seen[#seen + 1] = ev.type end }
    local l = outbound.listen { listen = "127.0.0.1:0", client = client, orphan_timeout = 30 }
    ari.run(function() fn(l) end)
    return seen, l
  end

  it("per call: a channel that left Stasis (StasisEnd, then the connection closes) is no orphan", function()
    local seen, l = run_listener(function(l)
      local s = session(l)
      msg(l, s, { type = "ApplicationRegistered", application = "a:Local/x-1;1" })
      msg(l, s, { type = "StasisStart", application = "a:Local/x-1;1", channel = chan("c1"), args = {} })
      msg(l, s, { type = "StasisEnd", application = "a:Local/x-1;1", channel = chan("c1") })
      l:_closed(s, 1000) -- Asterisk closes it before ChannelDestroyed
      assert.is_nil(next(l.orphans)) -- so no orphan timer can end it
      l:close()
    end)
    assert.same({ "ApplicationRegistered", "StasisStart", "StasisEnd" }, seen)
  end)

  it("per call: closing the listener ends no call later (an orphan timer from an earlier break)", function()
    local seen = run_listener(function(l)
      local s1 = session(l)
      msg(l, s1, { type = "ApplicationRegistered", application = "a:Local/x-1;1" })
      msg(l, s1, { type = "StasisStart", application = "a:Local/x-1;1", channel = chan("c1"), args = {} })
      l:_closed(s1, 1006) -- broken: the orphan timer starts
      local s2 = session(l) -- Asterisk connects again for the channel
      msg(l, s2, { type = "ApplicationRegistered", application = "a:Local/x-1;1" })
      msg(l, s2, { type = "ChannelDtmfReceived", channel = chan("c1"), digit = "1" })
      assert.is_nil(next(l.orphans)) -- s2 took c1 over
      l:close()          -- ours, while s2 still carries c1
      -- s1's orphan timer is still due: after our close nothing is orphaned
      assert.is_nil(next(l.orphans))
    end)
    for _, t in ipairs(seen) do assert.is_not.equal("StasisEnd", t) end
  end)
end)
