-- ari.app routing, without a simulator: a client whose transport answers
-- in-process and can deliver events before the REST reply that caused them.
local ari = require "ari"
local models = require "ari.models"
local json_encode = require("ari.core").json_encode
local util = require "spec.support.util"

local function chan(id, state) return { id = id, name = "PJSIP/" .. id, state = state or "Up",
  caller = { name = "", number = "100" }, connected = { name = "", number = "" }, accountcode = "",
  dialplan = { context = "default", exten = "100", priority = 1, app_name = "Stasis", app_data = "t" },
  creationtime = "2024-01-01T00:00:00.000+0000", language = "en" } end

local function ev(t) return models.decode(json_encode(t)) end

-- A fake Asterisk: on_request(req) may dispatch events before it returns.
local function fake_app(on_request)
  local client
  client = ari.connect { url = "http://127.0.0.1:1", app = "t", events = false,
    transport = function(req)
      local status, body = on_request(req, client)
      return status or 204, body, {}
    end }
  return ari.app { app = "t", client = client }, client
end

describe("app routing", function()
  it("PlaybackStarted and PlaybackFinished before the reply to /play are not lost", function()
    local result
    ari.run(function()
      local app, client = fake_app(function(req, c)
        local pid = req.path:match("/play/([^/?]+)")
        if pid then
          local pb = { id = pid, media_uri = "sound:x", target_uri = "channel:c1", language = "en", state = "playing" }
          c:dispatch(ev { type = "PlaybackStarted", application = "t", playback = pb })
          pb.state = "done"
          c:dispatch(ev { type = "PlaybackFinished", application = "t", playback = pb })
          return 201, json_encode(pb)
        end
      end)
      app:on_call(function(call)
        result = call:play("sound:x", { timeout = 1000 })
      end)
      client:dispatch(ev { type = "StasisStart", application = "t", args = {}, channel = chan("c1") })
      util.poll(function() return result ~= nil and app:active() == 0 end, "the call's play to return", 5000)
    end)
    assert.equals("done", result)
  end)

  it("events of one call are handled in arrival order, DTMF typed ahead is kept", function()
    local seen = {}
    ari.run(function()
      local app, client = fake_app(function() end)
      app:on_call(function(call)
        call:sleep(10) -- digits and events arrive meanwhile
        seen.digits = call:get_digits { max = 3, timeout = 50 }
        seen.a = call:wait("ChannelUserevent", { timeout = 10 }).eventname
        seen.b = call:wait("ChannelUserevent", { timeout = 10 }).eventname
        seen.c = call:wait("ChannelUserevent", { timeout = 10 })
        seen.done = true
      end)
      client:dispatch(ev { type = "StasisStart", application = "t", args = {}, channel = chan("c2") })
      for _, d in ipairs { "4", "5", "6" } do
        client:dispatch(ev { type = "ChannelDtmfReceived", application = "t", digit = d, duration_ms = 100, channel = chan("c2") })
      end
      client:dispatch(ev { type = "ChannelUserevent", application = "t", eventname = "first", userevent = {}, channel = chan("c2") })
      client:dispatch(ev { type = "ChannelUserevent", application = "t", eventname = "second", userevent = {}, channel = chan("c2") })
      util.poll(function() return seen.done end, "the call to finish", 5000)
    end)
    assert.equals("456", seen.digits)
    assert.equals("first", seen.a)
    assert.equals("second", seen.b)
    assert.is_nil(seen.c)
  end)

  it("a replace_channel StasisStart continues the same call; other channels' events are ignored", function()
    local calls, ids = 0, {}
    ari.run(function()
      local app, client = fake_app(function() end)
      app:on_call(function(call)
        calls = calls + 1
        ids[#ids + 1] = call.id
        call:wait("ChannelUserevent")
        ids[#ids + 1] = call.id
      end)
      client:dispatch(ev { type = "StasisStart", application = "t", args = {}, channel = chan("old") })
      client:dispatch(ev { type = "ChannelStateChange", application = "t", channel = chan("unrelated") })
      client:dispatch(ev { type = "StasisStart", application = "t", args = {}, channel = chan("new"), replace_channel = chan("old") })
      client:dispatch(ev { type = "ChannelUserevent", application = "t", eventname = "x", userevent = {}, channel = chan("new") })
      util.poll(function() return app:active() == 0 end, "the call to finish", 5000)
      assert.equals(0, app:stats().routes)
    end)
    assert.equals(1, calls)
    assert.same({ "old", "new" }, ids)
  end)

  it("routing events for nobody is cheap (figures printed, not asserted)", function()
    ari.run(function()
      local app, client = fake_app(function() end)
      app:on_call(function(call) call:wait_hangup() end)
      for i = 1, 100 do client:dispatch(ev { type = "StasisStart", application = "t", args = {}, channel = chan("live" .. i) }) end
      local other = ev { type = "ChannelVarset", application = "t", variable = "X", value = "1", channel = chan("other") }
      local mine = ev { type = "ChannelVarset", application = "t", variable = "X", value = "1", channel = chan("live7") }
      local N = 100000
      local t0 = os.clock()
      for _ = 1, N do app:_route(other) end
      local t1 = os.clock()
      for _ = 1, N do app:_route(mine) end
      local t2 = os.clock()
      io.stderr:write(string.format("\n[route] unrelated event %.0f ns, event of a live call (mailbox) %.0f ns\n",
        (t1 - t0) / N * 1e9, (t2 - t1) / N * 1e9))
      assert.equals(64, #app.calls.live7.queue) -- the mailbox is bounded
      for _, call in pairs(app.calls) do call:_mark_hungup("test") end
      util.poll(function() return app:active() == 0 end, "the hung-up calls to end", 5000)
    end)
  end)
end)

describe("snoop", function()
  it("a snoop channel does not start on_call and is hung up with its call", function()
    local callsim = require "spec.support.callsim"
    local got = { n = 0 }
    local r = callsim.run({ calls = { { from = "8001", script = { { "wait_answer" }, { "sleep", 4000 }, { "hangup" } } } } },
      function(app)
        app:on_call(function(call)
          got.n = got.n + 1
          call:answer()
          local s = call:snoop { spy = "in" }
          got.snoop_up = s.channel ~= nil and s.id ~= call.id
          call:wait_hangup()
        end)
      end)
    assert.equals(1, got.n)
    assert.is_true(got.snoop_up)
    assert.equals(0, r.stats.active)
    assert.equals(0, r.stats.refused)
  end)
end)
