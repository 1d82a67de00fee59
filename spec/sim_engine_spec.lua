-- The simulated Asterisk, driven in pure Lua through sim:request and an
-- events session (no sockets).
local ari = require "ari"
local simmod = require "ari.sim"
local json = require "ari.sim.json"
local util = require "spec.support.util"

local new_sim = util.new_sim
local req = util.req

local function types_for(events, id)
  local out = {}
  for _, e in ipairs(events) do
    local ch = e.channel or e.peer
    if id == nil or (ch and ch.id == id) then out[#out + 1] = e.type end
  end
  return out
end

local wait_for = util.wait_for

describe("sim engine: originate, answer, play, hang up", function()
  it("originates to an endpoint that answers, enters Stasis, plays, hangs up in Asterisk's order", function()
    ari.run(function()
      local sim, events = new_sim()
      local s, ch = req(sim, "POST", "/ari/channels", "endpoint=PJSIP/alice&app=test-app&channelId=out-1&callerId=%22Demo%22+%3C1000%3E")
      assert.equals(200, s)
      assert.equals("out-1", ch.id)
      assert.equals("Down", ch.state)
      assert.same({ name = "Demo", number = "1000" }, ch.caller)
      wait_for(events, function(e) return e.type == "StasisStart" end)
      assert.same({ "Dial", "ChannelStateChange", "Dial", "ChannelStateChange", "Dial", "ChannelVarset", "StasisStart" },
        types_for(events, "out-1"))
      assert.equals("Up", events[#events].channel.state)
      s = req(sim, "POST", "/ari/channels/out-1/play/pb-1", "media=sound:hello-world")
      assert.equals(201, s)
      local fin = wait_for(events, function(e) return e.type == "PlaybackFinished" end)
      assert.equals("done", fin.playback.state)
      assert.equals("channel:out-1", fin.playback.target_uri)
      local n0 = #events
      assert.equals(204, (req(sim, "DELETE", "/ari/channels/out-1")))
      local tail = {}
      for i = n0 + 1, #events do tail[#tail + 1] = events[i].type end
      assert.same({ "ChannelHangupRequest", "StasisEnd", "ChannelVarset", "ChannelDestroyed" }, tail)
      assert.equals(32, events[n0 + 1].cause)
      assert.is_true(events[n0 + 1].soft)
      assert.equals(16, events[#events].cause)
      assert.equals("Normal Clearing", events[#events].cause_txt)
      assert.equals(404, (req(sim, "GET", "/ari/channels/out-1")))
      sim:close()
    end)
  end)

  it("matches the hang-up order of the real Asterisk run log", function()
    local f = io.open(require("spec.support.shared").dir .. "/ari-samples/run-log.txt")
    if not f then pending("the shared ARI samples (../shared) are not available"); return end
    local want = {}
    for line in f:lines() do
      local t = line:match("<< test%-app: (%a+) ch=demo%-X1%(")
      if t and line:match("%[%s*3[23]%.") then want[#want + 1] = t end
    end
    f:close()
    assert.is_true(#want >= 4, "run-log parse")
    ari.run(function()
      local sim, events = new_sim()
      req(sim, "POST", "/ari/channels", "endpoint=PJSIP/x&app=test-app&channelId=demo-X1")
      wait_for(events, function(e) return e.type == "StasisStart" end)
      local n0 = #events
      req(sim, "DELETE", "/ari/channels/demo-X1")
      local got = {}
      for i = n0 + 1, #events do got[#got + 1] = events[i].type end
      assert.same(want, got)
      sim:close()
    end)
  end)

  it("events carry Asterisk's timestamp format, asterisk_id and application", function()
    ari.run(function()
      local sim, events = new_sim { asterisk_id = "aa:bb" }
      req(sim, "POST", "/ari/channels/create", "endpoint=PJSIP/bob&app=test-app&channelId=c1")
      local e = wait_for(events, function(x) return x.type == "StasisStart" end)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%+0000$", e.timestamp)
      assert.equals("aa:bb", e.asterisk_id)
      assert.equals("test-app", e.application)
      for _, k in ipairs { "id", "name", "state", "protocol_id", "caller", "connected", "accountcode", "dialplan", "creationtime", "language" } do
        assert.is_not_nil(e.channel[k], k)
      end
      sim:close()
    end)
  end)

  it("far-end behaviours: busy, no answer, congestion", function()
    ari.run(function()
      local sim, events = new_sim { scenario = { endpoints = {
        ["PJSIP/busy"] = { busy = true }, ["PJSIP/never"] = { no_answer = true },
        ["PJSIP/cong*"] = { congestion = true } } } }
      req(sim, "POST", "/ari/channels", "endpoint=PJSIP/busy&app=test-app&channelId=b1")
      req(sim, "POST", "/ari/channels", "endpoint=PJSIP/never&app=test-app&channelId=n1&timeout=1")
      req(sim, "POST", "/ari/channels", "endpoint=PJSIP/cong1&app=test-app&channelId=k1")
      local function status_of(id)
        local d = wait_for(events, function(e) return e.type == "Dial" and e.peer.id == id and e.dialstatus ~= "" and e.dialstatus ~= "RINGING" end)
        return d.dialstatus
      end
      assert.equals("BUSY", status_of("b1"))
      assert.equals("CONGESTION", status_of("k1"))
      local d = wait_for(events, function(e) return e.type == "ChannelDestroyed" and e.channel.id == "b1" end)
      assert.equals(17, d.cause)
      assert.equals("User busy", d.cause_txt)
      -- the originate's timeout: Asterisk's dial API hangs the channel up
      -- with cause 19 and publishes no Dial status (nor a hang-up request)
      d = wait_for(events, function(e) return e.type == "ChannelDestroyed" and e.channel.id == "n1" end)
      assert.equals(19, d.cause)
      for _, e in ipairs(events) do
        if e.channel and e.channel.id == "n1" then assert.is_not.equal("ChannelHangupRequest", e.type) end
        if e.type == "Dial" and e.peer.id == "n1" then assert.is_true(e.dialstatus == "" or e.dialstatus == "RINGING") end
      end
      for _, e in ipairs(events) do assert.is_not.equal("StasisStart", e.type) end
      sim:close()
    end)
  end)

  it("honours assigned ids and refuses duplicates and prefix conflicts with 409", function()
    ari.run(function()
      local sim = new_sim()
      assert.equals(200, (req(sim, "POST", "/ari/channels/create", "endpoint=PJSIP/a&app=test-app&channelId=abc")))
      assert.equals(409, (req(sim, "POST", "/ari/channels/create", "endpoint=PJSIP/a&app=test-app&channelId=abc")))
      local s, b = req(sim, "POST", "/ari/channels/create", "endpoint=PJSIP/a&app=test-app&channelId=ab")
      assert.equals(409, s)
      assert.is_string(b.message)
      sim:close()
    end)
  end)
end)

describe("sim engine: errors", function()
  it("answers bad requests like Asterisk", function()
    ari.run(function()
      local sim = new_sim()
      local s, b = req(sim, "GET", "/ari/channels/does-not-exist")
      assert.equals(404, s); assert.equals("Channel not found", b.message)
      s, b = req(sim, "POST", "/ari/channels", "app=test-app")
      assert.equals(400, s); assert.equals("Endpoint must be specified", b.message)
      s = req(sim, "GET", "/ari/no/such/thing")
      assert.equals(404, s)
      s = req(sim, "PATCH", "/ari/channels")
      assert.equals(405, s)
      s, b = req(sim, "GET", "/ari/playbacks/nope")
      assert.equals(404, s); assert.equals("Playback not found", b.message)
      s = req(sim, "POST", "/ari/channels", "endpoint=PJSIP/a&app=test-app", "{not json")
      assert.equals(400, s)
      sim:close()
    end)
  end)

  it("409 for operations on a channel that is not in Stasis", function()
    ari.run(function()
      local sim = new_sim { scenario = { endpoints = { ["PJSIP/slow"] = { answer_after = 100000 } } } }
      req(sim, "POST", "/ari/channels", "endpoint=PJSIP/slow&app=test-app&channelId=s1")
      local s, b = req(sim, "POST", "/ari/channels/s1/answer")
      assert.equals(409, s); assert.equals("Channel not in Stasis application", b.message)
      assert.equals(409, (req(sim, "POST", "/ari/channels/s1/play", "media=sound:beep")))
      assert.equals(204, (req(sim, "DELETE", "/ari/channels/s1", "reason=busy")))
      sim:close()
    end)
  end)
end)

describe("sim engine: media", function()
  local function answered(sim, events, id)
    req(sim, "POST", "/ari/channels", "endpoint=PJSIP/a&app=test-app&channelId=" .. id)
    wait_for(events, function(e) return e.type == "StasisStart" and e.channel.id == id end)
  end

  it("plays media lists with PlaybackContinuing in Asterisk's order", function()
    ari.run(function()
      local sim, events = new_sim { speed = 100 }
      answered(sim, events, "m1")
      local s, pb = req(sim, "POST", "/ari/channels/m1/play/pl", "media=sound:beep,digits:42,characters:ab")
      assert.equals(201, s)
      assert.equals("queued", pb.state)
      assert.equals("sound:beep", pb.media_uri)
      wait_for(events, function(e) return e.type == "PlaybackFinished" end, 5000)
      local seq = {}
      for _, e in ipairs(events) do
        if e.playback then seq[#seq + 1] = e.type .. ":" .. e.playback.media_uri .. ":" .. e.playback.state end
      end
      assert.same({
        "PlaybackStarted:sound:beep:playing", "PlaybackContinuing:sound:beep:continuing",
        "PlaybackStarted:digits:42:playing", "PlaybackContinuing:digits:42:continuing",
        "PlaybackStarted:characters:ab:playing", "PlaybackFinished:characters:ab:done",
      }, seq)
      sim:close()
    end)
  end)

  it("an unknown sound fails; control pause/unpause/stop", function()
    ari.run(function()
      local sim, events = new_sim()
      answered(sim, events, "m2")
      req(sim, "POST", "/ari/channels/m2/play/bad", "media=sound:no-such-sound")
      local f = wait_for(events, function(e) return e.type == "PlaybackFinished" end)
      assert.equals("failed", f.playback.state)
      req(sim, "POST", "/ari/channels/m2/play/ctl", "media=sound:silence/10")
      wait_for(events, function(e) return e.type == "PlaybackStarted" and e.playback.id == "ctl" end)
      assert.equals(204, (req(sim, "POST", "/ari/playbacks/ctl/control", "operation=pause")))
      local _, g = req(sim, "GET", "/ari/playbacks/ctl")
      assert.equals("paused", g.state)
      assert.equals(400, (req(sim, "POST", "/ari/playbacks/ctl/control", "operation=sideways")))
      assert.equals(204, (req(sim, "POST", "/ari/playbacks/ctl/control", "operation=unpause")))
      assert.equals(204, (req(sim, "DELETE", "/ari/playbacks/ctl")))
      local fin = wait_for(events, function(e) return e.type == "PlaybackFinished" and e.playback.id == "ctl" end)
      assert.equals("done", fin.playback.state)
      assert.equals(404, (req(sim, "GET", "/ari/playbacks/ctl")))
      sim:close()
    end)
  end)

  it("records a channel until maxDuration, then serves the stored WAV", function()
    ari.run(function()
      local sim, events = new_sim { speed = 100 }
      answered(sim, events, "r1")
      local s, rec = req(sim, "POST", "/ari/channels/r1/record", "name=msg&format=wav&maxDurationSeconds=3")
      assert.equals(201, s)
      assert.equals("queued", rec.state)
      assert.equals(422, (req(sim, "POST", "/ari/channels/r1/record", "name=x&format=nope")))
      local fin = wait_for(events, function(e) return e.type == "RecordingFinished" end)
      assert.equals("done", fin.recording.state)
      assert.equals(3, fin.recording.duration)
      local st, body, h = sim:request("GET", "/ari/recordings/stored/msg/file")
      assert.equals(200, st)
      assert.equals("audio/wav", h["content-type"])
      assert.equals("RIFF", body:sub(1, 4))
      assert.equals("WAVE", body:sub(9, 12))
      assert.equals(#body - 8, string.unpack("<I4", body, 5))
      assert.equals(422, (req(sim, "POST", "/ari/channels/r1/record", "name=msg&format=wav")))
      assert.equals(200, (req(sim, "POST", "/ari/recordings/stored/msg/copy", "destinationRecordingName=msg2")))
      assert.equals(409, (req(sim, "POST", "/ari/recordings/stored/msg/copy", "destinationRecordingName=msg2")))
      assert.equals(204, (req(sim, "DELETE", "/ari/recordings/stored/msg2")))
      assert.equals(404, (req(sim, "GET", "/ari/recordings/stored/msg2")))
      sim:close()
    end)
  end)
end)

describe("sim engine: bridges", function()
  it("adds and removes channels with events; recording a bridged channel fails", function()
    ari.run(function()
      local sim, events = new_sim()
      for _, id in ipairs { "a", "b" } do
        req(sim, "POST", "/ari/channels", "endpoint=PJSIP/" .. id .. "&app=test-app&channelId=" .. id)
        wait_for(events, function(e) return e.type == "StasisStart" and e.channel.id == id end)
      end
      local s, br = req(sim, "POST", "/ari/bridges", "type=mixing&bridgeId=br1&name=br1")
      assert.equals(200, s)
      assert.equals("mixing", br.bridge_type)
      assert.equals(409, (req(sim, "POST", "/ari/bridges", "bridgeId=br1")))
      assert.equals(204, (req(sim, "POST", "/ari/bridges/br1/addChannel", "channel=a,b")))
      local _, g = req(sim, "GET", "/ari/bridges/br1")
      assert.same({ "a", "b" }, g.channels)
      local entered = 0
      for _, e in ipairs(events) do if e.type == "ChannelEnteredBridge" then entered = entered + 1 end end
      assert.equals(2, entered)
      req(sim, "POST", "/ari/channels/a/record", "name=fail-rec&format=wav")
      local f = wait_for(events, function(e) return e.type == "RecordingFailed" end)
      assert.equals("Cannot record channel while in bridge", f.recording.cause)
      assert.equals(400, (req(sim, "POST", "/ari/bridges/br1/addChannel", "channel=zzz")))
      assert.equals(204, (req(sim, "POST", "/ari/bridges/br1/removeChannel", "channel=b")))
      assert.equals(422, (req(sim, "POST", "/ari/bridges/br1/removeChannel", "channel=b")))
      wait_for(events, function(e) return e.type == "ChannelLeftBridge" and e.channel.id == "b" end)
      assert.equals(204, (req(sim, "DELETE", "/ari/bridges/br1")))
      wait_for(events, function(e) return e.type == "ChannelLeftBridge" and e.channel.id == "a" end)
      assert.equals(404, (req(sim, "GET", "/ari/bridges/br1")))
      -- once one of its channels was taken out with removeChannel, the app is
      -- no longer subscribed to the bridge: no BridgeDestroyed (as Asterisk 22)
      for _, e in ipairs(events) do assert.is_not.equal("BridgeDestroyed", e.type) end
      -- a bridge destroyed with the channels still in it: BridgeDestroyed
      assert.equals(200, (req(sim, "POST", "/ari/bridges", "type=mixing&bridgeId=br0")))
      assert.equals(204, (req(sim, "POST", "/ari/bridges/br0/addChannel", "channel=a,b")))
      assert.equals(204, (req(sim, "DELETE", "/ari/bridges/br0")))
      wait_for(events, function(e) return e.type == "BridgeDestroyed" and e.bridge.id == "br0" end)
      -- a bridge the app played to keeps it subscribed (the announcer channel)
      assert.equals(200, (req(sim, "POST", "/ari/bridges", "type=mixing&bridgeId=br2")))
      assert.equals(204, (req(sim, "POST", "/ari/bridges/br2/addChannel", "channel=a")))
      assert.equals(201, (req(sim, "POST", "/ari/bridges/br2/play", "media=sound:beep")))
      assert.equals(204, (req(sim, "POST", "/ari/bridges/br2/removeChannel", "channel=a")))
      assert.equals(204, (req(sim, "DELETE", "/ari/bridges/br2")))
      wait_for(events, function(e) return e.type == "BridgeDestroyed" and e.bridge.id == "br2" end)
      sim:close()
    end)
  end)
end)

describe("sim engine: variables, DTMF, misc resources", function()
  it("sets and gets channel variables with ChannelVarset and channelvars", function()
    ari.run(function()
      local sim, events = new_sim()
      req(sim, "POST", "/ari/channels/create", "endpoint=PJSIP/a&app=test-app&channelId=v1")
      assert.equals(204, (req(sim, "POST", "/ari/channels/v1/variable", "variable=FOO&value=bar")))
      local _, v = req(sim, "GET", "/ari/channels/v1/variable", "variable=FOO")
      assert.equals("bar", v.value)
      assert.equals(404, (req(sim, "GET", "/ari/channels/v1/variable", "variable=NOPE")))
      assert.equals(400, (req(sim, "GET", "/ari/channels/v1/variable")))
      req(sim, "POST", "/ari/channels/v1/variable", "variable=REP&value=1&report_events=true")
      local _, ch = req(sim, "GET", "/ari/channels/v1")
      assert.same({ REP = "1" }, ch.channelvars)
      wait_for(events, function(e) return e.type == "ChannelVarset" and e.variable == "FOO" end)
      req(sim, "POST", "/ari/channels/v1/variable", "variable=CALLERID(all)&value=%22Alice%22+%3C2000%3E")
      local cid = wait_for(events, function(e) return e.type == "ChannelCallerId" end)
      assert.equals("2000", cid.channel.caller.number)
      sim:close()
    end)
  end)

  it("delivers far-end DTMF and lets the far end see sent DTMF", function()
    ari.run(function()
      local sim, events = new_sim { scenario = { endpoints = { ["PJSIP/dtmf"] = { dtmf = "12#", dtmf_after = 10 } } } }
      req(sim, "POST", "/ari/channels", "endpoint=PJSIP/dtmf&app=test-app&channelId=d1")
      wait_for(events, function(e) return e.type == "ChannelDtmfReceived" and e.digit == "#" end)
      local digits = ""
      for _, e in ipairs(events) do if e.type == "ChannelDtmfReceived" then digits = digits .. e.digit end end
      assert.equals("12#", digits)
      assert.equals(204, (req(sim, "POST", "/ari/channels/d1/dtmf", "dtmf=99&between=10&duration=10")))
      local deadline = ari.now() + 2000
      while sim.channels.d1.received_dtmf ~= "99" and ari.now() < deadline do ari.sleep(2) end
      assert.equals("99", sim.channels.d1.received_dtmf)
      assert.equals(400, (req(sim, "POST", "/ari/channels/d1/dtmf")))
      sim:close()
    end)
  end)

  it("asterisk, applications, device states, mailboxes, sounds, user events", function()
    ari.run(function()
      local sim, events = new_sim()
      local _, info = req(sim, "GET", "/ari/asterisk/info")
      assert.is_table(info.system)
      local _, ping = req(sim, "GET", "/ari/asterisk/ping")
      assert.equals("pong", ping.ping)
      assert.equals(204, (req(sim, "POST", "/ari/asterisk/variable", "variable=G&value=1")))
      local _, g = req(sim, "GET", "/ari/asterisk/variable", "variable=G")
      assert.equals("1", g.value)
      local _, apps = req(sim, "GET", "/ari/applications")
      assert.equals("test-app", apps[1].name)
      assert.equals(404, (req(sim, "GET", "/ari/applications/other")))
      assert.equals(200, (req(sim, "POST", "/ari/applications/test-app/subscription", "eventSource=deviceState:Stasis:d")))
      assert.equals(204, (req(sim, "PUT", "/ari/deviceStates/Stasis:d", "deviceState=BUSY")))
      local d = wait_for(events, function(e) return e.type == "DeviceStateChanged" end)
      assert.equals("BUSY", d.device_state.state)
      assert.equals(409, (req(sim, "PUT", "/ari/deviceStates/PJSIP:x", "deviceState=BUSY")))
      assert.equals(204, (req(sim, "PUT", "/ari/mailboxes/1000@demo", "oldMessages=1&newMessages=3")))
      local _, mb = req(sim, "GET", "/ari/mailboxes/1000@demo")
      assert.equals(3, mb.new_messages)
      assert.equals(404, (req(sim, "GET", "/ari/mailboxes/nobody")))
      local _, snd = req(sim, "GET", "/ari/sounds/hello-world")
      assert.equals("hello-world", snd.id)
      assert.equals(404, (req(sim, "GET", "/ari/sounds/nope")))
      req(sim, "POST", "/ari/channels/create", "endpoint=PJSIP/a&app=test-app&channelId=u1")
      assert.equals(204, (req(sim, "POST", "/ari/events/user/ev1", "application=test-app&source=channel:u1", '{"variables":{"k":"v"}}')))
      local ue = wait_for(events, function(e) return e.type == "ChannelUserevent" end)
      assert.equals("ev1", ue.eventname)
      assert.equals("v", ue.userevent.k)
      assert.equals(404, (req(sim, "POST", "/ari/events/user/ev1", "application=nobody")))
      sim:close()
    end)
  end)

  it("every one of the 109 operations has a handler", function()
    local schema = require "ari.schema"
    local n, missing = 0, {}
    for _, o in ipairs(schema.operations) do
      n = n + 1
      if not (simmod.handlers[o.resource] and simmod.handlers[o.resource][o.nickname]) then
        missing[#missing + 1] = o.resource .. "." .. o.nickname
      end
    end
    assert.equals(109, n)
    assert.same({}, missing)
  end)
end)

describe("sim engine: scenarios and time", function()
  it("runs a scripted caller: wait_answer, dtmf, wait_playback, hangup", function()
    ari.run(function()
      local scenario = require "ari.sim.scenario"
      local sim, events = new_sim { speed = 20, scenario = { calls = { { from = "555", to = "100", args = "x,y", script = {
        { "wait_answer" }, { "dtmf", "7", gap = 10 }, { "wait_playback" }, { "hangup" } } } } } }
      local done = false
      sim.event_hooks[#sim.event_hooks + 1] = function(_, e)
        if e.type == "StasisStart" then
          sim:request("POST", "/ari/channels/" .. e.channel.id .. "/answer")
        elseif e.type == "ChannelDtmfReceived" then
          sim:request("POST", "/ari/channels/" .. e.channel.id .. "/play", "media=sound:beep")
        end
      end
      scenario.start(sim, "test-app", function() done = true end)
      local deadline = ari.now() + 3000
      while not done and ari.now() < deadline do ari.sleep(5) end
      assert.is_true(done)
      local ss = wait_for(events, function(e) return e.type == "StasisStart" end)
      assert.same({ "x", "y" }, ss.args)
      assert.equals("555", ss.channel.caller.number)
      assert.equals("Ring", ss.channel.state)
      local last = events[#events]
      assert.equals("ChannelDestroyed", last.type)
      assert.equals(16, last.cause)
      sim:close()
    end)
  end)

  it("speed scales simulated durations", function()
    ari.run(function()
      local sim = simmod.new { speed = 20 }
      local t0 = ari.now()
      local fired
      sim:after(1000, function() fired = ari.now() end)
      while not fired do ari.sleep(2) end
      assert.is_true(fired - t0 < 500, "1 s at speed 20 took " .. (fired - t0) .. " ms")
      assert.is_true(fired - t0 >= 40)
      sim:close()
    end)
  end)
end)

describe("sim json: Asterisk's key order through core.json_encode", function()
  it("writes json.obj keys in the given order, skipping nils, nested, with json.set", function()
    local core = require "ari.core"
    local o = json.obj { "type", "X", "b", 1, "skipped", nil, "a", json.obj { "z", true, "y", json.arr {} } }
    assert.equals('{"type":"X","b":1,"a":{"z":true,"y":[]}}', json.encode(o))
    json.set(o, "c", "last")
    json.set(o, "b", nil)
    assert.equals('{"type":"X","a":{"z":true,"y":[]},"c":"last"}', core.json_encode(o))
    -- a key missing from the order list is left out, as documented
    local mt = { __jsonorder = { "k" } }
    assert.equals('{"k":2}', core.json_encode(setmetatable({ k = 2, other = 3 }, mt)))
    assert.has_error(function() core.json_encode(setmetatable({}, { __jsonorder = { 1 } })) end)
  end)

  it("keeps every key after nil values (holes in the constructor)", function()
    local o = json.obj { "a", nil, "b", 2, "c", nil, "d", nil, "e", 5 }
    assert.equals('{"b":2,"e":5}', json.encode(o))
  end)
end)
