-- The simulated Asterisk against the real Asterisk 22 run (../shared/ari-samples):
-- 412 states, Dial events, Local channel pairs, tone detection, transfers.
local ari = require "ari"
local shared = require "spec.support.shared"
local util = require "spec.support.util"

local new_sim = util.new_sim
local req = util.req
local wait_for = util.wait_for

-- "Type:id" for each event from index i0 on (ids of channel/peer)
local function trail(events, i0, keep)
  local out = {}
  for i = i0 or 1, #events do
    local e = events[i]
    local ch = e.channel
    local s = e.type .. (ch and (":" .. ch.id) or "")
    if keep == nil or keep(e) then out[#out + 1] = s end
  end
  return out
end

-- The events the run log shows app `app` receiving in a section, from the
-- first line containing `from` on, as "Type:id" (Dial lines carry no id).
local function run_log(section, app, from)
  local p = shared.path("ari-samples/run-log.txt")
  if not p then return nil end
  local out, on, started = {}, false, from == nil
  for line in io.lines(p) do
    local title = line:match("%] === (.*)$")
    if title then on = title:find(section, 1, true) ~= nil
    elseif on and not started then started = line:find(from, 1, true) ~= nil
    elseif on then
      local t, rest = line:match("<< " .. app:gsub("%-", "%%-") .. ": (%a+)(.*)$")
      if t then
        local id = rest:match("ch=([%w%-%.]+)%(")
        out[#out + 1] = t .. (id and (":" .. id) or "")
      end
    end
  end
  return out
end

describe("sim fidelity: 412 Channel in invalid state", function()
  it("refuses state, media and dialplan operations on Down and Ringing channels, not on Ring or Up", function()
    ari.run(function()
      local sim = new_sim { scenario = { endpoints = { ["PJSIP/slow"] = { ring_after = 0, answer_after = 100000 } } } }
      -- channels/create: in Stasis, Down
      assert.equals(200, (req(sim, "POST", "/ari/channels/create", "endpoint=PJSIP/slow&app=test-app&channelId=d1")))
      local ops = {
        { "POST", "answer" }, { "POST", "ring" }, { "DELETE", "ring" }, { "POST", "progress" },
        { "POST", "mute", "direction=both" }, { "DELETE", "mute", "direction=both" },
        { "POST", "hold" }, { "DELETE", "hold" }, { "POST", "moh" }, { "DELETE", "moh" },
        { "POST", "silence" }, { "DELETE", "silence" }, { "POST", "dtmf", "dtmf=1" },
        { "POST", "play", "media=sound:beep" }, { "POST", "play/pb-x", "media=sound:beep" },
        { "POST", "continue" }, { "POST", "redirect", "endpoint=PJSIP/other" },
        { "POST", "transfer_progress", "states=ringing" },
      }
      for _, op in ipairs(ops) do
        local s, b = req(sim, op[1], "/ari/channels/d1/" .. op[2], op[3])
        assert.equals(412, s, op[1] .. " " .. op[2])
        assert.equals("Channel in invalid state", b.message)
      end
      -- variables and hang-up are not state-checked
      assert.equals(204, (req(sim, "POST", "/ari/channels/d1/variable", "variable=X&value=1")))
      -- dialled, Ringing: still 412
      assert.equals(204, (req(sim, "POST", "/ari/channels/d1/dial", "timeout=100")))
      ari.sleep(20)
      local _, ch = req(sim, "GET", "/ari/channels/d1")
      assert.equals("Ringing", ch.state)
      assert.equals(412, (req(sim, "POST", "/ari/channels/d1/answer")))
      assert.equals(412, (req(sim, "POST", "/ari/channels/d1/play", "media=sound:beep")))
      assert.equals(204, (req(sim, "DELETE", "/ari/channels/d1")))
      -- an inbound caller in Ring may be played to (early media) and answered
      local scn = require "ari.sim.scenario"
      local caller = scn.place_call(sim, { from = "1001", script = { { "wait_hangup", timeout = 5000 } } }, "test-app")
      assert.equals("Ring", caller.state)
      assert.equals(201, (req(sim, "POST", "/ari/channels/" .. caller.id .. "/play", "media=sound:beep")))
      assert.equals(204, (req(sim, "POST", "/ari/channels/" .. caller.id .. "/answer")))
      -- not in Stasis (an originate still ringing) is 409, unknown is 404
      req(sim, "POST", "/ari/channels", "endpoint=PJSIP/slow&app=test-app&channelId=o1")
      local s, b = req(sim, "POST", "/ari/channels/o1/answer")
      assert.equals(409, s); assert.equals("Channel not in Stasis application", b.message)
      s, b = req(sim, "POST", "/ari/channels/nope/answer")
      assert.equals(404, s); assert.equals("Channel not found", b.message)
      sim:close()
    end)
  end)
end)

describe("sim fidelity: Dial events", function()
  it("an originate carries the dialstring in every Dial; /dial only in the first", function()
    ari.run(function()
      local sim, events = new_sim()
      req(sim, "POST", "/ari/channels", "endpoint=PJSIP/alice@trunk&app=test-app&channelId=o1")
      wait_for(events, function(e) return e.type == "StasisStart" end)
      for _, e in ipairs(events) do
        if e.type == "Dial" then assert.equals("alice@trunk", e.dialstring, e.dialstatus) end
      end
      req(sim, "POST", "/ari/channels/create", "endpoint=PJSIP/bob&app=test-app&channelId=c1")
      local n0 = #events
      req(sim, "POST", "/ari/channels/c1/dial")
      wait_for(events, function(e) return e.type == "Dial" and e.dialstatus == "ANSWER" and e.peer.id == "c1" end)
      local seen = {}
      for i = n0 + 1, #events do
        local e = events[i]
        if e.type == "Dial" then seen[#seen + 1] = e.dialstatus .. "=" .. e.dialstring end
      end
      assert.same({ "=bob", "RINGING=", "ANSWER=" }, seen)
      sim:close()
    end)
  end)

  it("hanging up an originate that is still dialling: HangupRequest, Dial NOANSWER, Destroyed (run log demo-BC1)", function()
    ari.run(function()
      local sim, events = new_sim { scenario = { endpoints = { ["PJSIP/never"] = { no_answer = true } } } }
      req(sim, "POST", "/ari/channels", "endpoint=PJSIP/never&app=test-app&channelId=bc1")
      wait_for(events, function(e) return e.type == "Dial" and e.dialstatus == "RINGING" end)
      local n0 = #events
      assert.equals(204, (req(sim, "DELETE", "/ari/channels/bc1")))
      assert.same({ "ChannelHangupRequest:bc1", "Dial", "ChannelDestroyed:bc1" }, trail(events, n0 + 1))
      assert.equals(32, events[n0 + 1].cause)
      assert.is_true(events[n0 + 1].soft)
      assert.equals("NOANSWER", events[n0 + 2].dialstatus)
      assert.equals("never", events[n0 + 2].dialstring)
      assert.equals(16, events[n0 + 3].cause)
      sim:close()
    end)
  end)

  it("a ringing /dial channel hung up with reason=busy ends with cause 17 (run log demo-R1)", function()
    local want = run_log("originate to a ringing far end", "test-app", "channelId=demo-R1")
    if not want then pending("the shared ARI samples (../shared) are not available"); return end
    assert.is_true(#want >= 8, "run-log parse")
    ari.run(function()
      local sim, events = new_sim { scenario = { endpoints = { ["Local/ring@caller"] = { no_answer = true } } } }
      req(sim, "POST", "/ari/channels/create", "endpoint=Local/ring@caller&app=test-app&channelId=demo-R1&otherChannelId=demo-R2")
      wait_for(events, function(e) return e.type == "StasisStart" end)
      req(sim, "POST", "/ari/channels/demo-R1/dial", "timeout=20")
      wait_for(events, function(e) return e.type == "Dial" and e.dialstatus == "RINGING" end)
      req(sim, "DELETE", "/ari/channels/demo-R1", "reason=busy")
      wait_for(events, function(e) return e.type == "ChannelDestroyed" and e.channel.id == "demo-R1" end)
      ari.sleep(20)
      assert.same(want, trail(events))
      local d = events[#events]
      for _, e in ipairs(events) do if e.type == "ChannelDestroyed" and e.channel.id == "demo-R1" then d = e end end
      assert.equals(17, d.cause)
      assert.equals("User busy", d.cause_txt)
      assert.equals("Ringing", d.channel.state)
      sim:close()
    end)
  end)
end)

describe("sim fidelity: bridges", function()
  it("adding a ringing inbound channel to a mixing bridge does not answer it", function()
    ari.run(function()
      local sim, events = new_sim()
      local scn = require "ari.sim.scenario"
      local caller = scn.place_call(sim, { from = "1001", script = { { "wait_hangup", timeout = 5000 } } }, "test-app")
      req(sim, "POST", "/ari/bridges", "type=mixing&bridgeId=br1")
      assert.equals(204, (req(sim, "POST", "/ari/bridges/br1/addChannel", "channel=" .. caller.id)))
      local e = wait_for(events, function(x) return x.type == "ChannelEnteredBridge" end)
      assert.equals("Ring", e.channel.state)
      local _, ch = req(sim, "GET", "/ari/channels/" .. caller.id)
      assert.equals("Ring", ch.state)
      for _, x in ipairs(events) do assert.is_not.equal("ChannelStateChange", x.type) end
      sim:close()
    end)
  end)
end)

describe("sim fidelity: Local channel pairs", function()
  local MAIN = { Dial = true, ChannelStateChange = true, StasisStart = true, StasisEnd = true,
    ChannelHangupRequest = true, ChannelDestroyed = true }
  local function main_only(list, ids)
    local out = {}
    for _, x in ipairs(list) do
      local t, id = x:match("^(%a+):?(.*)$")
      if MAIN[t] and (ids == nil or ids[id]) then out[#out + 1] = x end
    end
    return out
  end

  it("originate to Local/x: ;1/;2 pair, ;2 runs Stasis, answering ;2 brings ;1 into the app, hang-up takes both (run log A)", function()
    local want = run_log("originate Local/100@to-stasis (A)", "test-app")
    if not want then pending("the shared ARI samples (../shared) are not available"); return end
    for _, x in ipairs(run_log("answer demo-A2 -> demo-A1 enters Stasis", "test-app")) do want[#want + 1] = x end
    local ids = { ["demo-A1"] = true, ["demo-A2"] = true }
    local want_hangup = main_only(run_log("hang up everything", "test-app"), ids)
    assert.is_true(#want >= 6 and #want_hangup >= 6, "run-log parse")
    ari.run(function()
      local sim, events = new_sim { subscribe_all = false,
        scenario = { endpoints = { ["Local/*@to-stasis"] = { stasis = "test-app" } } } }
      local s, ch = req(sim, "POST", "/ari/channels", "endpoint=Local/100@to-stasis&app=test-app"
        .. "&appArgs=from-originate,a1&channelId=demo-A1&otherChannelId=demo-A2&callerId=%22Demo+A%22+%3C1000%3E")
      assert.equals(200, s)
      assert.matches("^Local/100@to%-stasis%-%x+;1$", ch.name)
      local a2 = wait_for(events, function(e) return e.type == "StasisStart" end)
      assert.equals("demo-A2", a2.channel.id)
      assert.equals("Ring", a2.channel.state)
      assert.matches(";2$", a2.channel.name)
      local _, list = req(sim, "GET", "/ari/channels")
      assert.equals(2, #list)
      assert.equals(204, (req(sim, "POST", "/ari/channels/demo-A2/answer")))
      local a1 = wait_for(events, function(e) return e.type == "StasisStart" and e.channel.id == "demo-A1" end)
      assert.same({ "from-originate", "a1" }, a1.args)
      assert.equals("Up", a1.channel.state)
      assert.same(main_only(want), main_only(trail(events)))
      local n0 = #events
      assert.equals(204, (req(sim, "DELETE", "/ari/channels/demo-A1", "reason_code=16")))
      assert.same(want_hangup, main_only(trail(events, n0 + 1)))
      assert.equals(404, (req(sim, "GET", "/ari/channels/demo-A2")))
      sim:close()
    end)
  end)

  it("a Local far end that answers at once: ;2 Up, ;1 Up, Dial ANSWER, StasisStart ;1 (run log B)", function()
    local want = run_log("originate Local/dtmf@caller (B)", "test-app")
    if not want then pending("the shared ARI samples (../shared) are not available"); return end
    ari.run(function()
      local sim, events = new_sim { scenario = { endpoints = { ["Local/dtmf@caller"] = { dtmf = "123#", dtmf_after = 100 } } } }
      req(sim, "POST", "/ari/channels", "endpoint=Local/dtmf@caller&app=test-app&channelId=demo-B1&otherChannelId=demo-B2")
      wait_for(events, function(e) return e.type == "ChannelDtmfReceived" and e.digit == "#" end)
      assert.same(main_only(want), main_only(trail(events)))
      local digits = {}
      for _, e in ipairs(events) do
        if e.type == "ChannelDtmfReceived" then digits[#digits + 1] = e.channel.id .. "=" .. e.digit end
      end
      assert.same({ "demo-B1=1", "demo-B1=2", "demo-B1=3", "demo-B1=#" }, digits)
      -- channels/create + dial: the app is not subscribed to ;2
      req(sim, "POST", "/ari/channels/create", "endpoint=Local/s@caller&app=test-app&channelId=demo-C1&otherChannelId=demo-C2")
      req(sim, "POST", "/ari/channels/demo-C1/dial", "timeout=10")
      wait_for(events, function(e) return e.type == "Dial" and e.dialstatus == "ANSWER" and e.peer.id == "demo-C1" end)
      for _, e in ipairs(events) do assert.is_not.equal("demo-C2", (e.channel or e.peer or {}).id) end
      local _, c2 = req(sim, "GET", "/ari/channels/demo-C2")
      assert.equals("Up", c2.state)
      sim:close()
    end)
  end)
end)

describe("sim fidelity: tone detection and transfers", function()
  it("a far end's tone raises ChannelToneDetected only while TONE_DETECT is set", function()
    ari.run(function()
      local sim, events = new_sim()
      local scn = require "ari.sim.scenario"
      local caller = scn.place_call(sim, { from = "1001", script = {
        { "wait_dtmf", "1" }, { "tone", 1000 }, { "wait_dtmf", "2" }, { "tone", 1000 }, { "wait_hangup" } } }, "test-app")
      local id = caller.id
      req(sim, "POST", "/ari/channels/" .. id .. "/answer")
      assert.equals(204, (req(sim, "POST", "/ari/channels/" .. id .. "/variable", "variable=TONE_DETECT(1000,100,r)&value=")))
      req(sim, "POST", "/ari/channels/" .. id .. "/dtmf", "dtmf=1")
      local e = wait_for(events, function(x) return x.type == "ChannelToneDetected" end)
      assert.equals(id, e.channel.id)
      assert.equals("test-app", e.application)
      assert.is_string(e.timestamp)
      assert.equals(204, (req(sim, "POST", "/ari/channels/" .. id .. "/variable", "variable=TONE_DETECT(0,,x)&value=")))
      req(sim, "POST", "/ari/channels/" .. id .. "/dtmf", "dtmf=2")
      ari.sleep(40)
      local n = 0
      for _, x in ipairs(events) do if x.type == "ChannelToneDetected" then n = n + 1 end end
      assert.equals(1, n)
      sim:close()
    end)
  end)

  it("blind_transfer step: ChannelHold, ChannelUnhold, BridgeBlindTransfer, the transferer leaves and hangs up", function()
    ari.run(function()
      local sim, events = new_sim()
      local scn = require "ari.sim.scenario"
      local a = scn.place_call(sim, { from = "1001", script = { { "wait_hangup", timeout = 5000 } } }, "test-app")
      local b = scn.place_call(sim, { from = "1002", script = { { "wait_bridge" }, { "sleep", 50 },
        { "blind_transfer", "400", context = "caller" } } }, "test-app")
      req(sim, "POST", "/ari/channels/" .. a.id .. "/answer")
      req(sim, "POST", "/ari/channels/" .. b.id .. "/answer")
      req(sim, "POST", "/ari/bridges", "type=mixing&bridgeId=br1")
      req(sim, "POST", "/ari/bridges/br1/addChannel", "channel=" .. a.id .. "," .. b.id)
      local e = wait_for(events, function(x) return x.type == "BridgeBlindTransfer" end)
      assert.equals(b.id, e.channel.id)
      assert.equals(a.id, e.transferee.id)
      assert.equals("400", e.exten)
      assert.equals("caller", e.context)
      assert.equals("Success", e.result)
      assert.is_false(e.is_external)
      assert.equals("br1", e.bridge.id)
      wait_for(events, function(x) return x.type == "ChannelDestroyed" and x.channel.id == b.id end)
      local seq = {}
      for _, x in ipairs(events) do
        if x.channel and x.channel.id == b.id and (x.type:find("hold") or x.type:find("Hold") or x.type == "ChannelLeftBridge"
          or x.type == "StasisEnd") then seq[#seq + 1] = x.type end
        if x.type == "BridgeBlindTransfer" then seq[#seq + 1] = x.type end
      end
      assert.same({ "ChannelHold", "ChannelUnhold", "BridgeBlindTransfer", "ChannelLeftBridge", "StasisEnd" }, seq)
      local _, br = req(sim, "GET", "/ari/bridges/br1")
      assert.same({ a.id }, br.channels)
      sim:close()
    end)
  end)
end)

-- Behaviours measured against real Asterisk 22 by the differential check
-- (spec/asterisk/differential_spec.lua); here without a real server.
describe("sim fidelity: Local far ends running a simulated dialplan", function()
  local SCN = "spec/fixtures/sim/caller.lua"
  local function types(events, id)
    local out = {}
    for _, e in ipairs(events) do
      local c = e.channel or e.peer
      if c and c.id == id then
        local extra = e.dialplan_app or e.dialstatus or e.digit or (e.type == "ChannelStateChange" and e.channel.state)
          or e.cause
        out[#out + 1] = e.type .. (extra ~= nil and ("(" .. tostring(extra) .. ")") or "")
      end
    end
    return out
  end

  it("Local/dtmf@caller: ;2 answers, waits, sends 123# towards ;1; hang-up ends ;2 with the PBX's soft request", function()
    ari.run(function()
      local sim, events = new_sim { scenario = SCN, speed = 20 }
      req(sim, "POST", "/ari/channels", "endpoint=Local/dtmf@caller&app=test-app&channelId=c1&otherChannelId=c2")
      wait_for(events, function(e) return e.type == "ChannelDtmfReceived" and e.digit == "#" end, 5000)
      assert.equals(204, (req(sim, "DELETE", "/ari/channels/c1")))
      wait_for(events, function(e) return e.type == "ChannelDestroyed" and e.channel.id == "c2" end)
      assert.same({ "Dial()", "ChannelStateChange(Up)", "Dial(ANSWER)", "ChannelVarset", "StasisStart",
        "ChannelDtmfReceived(1)", "ChannelDtmfReceived(2)", "ChannelDtmfReceived(3)", "ChannelDtmfReceived(#)",
        "ChannelHangupRequest(32)", "StasisEnd", "ChannelVarset", "ChannelDestroyed(16)" }, types(events, "c1"))
      assert.same({ "ChannelDialplan(Answer)", "ChannelStateChange(Up)", "ChannelDialplan(Wait)",
        "ChannelDialplan(SendDTMF)", "ChannelHangupRequest(16)", "ChannelHangupRequest(16)", "ChannelDestroyed(16)" },
        types(events, "c2"))
      sim:close()
    end)
  end)

  it("busy, congestion, ringing past the timeout, a context that does not exist", function()
    ari.run(function()
      local sim, events = new_sim { scenario = SCN, speed = 20 }
      req(sim, "POST", "/ari/channels", "endpoint=Local/busy@caller&app=test-app&channelId=b1&otherChannelId=b2")
      req(sim, "POST", "/ari/channels", "endpoint=Local/congestion@caller&app=test-app&channelId=k1&otherChannelId=k2")
      req(sim, "POST", "/ari/channels", "endpoint=Local/ring@caller&app=test-app&channelId=r1&otherChannelId=r2&timeout=1")
      req(sim, "POST", "/ari/channels", "endpoint=Local/x@nowhere&app=test-app&channelId=n1&otherChannelId=n2")
      for _, id in ipairs { "b2", "k2", "r2", "n2" } do
        wait_for(events, function(e) return e.type == "ChannelDestroyed" and e.channel.id == id end, 5000)
      end
      assert.same({ "Dial()", "Dial(BUSY)", "ChannelDestroyed(0)" }, types(events, "b1"))
      assert.same({ "ChannelDialplan(Busy)", "ChannelStateChange(Busy)", "ChannelHangupRequest(0)",
        "ChannelHangupRequest(16)", "ChannelDestroyed(17)" }, types(events, "b2"))
      assert.same({ "Dial()", "Dial(CONGESTION)", "ChannelDestroyed(0)" }, types(events, "k1"))
      assert.equals("ChannelDestroyed(34)", types(events, "k2")[5])
      -- the originate's timeout: no Dial status, no hang-up request, cause 19
      assert.same({ "Dial()", "ChannelStateChange(Ringing)", "Dial(RINGING)", "ChannelDestroyed(19)" },
        types(events, "r1"))
      assert.same({ "ChannelDestroyed(0)" }, types(events, "n1"))
      assert.same({ "ChannelDestroyed(0)" }, types(events, "n2"))
      sim:close()
    end)
  end)
end)

describe("sim fidelity: audio and caller id across a simulated Local pair", function()
  local SCN = "spec/fixtures/sim/caller.lua"

  it("TALK_DETECT on ;1 while ;2 plays: TalkingStarted, no TalkingFinished when the call ends first", function()
    ari.run(function()
      local sim, events = new_sim { scenario = SCN, speed = 20 }
      req(sim, "POST", "/ari/channels", "endpoint=Local/playback@caller&app=test-app&channelId=t1&otherChannelId=t2")
      wait_for(events, function(e) return e.type == "StasisStart" end, 5000)
      assert.equals(204, (req(sim, "POST", "/ari/channels/t1/variable", "variable=TALK_DETECT(set)&value=")))
      wait_for(events, function(e) return e.type == "ChannelDestroyed" and e.channel.id == "t1" end, 5000)
      local talk, status = {}, nil
      for _, e in ipairs(events) do
        if e.type:find("^ChannelTalking") then talk[#talk + 1] = e.type .. ":" .. e.channel.id end
        if e.type == "ChannelVarset" and e.variable == "PLAYBACKSTATUS" then status = e.channel.id .. "=" .. e.value end
      end
      assert.same({ "ChannelTalkingStarted:t1" }, talk)
      assert.equals("t2=SUCCESS", status)
      sim:close()
    end)
  end)

  it("a CONNECTEDLINE change on ;1 reaches ;2 as its caller id when ;2's Wait ends (here: after it is gone)", function()
    ari.run(function()
      local sim, events = new_sim { scenario = SCN, speed = 20 }
      req(sim, "POST", "/ari/channels", "endpoint=Local/s@caller&app=test-app&channelId=c1&otherChannelId=c2")
      wait_for(events, function(e) return e.type == "ChannelDialplan" and e.dialplan_app == "Wait" end, 5000)
      assert.equals(204, (req(sim, "POST", "/ari/channels/c1/variable", "variable=CONNECTEDLINE(num)&value=2000")))
      for _, e in ipairs(events) do
        assert.is_false(e.type == "ChannelCallerId" and e.channel.id == "c2")
      end
      assert.equals(204, (req(sim, "DELETE", "/ari/channels/c1")))
      local last
      for _, e in ipairs(events) do if e.channel and e.channel.id == "c2" then last = e end end
      assert.equals("ChannelCallerId", last.type)
      assert.equals("2000", last.channel.caller.number)
      sim:close()
    end)
  end)
end)

describe("sim fidelity: errors, media and apps as Asterisk 22 answers them", function()
  it("an endpoint technology with no channel driver is 500 Allocation failed", function()
    ari.run(function()
      local sim = new_sim { scenario = "spec/fixtures/sim/caller.lua" }
      local s, b = req(sim, "POST", "/ari/channels", "endpoint=Nonexistent/foo&app=test-app")
      assert.equals(500, s)
      assert.same({ error = "Allocation failed" }, b)
      assert.equals(200, (req(sim, "POST", "/ari/channels", "endpoint=Local/s@caller&app=test-app")))
      s, b = req(sim, "POST", "/ari/channels", "endpoint=nodevice&app=test-app")
      assert.equals(400, s)
      assert.equals("Invalid endpoint specified", b.message)
      -- app wins over extension, as in Asterisk
      assert.equals(200, (req(sim, "POST", "/ari/channels", "endpoint=Local/s@caller&app=test-app&extension=s")))
      sim:close()
    end)
  end)

  it("an unknown media scheme plays nothing: PlaybackStarted, then no PlaybackFinished; a missing sound fails", function()
    ari.run(function()
      local sim, events = new_sim { speed = 20 }
      req(sim, "POST", "/ari/channels", "endpoint=PJSIP/a&app=test-app&channelId=m1")
      wait_for(events, function(e) return e.type == "StasisStart" end)
      assert.equals(201, (req(sim, "POST", "/ari/channels/m1/play/p1", "media=nosuchscheme:x")))
      assert.equals(201, (req(sim, "POST", "/ari/channels/m1/play/p2", "media=sound:no-such-sound")))
      local f = wait_for(events, function(e) return e.type == "PlaybackFinished" end)
      assert.equals("p2", f.playback.id)
      assert.equals("failed", f.playback.state)
      local p1 = {}
      for _, e in ipairs(events) do if e.playback and e.playback.id == "p1" then p1[#p1 + 1] = e.type end end
      assert.same({ "PlaybackStarted" }, p1)
      assert.equals(404, (req(sim, "GET", "/ari/playbacks/p1")))
      sim:close()
    end)
  end)

  it("recording durations: the audio that went into the file, less the silence that ended it", function()
    ari.run(function()
      local sim, events = new_sim { speed = 20, scenario = "spec/fixtures/sim/caller.lua" }
      -- a channel that always carries audio (RTP), silent: 3 s of silence
      -- end it, of which (3000 - 200) ms are cut in whole seconds: 3 - 2 = 1
      sim.scenario.technologies = nil
      req(sim, "POST", "/ari/channels", "endpoint=PJSIP/a&app=test-app&channelId=r1")
      wait_for(events, function(e) return e.type == "StasisStart" end)
      assert.equals(201, (req(sim, "POST", "/ari/channels/r1/record", "name=quiet&format=wav&maxSilenceSeconds=3")))
      local f = wait_for(events, function(e) return e.type == "RecordingFinished" end, 5000)
      assert.equals(1, f.recording.duration)
      -- a Local channel whose far end only waits sends no audio at all: 0 s
      req(sim, "POST", "/ari/channels", "endpoint=Local/s@caller&app=test-app&channelId=l1")
      wait_for(events, function(e) return e.type == "StasisStart" and e.channel.id == "l1" end, 5000)
      assert.equals(201, (req(sim, "POST", "/ari/channels/l1/record", "name=quiet2&format=wav&maxDurationSeconds=2")))
      f = wait_for(events, function(e) return e.type == "RecordingFinished" and e.recording.name == "quiet2" end, 5000)
      assert.equals(0, f.recording.duration)
      sim:close()
    end)
  end)

  it("a variable set without a value is unset (ChannelVarset with \"\", then 404)", function()
    ari.run(function()
      local sim, events = new_sim()
      req(sim, "POST", "/ari/channels/create", "endpoint=PJSIP/a&app=test-app&channelId=v1")
      assert.equals(204, (req(sim, "POST", "/ari/channels/v1/variable", "variable=X&value=1")))
      assert.equals(204, (req(sim, "POST", "/ari/channels/v1/variable", "variable=X")))
      local set = wait_for(events, function(e) return e.type == "ChannelVarset" and e.variable == "X" and e.value == "" end)
      assert.is_truthy(set)
      assert.equals(404, (req(sim, "GET", "/ari/channels/v1/variable", "variable=X")))
      assert.equals(204, (req(sim, "POST", "/ari/channels/v1/variable", "variable=Y&value=")))
      local s, b = req(sim, "GET", "/ari/channels/v1/variable", "variable=Y")
      assert.equals(200, s)
      assert.equals("", b.value)
      sim:close()
    end)
  end)

  it("a second connection for an app gets it; the first gets ApplicationReplaced and stays open", function()
    ari.run(function()
      local json = require "ari.sim.json"
      local sim = require("ari.sim").new { speed = 50 }
      local first, second = {}, {}
      local closed = false
      sim:connect_events("dup", false, function(t) first[#first + 1] = json.decode(t) end,
        function() closed = true end)
      sim:connect_events("dup", false, function(t) second[#second + 1] = json.decode(t) end)
      assert.equals("ApplicationReplaced", first[1].type)
      assert.is_false(closed)
      req(sim, "POST", "/ari/channels/create", "endpoint=PJSIP/a&app=dup&channelId=d1")
      wait_for(second, function(e) return e.type == "StasisStart" end)
      assert.equals(1, #first)
      sim:close()
    end)
  end)
end)
