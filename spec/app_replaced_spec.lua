-- ApplicationReplaced against the simulator (which, unlike Asterisk, also
-- closes the replaced socket): the replaced app must not reconnect and
-- take the name back; media Asterisk cannot play is refused before any
-- request.  (spec/asterisk/call_replaced_spec.lua and call_media_spec.lua
-- do the same against real Asterisk.)
local ari = require "ari"
local simmod = require "ari.sim"
local callsim = require "spec.support.callsim"
local callmod = require "ari.call"

describe("ApplicationReplaced (simulator)", function()
  it("the replaced app ends, closes its socket for good; the new one keeps the name", function()
    local got = {}
    ari.run(function()
      local sim = simmod.new { speed = 20, logger = function() end }
      sim:listen { host = "127.0.0.1", port = 0 }
      local function mk()
        local a = ari.app { app = "dup", url = sim.url, user = sim.user, password = sim.password }
        a:on_call(function(call) call:answer() end)
        return a
      end
      local a = mk()
      a.on_replaced = function() got.a_replaced = true end
      a:wait_registered()
      local b = mk()
      b.on_replaced = function() got.b_replaced = true end
      b:wait_registered()
      local deadline = ari.now() + 5000
      while not got.a_replaced and ari.now() < deadline do ari.sleep(5) end
      -- give a reconnecting socket (there must be none) time to show up
      local t = ari.now() + 600
      while ari.now() < t do ari.sleep(20) end
      got.a_sockets = #a.client._sockets
      got.a_accepting = a.accepting
      got.b_connects = b.client.stats.connects
      got.b_replaced_flag = got.b_replaced
      local ok, err = pcall(a.originate, a, { endpoint = "PJSIP/x" })
      got.orig_ok, got.orig_err = ok, err
      b.client:close()
      sim:close()
    end)
    assert.is_true(got.a_replaced)
    assert.equals(0, got.a_sockets)
    assert.is_false(got.a_accepting)
    assert.equals(1, got.b_connects)
    assert.is_nil(got.b_replaced_flag)
    assert.is_false(got.orig_ok)
    assert.equals(callmod.CallError, getmetatable(got.orig_err))
    assert.truthy(tostring(got.orig_err):find("replaced", 1, true))
  end)
end)

describe("media checks (simulator)", function()
  it("an unknown scheme or number: without a number raises before any request", function()
    local seen = {}
    local r = callsim.run({ calls = { { from = "2001", script = { { "wait_answer" }, { "wait_hangup", timeout = 20000 } } } } },
      function(app)
        app:on_call(function(call)
          call:answer()
          for _, m in ipairs { "sond:beep", "number:x", "beep" } do
            local ok, err = pcall(call.play, call, m)
            seen[#seen + 1] = { ok = ok, err = err, media = m }
          end
          seen.done = call:play("sound:beep")
        end)
      end)
    assert.equals(3, #seen)
    for _, s in ipairs(seen) do
      assert.is_false(s.ok, s.media)
      assert.equals("invalid", s.err.reason)
      assert.truthy(tostring(s.err):find(s.media, 1, true))
    end
    assert.equals("done", seen.done)
    assert.equals(1, callsim.count(r.sim.transcript, "^POST /ari/channels/[^/]+/play"))
  end)
end)
