-- Call layer: hang-up in the middle of every waiting helper (the wait
-- raises, hooks run once, nothing stays routed), script errors, auto hang-up.
local callsim = require "spec.support.callsim"
local callmod = require "ari.call"

-- The caller hangs up `after` sim ms after the app answered, while the
-- script is in `helper`.
local function hangup_during(helper, fn, after)
  local seen = { hooks = 0 }
  local r = callsim.run({ sounds = { long = 60000 }, endpoints = { ["PJSIP/nobody"] = { no_answer = true } },
    calls = { { from = "2001",
      script = { { "wait_answer" }, { "sleep", after or 2000 }, { "hangup", cause = 16 } } } } },
    function(app)
      app:on_call(function(call)
        call:on_hangup(function(c) seen.hooks = seen.hooks + 1; seen.hook_call = c end)
        call:answer()
        local ok, err = pcall(fn, call)
        seen.ok, seen.err = ok, err
        error(err, 0) -- re-raise: the runner must treat a hang-up as a normal end
      end)
    end)
  seen.stats = r.stats
  return seen, r
end

describe("hang-up in the middle of a helper", function()
  local helpers = {
    play = function(call) call:play("sound:long") end,
    play_and_get_digits = function(call) call:play_and_get_digits { media = "sound:long", tries = 2 } end,
    get_digits = function(call) call:get_digits { timeout = 60000 } end,
    sleep = function(call) call:sleep(60000) end,
    wait = function(call) call:wait("ChannelTalkingStarted") end,
    record = function(call) call:record { name = "hup-rec", max_duration = 60 } end,
    dial = function(call) call:dial("PJSIP/nobody", { timeout = 60 }) end,
    wait_hangup = function(call) assert(call:wait_hangup()); error(call:_hangup_error(), 0) end,
  }
  for name, fn in pairs(helpers) do
    it(name .. ": raises the hang-up error, hooks run once, nothing leaks", function()
      local seen = hangup_during(name, fn)
      assert.is_false(seen.ok)
      assert.is_true(callmod.is_hangup(seen.err), tostring(seen.err))
      assert.matches("hung up", tostring(seen.err))
      assert.equals(1, seen.hooks)
      assert.equals(0, seen.stats.active)
      assert.equals(0, seen.stats.routes)
      assert.equals(0, seen.stats.bridges)
      assert.equals(1, seen.stats.hangup)
      assert.equals(0, seen.stats.error)
      assert.same({}, seen.hook_call.waiters)
    end)
  end

  it("dial: the unanswered leg is hung up when the caller hangs up", function()
    local seen, r = hangup_during("dial", helpers.dial)
    local tr = callsim.entries(r.sim)
    assert.is_true(callsim.count(tr, "DELETE /ari/channels/") >= 1)
    assert.equals(1, seen.stats.failed)
  end)
end)

describe("script end and errors", function()
  it("an erroring script is logged, its channel hung up, the other calls go on", function()
    local results = {}
    local log = require "ari.log"
    local tmp = io.tmpfile()
    log.set_output(tmp)
    local r = callsim.run({ calls = {
      { from = "3001", script = { { "wait_answer" }, { "wait_hangup", timeout = 20000 } } },
      { from = "3002", at = 100, script = { { "wait_answer" }, { "wait_playback" }, { "dtmf", "5" },
        { "wait_hangup", timeout = 20000 } } },
    } }, function(app)
      app:on_call(function(call)
        call:answer()
        if call.channel.caller.number == "3001" then
          call:sleep(50)
          local t = nil
          return t.boom -- a bug
        end
        call:play("sound:beep")
        results.d = call:get_digits { timeout = 2000 }
        results.up = not call.hungup
      end)
    end)
    log.set_output(nil)
    tmp:seek("set")
    local logged = tmp:read("a")
    tmp:close()
    assert.equals("5", results.d)
    assert.is_true(results.up)
    -- logged with the call's prefix and a traceback
    assert.matches("ERROR %[[^%]]*PJSIP/3001[^%]]*%] script error: [^\n]*attempt to index a nil value", logged)
    assert.matches("stack traceback", logged, 1, true)
    assert.equals(1, r.stats.error)
    assert.equals(1, r.stats.normal)
    assert.equals(0, r.stats.active)
    assert.equals(1, callsim.count(callsim.entries(r.sim, "3001"), "DELETE /ari/channels/"))
  end)

  it("a script that returns with the channel up is hung up; auto_hangup = false leaves it", function()
    local r = callsim.run({ calls = { { from = "3003", script = { { "wait_answer" }, { "wait_hangup", timeout = 2000 } } } } },
      function(app) app:on_call(function(call) call:answer() end) end)
    assert.equals(1, callsim.count(callsim.entries(r.sim, "3003"), "DELETE /ari/channels/"))
    r = callsim.run({ calls = { { from = "3004", script = { { "wait_answer" }, { "wait_hangup", timeout = 2000 } } } } },
      function(app) app:on_call(function(call) call:answer() end) end, { auto_hangup = false })
    assert.equals(0, callsim.count(callsim.entries(r.sim, "3004"), "DELETE /ari/channels/"))
    assert.equals(0, r.stats.active)
  end)

  it("continue_in_dialplan leaves the app without a hang-up from the app", function()
    local r = callsim.run({ calls = { { from = "3005", script = { { "wait_answer" }, { "wait_hangup", timeout = 2000 } } } } },
      function(app) app:on_call(function(call) call:answer(); call:continue_in_dialplan() end) end)
    local tr = callsim.entries(r.sim, "3005")
    assert.equals(1, callsim.count(tr, "POST /ari/channels/[^/]+/continue"))
    assert.equals(0, callsim.count(tr, "DELETE /ari/channels/"))
  end)

  it("call.channel is the typed Channel with working methods; call.log prefixes the id", function()
    local got = {}
    callsim.run({ calls = { { from = "3006", script = { { "wait_answer" }, { "wait_hangup", timeout = 2000 } } } } },
      function(app)
        app:on_call(function(call)
          got.model = require("ari.models").model_of(call.channel)
          call.channel:answer()
          call:set_var("FOO", "bar")
          got.foo = call:get_var("FOO")
          got.none = call:get_var("NOT_SET")
          got.prefix = call.log.prefix
          got.id = call.id
        end)
      end)
    assert.equals("Channel", got.model)
    assert.equals("bar", got.foo)
    assert.is_nil(got.none)
    assert.matches(got.id, got.prefix, 1, true)
    assert.matches("PJSIP/3006", got.prefix, 1, true)
  end)
end)
