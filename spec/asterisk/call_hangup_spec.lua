-- Real Asterisk: a far end hanging up during any wait raises the Hangup
-- error in that call only, and the call ends cleanly: its on_hangup hooks
-- run once, app:active() returns to 0 (#core).  Local/short@caller hangs
-- up 1 s after answering; where a wait cannot outlast that on its own the
-- app's REST hangs the channel up from another coroutine.
local ast = require "spec.support.asterisk"
local cr = require "spec.support.callreal"
local ari = require "ari"
local callmod = require "ari.call"

local LONG = "sound:demo-congrats" -- about 30 s

ast.describe("real Asterisk: hang-up at every wait #core", function(inst)
  it("answer, play, get_digits, play_and_get_digits, record, dial, sleep, wait, bridge wait", function()
    local hooks = {}
    local stats, survivor, legs_left
    local leg_number = tostring(math.random(10000000, 99999999))
    local function case(exten, fn)
      return { exten = exten, fn = function(call, app)
        call:on_hangup(function(c) hooks[c] = (hooks[c] or 0) + 1 end)
        return fn(call, app)
      end }
    end
    local res = cr.with_app(inst, "hup", function(app)
      local cases = {
        answer = case("s", function(call, app)
          -- the channel goes away (by REST) just as the script answers
          app.client.channels.hangup { channelId = call.id }
          call:answer()
          call:sleep(10000) -- (if the hang-up event came after the answer)
        end),
        play = case("short", function(call) call:play(LONG) end),
        play_list = case("short", function(call) call:play { LONG, LONG } end),
        get_digits = case("short", function(call) call:get_digits { max = 4, timeout = 10000 } end),
        pagd = case("short", function(call)
          call:play_and_get_digits { media = LONG, max = 4, timeout = 10000 }
        end),
        record = case("short", function(call) call:record { max_duration = 10, terminate_on = "none" } end),
        dial = case("short", function(call)
          call:dial("Local/ring@caller", { timeout = 10, caller_id = "leg <" .. leg_number .. ">" })
        end),
        sleep = case("short", function(call) call:sleep(10000) end),
        wait = case("short", function(call) call:wait("ChannelUserevent", { timeout = 10000 }) end),
        -- the script waits on something that is not the call itself
        other = case("short", function(call, app)
          local b = app:bridge { type = "holding" }
          call:on_hangup(function() b:destroy() end)
          ari.sleep(10000)
        end),
        -- a call whose far end stays: it must not be disturbed by the others
        survivor = case("s", function(call)
          call:answer()
          local t = ari.now()
          while ari.now() - t < 1500 do call:play("sound:beep") end
          survivor = call:play("sound:beep")
          return "alive"
        end),
      }
      local r = cr.calls(app, cases, 30000)
      stats = app:stats()
      -- the leg dial was ringing when its caller hung up is gone too
      ast.poll(function()
        legs_left = 0
        for _, ch in ipairs(app.client.channels.list()) do
          if ch.caller and ch.caller.number == leg_number then legs_left = legs_left + 1 end
        end
        return legs_left == 0
      end, "the dialled leg to be dropped", 5000)
      return r
    end, 45000)
    for key, r in pairs(res) do
      if key == "survivor" then
        assert.is_true(r.ok, cr.describe(key, r))
        assert.equals("normal", r.outcome)
      else
        assert.is_false(r.ok, cr.describe(key, r))
        assert.is_true(callmod.is_hangup(r.err), cr.describe(key, r))
        assert.equals(r.call.id, r.err.channel_id, key)
        assert.equals("hangup", r.outcome, key)
      end
      assert.equals(1, hooks[r.call], key .. ": on_hangup hooks ran once")
      assert.is_true(r.call.hungup, key)
    end
    assert.equals("done", survivor)
    assert.equals(0, stats.active)
    assert.equals(0, stats.routes)
    assert.equals(0, stats.bridges)
    assert.equals(11, stats.ended)
    assert.equals(1, stats.normal)
    assert.equals(10, stats.hangup)
    assert.equals(0, stats.error)
    assert.equals(0, legs_left)
  end)

  it("wait_hangup returns true when the far end hangs up; a dialled peer hanging up ends the caller", function()
    local got = {}
    local res = cr.with_app(inst, "whup", function(app)
      return cr.calls(app, {
        far = { exten = "short", fn = function(call)
          call:answer()
          got.far = call:wait_hangup(10000)
          got.hungup = call.hungup
        end },
        stays = { exten = "s", fn = function(call)
          got.early = call:wait_hangup(100) -- the far end stays: false after 100 ms
        end },
        peer = { exten = "s", fn = function(call)
          local peer = call:dial("Local/short@caller", { timeout = 10 })
          got.peer = peer ~= nil
          -- the peer hangs up after 1 s: hangup_together ends this call
          call:wait_hangup(10000)
          got.peer_hungup = peer.hungup
        end },
      }, 20000)
    end, 30000)
    assert.is_true(res.far.ok, cr.describe("far", res.far))
    assert.is_false(got.early)
    assert.is_true(got.far)
    assert.is_true(got.hungup)
    assert.is_true(got.peer)
    assert.is_true(got.peer_hungup)
    assert.is_true(res.peer.ok, cr.describe("peer", res.peer))
    assert.is_true(res.peer.call.hungup)
  end)
end)
