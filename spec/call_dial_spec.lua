-- Call layer: dial (answer, busy, no answer, congestion), an originate-based
-- dialer, a two-party bridge and a three-party conference.
local callsim = require "spec.support.callsim"
local ari = require "ari"

local ENDPOINTS = {
  ["PJSIP/bob"] = { answer_after = 2000, script = { { "wait_bridge" }, { "sleep", 3000 }, { "hangup" } } },
  ["PJSIP/busy"] = { busy = true },
  ["PJSIP/nobody"] = { no_answer = true },
  ["PJSIP/cong"] = { congestion = true },
  ["PJSIP/agent*"] = { answer_after = 1000, dtmf = "1", dtmf_after = 500 },
}

describe("call:dial", function()
  it("answers and bridges; the far end hanging up ends the caller too", function()
    local got = {}
    local r = callsim.run({ endpoints = ENDPOINTS, calls = { { from = "4001",
        script = { { "wait_answer" }, { "wait_hangup", timeout = 20000 } } } } }, function(app)
      app:on_call(function(call)
        call:answer()
        local peer, bridge = call:dial("PJSIP/bob", { timeout = 10, caller_id = "4001" })
        got.peer, got.bridge = peer, bridge
        got.peer_name = peer.channel.name
        got.hung = call:wait_hangup(5000)
      end)
    end)
    assert.is_truthy(got.peer)
    assert.matches("PJSIP/bob", got.peer_name, 1, true)
    assert.is_true(got.hung)
    local tr = callsim.entries(r.sim)
    assert.equals(2, callsim.count(tr, "POST /ari/bridges/[^/]+/addChannel"))
    assert.is_true(callsim.count(tr, "ChannelEnteredBridge") >= 2)
    assert.equals(0, r.stats.active)
    assert.equals(0, r.stats.routes)
    assert.equals(0, r.stats.bridges)
  end)

  for ep, reason in pairs { ["PJSIP/busy"] = "busy", ["PJSIP/nobody"] = "no_answer", ["PJSIP/cong"] = "congestion" } do
    it("returns nil, '" .. reason .. "' for " .. ep, function()
      local got = {}
      local r = callsim.run({ endpoints = ENDPOINTS, calls = { { from = "4002",
          script = { { "wait_answer" }, { "wait_hangup", timeout = 40000 } } } } }, function(app)
        app:on_call(function(call)
          call:answer()
          got.peer, got.reason, got.err = call:dial(ep, { timeout = 1 })
          got.up = not call.hungup
        end)
      end)
      assert.is_nil(got.peer)
      assert.equals(reason, got.reason)
      assert.matches(ep, tostring(got.err), 1, true)
      assert.is_true(got.up)
      assert.equals(0, r.stats.routes)
      assert.equals(1, r.stats.failed)
    end)
  end
end)

describe("app:originate", function()
  it("a dialer: originate, read a digit from the far end, hang up; a busy number raises", function()
    local got = {}
    local r = callsim.run({ endpoints = ENDPOINTS, calls = {} }, function(app)
      local call = app:originate { endpoint = "PJSIP/agent-7", caller_id = "Dialer <100>", timeout = 5 }
      got.state = call.channel.state
      call:play("sound:beep")
      got.digit = call:get_digits { timeout = 2000 }
      call:hangup()
      local ok, err = pcall(app.originate, app, { endpoint = "PJSIP/busy" })
      got.ok, got.err = ok, err
      ari.sleep(50)
      got.stats = app:stats()
    end)
    assert.equals("Up", got.state)
    assert.equals("1", got.digit)
    assert.is_false(got.ok)
    assert.equals("busy", got.err.reason)
    assert.equals(0, got.stats.active)
    assert.equals(0, got.stats.routes)
    -- the originated channel never ran on_call (no handler registered: it would be refused)
    assert.equals(0, r.stats.refused)
  end)
end)

describe("bridges", function()
  it("a three-party conference: join, play to the bridge, count, leave", function()
    local conf
    local got = { counts = {} }
    local r = callsim.run({ calls = {
      { from = "5001", at = 0, script = { { "wait_answer" }, { "wait_hangup", timeout = 30000 } } },
      { from = "5002", at = 200, script = { { "wait_answer" }, { "wait_hangup", timeout = 30000 } } },
      { from = "5003", at = 400, script = { { "wait_answer" }, { "wait_bridge" }, { "sleep", 4000 }, { "hangup" } } },
    } }, function(app)
      conf = ari.bridge { type = "mixing", name = "conf" }
      local n = 0
      app:on_call(function(call)
        call:answer()
        conf:join(call)
        n = n + 1
        if n == 3 then
          conf:wait("ChannelEnteredBridge", { filter = function(ev) return ev.channel.id == call.id end })
          got.counts[#got.counts + 1] = conf:count()
          got.play = conf:play("sound:beep")
        end
        call:wait_hangup()
        if conf:count() <= 1 or n == 3 then
          -- the last one out closes the conference
        end
      end)
      while n < 3 or conf:count() > 2 do ari.sleep(10) end
      -- one left: hang up the rest and destroy the bridge
      for _, call in pairs(app.calls) do call:hangup() end
      conf:destroy()
    end)
    assert.same({ 3 }, got.counts)
    assert.equals("done", got.play)
    local tr = callsim.entries(r.sim)
    assert.equals(3, callsim.count(tr, "POST /ari/bridges/[^/]+/addChannel"))
    assert.equals(0, r.stats.active)
    assert.equals(0, r.stats.bridges)
  end)
end)
