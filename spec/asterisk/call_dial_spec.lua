-- Real Asterisk: call:dial and app:originate outcomes (#core).  Every
-- outcome runs as its own incoming call, all at once.
local ast = require "spec.support.asterisk"
local cr = require "spec.support.callreal"
local ari = require "ari"
local callmod = require "ari.call"

local function dial_case(endpoint, opts)
  return { exten = "s", fn = function(call)
    local peer, how, err = call:dial(endpoint, opts)
    local r = { peer = peer, how = how, err = err }
    if peer then
      r.peer_state = peer.channel and peer.channel.state
      r.self_state = call.channel and call.channel.state
      r.bridge = how and how.id
      r.members = how and how:wait("ChannelEnteredBridge", { timeout = 5000,
        filter = function(ev) return ev.channel.id == peer.id end }) ~= nil
      r.count = how:count()
      r.gone = how.gone
      -- hangup_together: when this call hangs up, the far end goes too
      r.peer_call = peer
      call:hangup()
      r.peer_gone = peer:wait_hangup(5000)
    end
    return r
  end }
end

ast.describe("real Asterisk: call:dial outcomes #core", function(inst)
  it("answered, a number, busy, congestion, no answer, no such endpoint, far end hangs up first", function()
    local res = cr.with_app(inst, "dial", function(app)
      return cr.calls(app, {
        answered = dial_case("Local/s@caller", { timeout = 10 }),
        number = dial_case("Local/5551234@caller", { timeout = 10 }),
        busy = dial_case("Local/busy@caller", { timeout = 10 }),
        congestion = dial_case("Local/congestion@caller", { timeout = 10 }),
        noanswer = dial_case("Local/ring@caller", { timeout = 2 }),
        bogus = dial_case("Bogus/1", { timeout = 5 }),
        pjsip = dial_case("PJSIP/x", { timeout = 5 }),
        nosuch = dial_case("Local/nosuch@nowhere", { timeout = 5 }),
        early_hangup = dial_case("Local/hangup@caller", { timeout = 5 }),
      }, 40000)
    end, 60000)
    for key, r in pairs(res) do assert.is_true(r.ok, cr.describe(key, r)) end
    for _, key in ipairs { "answered", "number" } do
      local v = res[key].values[1]
      assert.is_table(v.peer, key)
      assert.equals("Up", v.peer_state, key)
      assert.equals("Up", v.self_state, key)
      assert.is_true(v.members, key .. " count " .. tostring(v.count) .. " gone " .. tostring(v.gone))
      assert.is_true(v.peer_gone, key)
      assert.is_true(v.peer_call.hungup, key)
    end
    local expect = { busy = "busy", congestion = "congestion", noanswer = "no_answer",
      bogus = "failed", pjsip = "failed", nosuch = "failed", early_hangup = "no_answer" }
    local endpoint = { busy = "Local/busy@caller", congestion = "Local/congestion@caller",
      noanswer = "Local/ring@caller", bogus = "Bogus/1", pjsip = "PJSIP/x", nosuch = "Local/nosuch@nowhere",
      early_hangup = "Local/hangup@caller" }
    for key, reason in pairs(expect) do
      local v = res[key].values[1]
      assert.is_nil(v.peer, key)
      assert.equals(reason, v.how, key .. ": " .. tostring(v.err))
      assert.equals(callmod.CallError, getmetatable(v.err), key)
      assert.equals(reason, v.err.reason, key)
      assert.equals(endpoint[key], v.err.endpoint, key)
      -- the message names the endpoint
      assert.truthy(tostring(v.err):find(endpoint[key], 1, true), key .. ": " .. tostring(v.err))
    end
    assert.equals("NOANSWER", res.early_hangup.values[1].err.dialstatus)
    assert.equals(500, res.bogus.values[1].err.status)
  end)
end)

-- An events socket that opens only after delay_ms (fault injection: a slow
-- WebSocket handshake), so that requests made at once race it for sure.
local function late_websocket(delay_ms)
  return function(o)
    local core = require "ari.core"
    local proxy, real, closed = {}, nil, false
    local t = core.timer(delay_ms, function()
      if not closed then real = require("ari.ws").connect(o) end
    end)
    function proxy.wait_open(_, ms)
      while real == nil and not closed do ari.sleep(10) end
      if real == nil then return nil, "closed" end
      return real:wait_open(ms)
    end
    function proxy.close() closed = true; t:stop(); if real then real:close() end end
    function proxy.state() return real and real:state() or "connecting" end
    function proxy.stats() return real and real:stats() or { reconnects = 0 } end
    return proxy
  end
end

ast.describe("real Asterisk: app:originate outcomes #core", function(inst)
  it("right at script start: answered, busy, no such endpoint, far end hangs up first", function()
    local got = {}
    ast.run(function()
      local name = ast.app_name("orig")
      -- no wait for the events socket here (and it opens late): originate must wait for it
      local app = ari.app { app = name, url = inst.url, user = inst.user, password = inst.password,
        websocket = late_websocket(500) }
      app.on_replaced = function() end
      local done = 0
      local function try(key, opts)
        ari.spawn(function()
          local ok, v = pcall(app.originate, app, opts)
          got[key] = { ok = ok, v = v }
          if ok then
            got[key].state = v.channel.state
            v:hangup()
            got[key].active_after = app:active()
          end
          done = done + 1
        end)
      end
      try("answered", { endpoint = "Local/s@caller", timeout = 5, formats = "ulaw" })
      try("busy", { endpoint = "Local/busy@caller", timeout = 5, formats = "ulaw" })
      try("bogus", { endpoint = "Bogus/1", timeout = 5 })
      try("early_hangup", { endpoint = "Local/hangup@caller", timeout = 5, formats = "ulaw" })
      ast.poll(function() return done == 4 end, "the originates", 20000)
      ast.poll(function() return app:active() == 0 end, "the calls to end", 5000)
      got.stats = app:stats()
      app.client:close()
    end, 30000)
    assert.is_true(got.answered.ok, tostring(got.answered.v))
    assert.equals("Up", got.answered.state)
    for key, reason in pairs { busy = "busy", bogus = "failed", early_hangup = "no_answer" } do
      assert.is_false(got[key].ok, key)
      assert.equals(callmod.CallError, getmetatable(got[key].v), key .. ": " .. tostring(got[key].v))
      assert.equals(reason, got[key].v.reason, key .. ": " .. tostring(got[key].v))
      assert.equals("originate", got[key].v.operation)
    end
    assert.truthy(tostring(got.bogus.v):find("Bogus/1", 1, true))
    assert.equals(0, got.stats.active)
    assert.equals(0, got.stats.routes)
    assert.equals(4, got.stats.originated)
    assert.equals(3, got.stats.failed)
  end)
end)
