-- Call layer: DTMF type-ahead, get_digits and play_and_get_digits against
-- the simulated Asterisk.  App timeouts are real ms; sim durations are
-- divided by the speed (20: a 1 s prompt lasts 50 ms).
local callsim = require "spec.support.callsim"

local function one_call(script, fn, opts)
  local got = {}
  local sounds = { one = 5000, two = 5000, three = 5000, menu = 2000, invalid = 1000, pin = 1000, ["enter-number"] = 1000 }
  local r = callsim.run({ sounds = sounds, calls = { { from = "1001", script = script } } }, function(app)
    app:on_call(function(call)
      call:answer()
      fn(call, got)
    end)
  end, opts)
  r.got = got
  r.tr = callsim.entries(r.sim, "1001")
  return r
end

describe("call digits", function()
  it("keeps digits pressed before the prompt: the prompt is skipped, get_digits reads them", function()
    local r = one_call({ { "wait_answer" }, { "dtmf", "12", gap = 100 }, { "wait_hangup", timeout = 20000 } },
      function(call, got)
        call:sleep(200) -- the digits arrive meanwhile
        got.res = call:play_and_get_digits { media = "sound:enter-number", max = 2, timeout = 500 }
      end)
    assert.equals("12", r.got.res)
    assert.equals(0, callsim.count(r.tr, "POST /ari/channels/[^/]+/play"))
    assert.equals(0, r.stats.active)
  end)

  it("digits during a prompt stop it and count as input", function()
    local r = one_call({ { "wait_answer" }, { "wait_playback_start" }, { "sleep", 200 }, { "dtmf", "34", gap = 100 },
      { "wait_hangup", timeout = 20000 } },
      function(call, got)
        got.res = call:play_and_get_digits { media = { "sound:one", "sound:two", "sound:three" }, max = 2,
          timeout = 1000, interdigit_timeout = 1000 }
      end)
    assert.equals("34", r.got.res)
    assert.equals(1, callsim.count(r.tr, "DELETE /ari/playbacks/"))
  end)

  it("digits after the prompt, ended by the terminator '#'", function()
    local r = one_call({ { "wait_answer" }, { "wait_playback" }, { "sleep", 1000 }, { "dtmf", "56#", gap = 100 },
      { "wait_hangup", timeout = 20000 } },
      function(call, got)
        call:play("sound:beep")
        got.d, got.how = call:get_digits { max = 4, timeout = 1000, interdigit_timeout = 500 }
      end)
    assert.equals("56", r.got.d)
    assert.equals("terminator", r.got.how)
  end)

  it("'*' is a digit unless it is a terminator; max ends input", function()
    local r = one_call({ { "wait_answer" }, { "dtmf", "*1*2", gap = 50 }, { "wait_hangup", timeout = 20000 } },
      function(call, got)
        call:sleep(300)
        got.a, got.ha = call:get_digits { max = 2, timeout = 300 }
        got.b, got.hb = call:get_digits { max = 5, timeout = 300, terminators = "*" }
      end)
    assert.equals("*1", r.got.a)
    assert.equals("max", r.got.ha)
    assert.equals("", r.got.b)  -- '*' ends input at once and is not returned
    assert.equals("terminator", r.got.hb)
  end)

  it("first-digit timeout differs from the inter-digit timeout", function()
    -- caller waits 400 ms (real) before the first digit, then 150 ms between digits
    local r = one_call({ { "wait_answer" }, { "sleep", 8000 }, { "dtmf", "7" }, { "sleep", 3000 }, { "dtmf", "8" },
      { "sleep", 12000 }, { "dtmf", "9" }, { "wait_hangup", timeout = 20000 } },
      function(call, got)
        got.d, got.how = call:get_digits { max = 5, timeout = 2000, interdigit_timeout = 400 }
        got.e, got.how2 = call:get_digits { max = 5, timeout = 100, interdigit_timeout = 100 }
      end)
    -- first digit after ~400 ms (< 2000), 8 after ~150 ms (< 400), 9 after ~600 ms (> 400): ends
    assert.equals("78", r.got.d)
    assert.equals("timeout", r.got.how)
    assert.equals("", r.got.e) -- 9 has not arrived within 100 ms
  end)

  it("flush_digits drops type-ahead", function()
    local r = one_call({ { "wait_answer" }, { "dtmf", "99" }, { "sleep", 4000 }, { "dtmf", "4" },
      { "wait_hangup", timeout = 20000 } },
      function(call, got)
        call:sleep(100)
        got.flushed = call:flush_digits()
        got.d = call:get_digits { max = 1, timeout = 2000 }
      end)
    assert.equals("99", r.got.flushed)
    assert.equals("4", r.got.d)
  end)

  it("play_and_get_digits: invalid input, then a valid try; 'invalid' played between tries", function()
    local r = one_call({ { "wait_answer" }, { "wait_playback_start" }, { "dtmf", "9#" },
      { "wait_playback" }, -- the invalid prompt ... 
      { "wait_playback_start" }, { "dtmf", "2#" }, { "wait_hangup", timeout = 20000 } },
      function(call, got)
        got.res = call:play_and_get_digits { media = "sound:menu", invalid = "sound:invalid", regexp = "[12]",
          max = 3, tries = 3, timeout = 1000 }
      end)
    assert.equals("2", r.got.res)
    assert.equals(3, callsim.count(r.tr, "PlaybackStarted")) -- menu, invalid, menu
  end)

  it("play_and_get_digits: tries run out on timeouts and short input -> nil", function()
    local r = one_call({ { "wait_answer" }, { "wait_playback_start" }, { "dtmf", "1#" }, { "wait_hangup", timeout = 20000 } },
      function(call, got)
        got.res = call:play_and_get_digits { media = "sound:pin", invalid = "sound:invalid", min = 4, max = 4,
          tries = 3, timeout = 200 }
        got.after = true
      end)
    assert.is_nil(r.got.res)
    assert.is_true(r.got.after)
    -- three prompts, 'invalid' after the first two tries only
    assert.equals(5, callsim.count(r.tr, "PlaybackStarted"))
    assert.equals(5, callsim.count(r.tr, "PlaybackFinished [^ ]+/done"))
  end)
end)
