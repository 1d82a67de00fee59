-- 1,000 concurrent calls through a menu against the simulated Asterisk;
-- every call's transcript must be right.  Prints the figures (no timing
-- assertions).
local callsim = require "spec.support.callsim"
local ari = require "ari"

describe("load", function()
  it("1000 concurrent calls through a menu, each transcript correct", function()
    local N = tonumber(os.getenv("CALL_LOAD_N")) or 1000
    local chosen = {}
    local t0 = ari.now()
    local r = callsim.run({ sounds = { menu = 3000 }, load = { { calls = N, concurrency = N,
        script = { { "wait_answer" }, { "wait_playback_start" }, { "dtmf", "3" }, { "wait_hangup", timeout = 60000 } } } } },
      function(app)
        app:on_call(function(call)
          call:answer()
          local d = call:play_and_get_digits { media = "sound:menu", max = 1, timeout = 5000, tries = 2 }
          chosen[call.id] = d
          call:say_digits(d)
          call:hangup()
        end)
      end, { speed = 5, timeout = 55000 })
    local secs = (ari.now() - t0) / 1000
    io.stderr:write(string.format("\n[load] %d calls in %.2f s real (%.0f calls/s), %d transcript entries\n",
      N, secs, N / secs, #r.sim.transcript))
    assert.is_true(r.done)
    assert.equals(N, r.stats.started)
    assert.equals(N, r.stats.normal)
    assert.equals(0, r.stats.active)
    assert.equals(0, r.stats.routes)
    -- per call: answer, menu (stopped by the 3, unless it ended first under load), digits:3 played, our hang-up
    local per = {}
    for _, e in ipairs(r.sim.transcript) do
      if e.call then
        local p = per[e.call]
        if not p then p = { answer = 0, stop = 0, started = 0, finished = 0, dtmf = 0, del = 0, destroyed = 0 }; per[e.call] = p end
        local s = e.summary
        if s:find("/answer %-> 204") then p.answer = p.answer + 1
        elseif s:find("^DELETE /ari/playbacks/") then p.stop = p.stop + 1 -- 404 if it ended meanwhile
        elseif s:find("^DELETE /ari/channels/.* %-> 204") then p.del = p.del + 1
        elseif e.type == "PlaybackStarted" then p.started = p.started + 1
        elseif e.type == "PlaybackFinished" then p.finished = p.finished + 1
        elseif e.type == "ChannelDtmfReceived" and s:find("digit=3") then p.dtmf = p.dtmf + 1
        elseif e.type == "ChannelDestroyed" then p.destroyed = p.destroyed + 1 end
      end
    end
    local n, bad = 0, 0
    for _, p in pairs(per) do
      n = n + 1
      if not (p.answer == 1 and p.stop <= 1 and p.started == 2 and p.finished == 2 and p.dtmf == 1
        and p.del == 1 and p.destroyed == 1) then
        bad = bad + 1
        if bad == 1 then
          local t = {}
          for k, v in pairs(p) do t[#t + 1] = k .. "=" .. v end
          table.sort(t)
          io.stderr:write("[load] first bad call: ", table.concat(t, " "), "\n")
        end
      end
    end
    assert.equals(N, n)
    assert.equals(0, bad)
    local nchosen = 0
    for _, d in pairs(chosen) do nchosen = nchosen + 1; assert.equals("3", d) end
    assert.equals(N, nchosen)
  end)
end)
