-- Real Asterisk: bridges (#core), leaving the app (continue_in_dialplan,
-- move, redirect).
local ast = require "spec.support.asterisk"
local cr = require "spec.support.callreal"
local ari = require "ari"
local callmod = require "ari.call"

ast.describe("real Asterisk: bridges #core", function(inst)
  it("bridge_with, join/leave, play, moh, destroy; a holding bridge with music", function()
    local got = {}
    cr.with_app(inst, "br", function(app)
      local a = app:originate { endpoint = "Local/s@caller", formats = "ulaw", timeout = 5 }
      local b = app:originate { endpoint = "Local/s@caller", formats = "ulaw", timeout = 5 }
      local c = app:originate { endpoint = "Local/s@caller", formats = "ulaw", timeout = 5 }
      local br = a:bridge_with(b)
      ast.poll(function() return br:count() == 2 end, "both calls in the bridge")
      got.play = br:play("sound:beep")
      got.play_many = br:play { "sound:beep", "digits:12" }
      got.play_bad = select(2, pcall(br.play, br, "sond:beep"))
      got.play_nofile = { br:play("sound:nosuchfile") }
      br:moh("default")
      br:stop_moh()
      br:join(c)
      ast.poll(function() return br:count() == 3 end, "the third call in the bridge")
      br:leave(c)
      got.left = br:wait("ChannelLeftBridge", { timeout = 5000, filter = function(ev) return ev.channel.id == c.id end }) ~= nil
      got.count = br:count()
      -- a channel can be played to while in a bridge
      got.call_play = a:play("sound:beep")
      -- a holding bridge with music for the waiting channel
      local hold = app:bridge { type = "holding", name = "queue" }
      hold:join(c, { role = "participant" })
      ast.poll(function() return hold:count() == 1 end, "c in the holding bridge")
      hold:moh("default")
      hold:stop_moh()
      hold:destroy()
      got.hold_gone = hold.gone
      br:destroy()
      got.bridges = app:stats().bridges
      for _, x in ipairs { a, b, c } do x:hangup() end
      ast.poll(function() return app:active() == 0 end, "the calls to end")
      got.stats = app:stats()
    end, 40000)
    assert.equals("done", got.play)
    assert.equals("done", got.play_many)
    assert.equals(callmod.CallError, getmetatable(got.play_bad))
    assert.equals("invalid", got.play_bad.reason)
    assert.equals("failed", got.play_nofile[1])
    assert.truthy(tostring(got.play_nofile[2]):find("sound:nosuchfile", 1, true))
    assert.is_true(got.left)
    assert.equals(2, got.count)
    assert.equals("done", got.call_play)
    assert.is_true(got.hold_gone)
    assert.equals(0, got.bridges)
    assert.equals(0, got.stats.routes)
  end)

  it("dial bridges the caller with the far end: audio and DTMF cross it", function()
    local res = cr.with_app(inst, "brd", function(app)
      return cr.calls(app, {
        dtmf = { exten = "s", fn = function(call)
          -- the far end sends 123# after 2 s: it arrives as the peer's DTMF
          local peer, bridge = call:dial("Local/dtmf@caller", { timeout = 10 })
          local d = peer:get_digits { max = 4, terminators = "#", timeout = 10000 }
          return d, bridge:count()
        end },
      }, 20000)
    end, 30000)
    assert.is_true(res.dtmf.ok, cr.describe("dtmf", res.dtmf))
    assert.same({ "123", 2 }, res.dtmf.values)
  end)
end)

ast.describe("real Asterisk: leaving the app", function(inst)
  it("continue_in_dialplan, move to another app, redirect; later waits raise at once", function()
    local got = {}
    local other_calls = {}
    local res = cr.with_app(inst, "leave", function(app)
      local other = ari.app { app = ast.app_name("other"), url = inst.url, user = inst.user, password = inst.password }
      other.on_replaced = function() end
      other:on_call(function(call, args)
        other_calls[#other_calls + 1] = args
        call:answer()
        call:hangup()
      end)
      other:wait_registered()
      local r = cr.calls(app, {
        continue = { exten = "s", fn = function(call)
          call:continue_in_dialplan { context = "caller", extension = "short", priority = 1 }
          got.left = call.left
          local ok, err = pcall(call.play, call, "sound:beep")
          return ok, err
        end },
        move = { exten = "s", fn = function(call)
          call:move(other.name, "x,y")
          return call.left
        end },
        redirect = { exten = "s", fn = function(call)
          call:answer()
          local ok, err = pcall(call.redirect, call, "Local/s@caller")
          return ok, err
        end },
      }, 20000)
      ast.poll(function() return #other_calls == 1 end, "the moved call in the other app")
      other.client:close()
      return r
    end, 30000)
    for key, r in pairs(res) do assert.is_true(r.ok, cr.describe(key, r)) end
    assert.is_true(got.left)
    -- after leaving, the call's waits raise (the channel is no longer ours)
    assert.is_false(res.continue.values[1])
    assert.is_true(callmod.is_hangup(res.continue.values[2]))
    assert.equals("normal", res.continue.outcome)
    assert.is_true(res.move.values[1])
    assert.same({ "x", "y" }, other_calls[1])
    -- redirect: the channel leaves the app for the endpoint
    assert.is_true(res.redirect.values[1], tostring(res.redirect.values[2]))
    assert.is_true(res.redirect.call.left)
    assert.equals("normal", res.redirect.outcome)
  end)
end)
