-- Real Asterisk: playback, prompts and channel controls of the Call layer.
local ast = require "spec.support.asterisk"
local cr = require "spec.support.callreal"
local ari = require "ari"
local callmod = require "ari.call"

local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  return not ok and err or nil
end

ast.describe("real Asterisk: play #core", function(inst)
  it("plays, plays a list, says digits and numbers, times out; bad media fails promptly naming it", function()
    local res = cr.with_app(inst, "play", function(app)
      return cr.calls(app, {
        play = { fn = function(call) call:answer(); return call:play("sound:beep") end },
        many = { fn = function(call)
          call:answer()
          local st = call:play { "sound:beep", "digits:1", "sound:beep" }
          return st, #call.queue -- the playback's own events do not pile up in the mailbox
        end },
        say = { fn = function(call)
          call:answer()
          return call:say_digits("123"), call:say_number(42), call:play("characters:ab"), call:play("tone:ring;tonezone=us", { timeout = 300 })
        end },
        timeout = { fn = function(call)
          call:answer()
          local t = ari.now()
          local st = call:play("sound:demo-congrats", { timeout = 500 })
          return st, ari.now() - t
        end },
        -- an unknown scheme: Asterisk would answer 201 and never end the playback
        scheme = { fn = function(call)
          call:answer()
          return raises(call.play, call, "sond:beep"), raises(call.play, call, { "sound:beep", "bogus" }),
            raises(call.say_number, call, "abc"), raises(call.play, call, {})
        end },
        nofile = { fn = function(call) call:answer(); return call:play("sound:nosuchfile") end },
        -- a stored recording that does not exist: Asterisk sends no PlaybackFinished
        norec = { fn = function(call) call:answer(); return call:play("recording:no-such-recording-xyz") end },
        norec_last = { fn = function(call)
          call:answer()
          return call:play { "sound:beep", "recording:no-such-recording-xyz" }
        end },
      }, 30000)
    end, 40000)
    for key, r in pairs(res) do assert.is_true(r.ok, cr.describe(key, r)) end
    assert.equals("done", res.play.values[1])
    assert.equals("done", res.many.values[1])
    assert.equals(0, res.many.values[2])
    assert.same({ "done", "done", "done", "timeout" }, res.say.values)
    assert.equals("timeout", res.timeout.values[1])
    for i, media in ipairs { "sond:beep", "bogus", "number:abc", false } do
      local e = res.scheme.values[i]
      assert.equals(callmod.CallError, getmetatable(e), tostring(e))
      assert.equals("invalid", e.reason)
      if media then assert.truthy(tostring(e):find(media, 1, true), tostring(e)) end
    end
    for _, key in ipairs { "nofile", "norec", "norec_last" } do
      local st, err = res[key].values[1], res[key].values[2]
      assert.equals("failed", st, key)
      assert.equals(callmod.CallError, getmetatable(err), key)
      assert.equals("failed", err.reason)
    end
    assert.truthy(tostring(res.nofile.values[2]):find("sound:nosuchfile", 1, true))
    assert.truthy(tostring(res.norec.values[2]):find("recording:no-such-recording-xyz", 1, true))
    assert.truthy(tostring(res.norec_last.values[2]):find("recording:no-such-recording-xyz", 1, true))
  end)
end)

ast.describe("real Asterisk: channel controls and variables", function(inst)
  it("ring and moh reach the other half of a Local pair (talk detection); mute, hold, silence; get_var/set_var", function()
    -- Local/<app>@stasis-app: ;1 originated by the app, ;2 enters the app
    -- through the dialplan; TALK_DETECT on ;2 tells when ;1 sends audio
    local got = { errors = {} }
    cr.with_app(inst, "ctl", function(app, name)
      local two
      app:on_call(function(call)
        call:set_var("TALK_DETECT(set)", "")
        call:answer()
        two = call
        call:wait_hangup(30000)
      end)
      local one = app:originate { endpoint = "Local/" .. name .. "@stasis-app", formats = "ulaw", timeout = 5 }
      ast.poll(function() return two ~= nil end, "the other half")
      local function talking(typ, what)
        local ev = two:wait(typ, { timeout = 15000 })
        got[what] = ev ~= nil
      end
      one:ring(); talking("ChannelTalkingStarted", "ring")
      one:ring_stop(); talking("ChannelTalkingFinished", "ring_stop")
      one:moh(); talking("ChannelTalkingStarted", "moh")
      -- silence frames keep the talk detector fed (no frames at all: no verdict)
      one:stop_moh(); one:silence(); talking("ChannelTalkingFinished", "stop_moh")
      one:stop_silence()
      one:moh { class = "default" }
      one:mute("out"); one:unmute("out"); one:mute(); one:unmute()
      one:stop_moh()
      for _, f in ipairs { "hold", "unhold", "progress" } do
        local ok, err = pcall(one[f], one)
        if not ok then got.errors[#got.errors + 1] = f .. ": " .. tostring(err) end
      end
      one:set_var("ARI_LUA_T", "a b=c")
      got.var = one:get_var("ARI_LUA_T")
      got.unset = one:get_var("ARI_LUA_NOT_SET")
      got.fn = one:get_var("CHANNEL(name)")
      -- set then get, again and again: always the value just set (Asterisk 18
      -- applies a set after its reply; set_var waits for ChannelVarset)
      got.mismatch = 0
      for i = 1, 30 do
        one:set_var("ARI_LUA_N", i)
        if one:get_var("ARI_LUA_N") ~= tostring(i) then got.mismatch = got.mismatch + 1 end
      end
      one:hangup()
      ast.poll(function() return app:active() == 0 end, "the pair to end")
    end, 60000)
    for _, k in ipairs { "ring", "ring_stop", "moh", "stop_moh" } do
      assert.is_true(got[k], k)
    end
    assert.same({}, got.errors)
    assert.equals("a b=c", got.var)
    assert.is_nil(got.unset)
    assert.equals(0, got.mismatch)
    assert.truthy(got.fn:find("^Local/"))
  end)
end)
