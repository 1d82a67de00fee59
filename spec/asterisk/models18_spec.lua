-- Real Asterisk: the 70 models of Asterisk 18's ARI (the seed's data
-- models; the schema's models without `since`) decode from real traffic,
-- each object with its model and typed fields.  Written for Asterisk 18
-- (`--asterisk 18`); it runs as well against 20, 22 and 23, which have all
-- of them.  Models that cannot be produced by this test server (no SIP, no
-- transfer in its dialplan, or nothing refers to them) are listed as
-- pending with the reason, never as passing.
local ast = require "spec.support.asterisk"
local ari = require "ari"
local schema = require "ari.schema"
local models = require "ari.models"
local client_mod = require "ari.client"

local json_null = require("ari.core").json_null

-- model -> why this server cannot produce it
local PENDING = {
  Peer = "needs a SIP peer (the test Asterisk has no SIP channel driver)",
  PeerStatusChange = "needs a SIP peer (the test Asterisk has no SIP channel driver)",
  ContactInfo = "needs a PJSIP contact (the test Asterisk has no PJSIP)",
  ContactStatusChange = "needs a PJSIP contact (the test Asterisk has no PJSIP)",
  TextMessage = "needs a messaging channel technology (SIP/PJSIP; not in the test Asterisk)",
  TextMessageReceived = "needs a messaging channel technology (SIP/PJSIP; not in the test Asterisk)",
  Endpoint = "needs a channel driver with endpoints (SIP/PJSIP/IAX2); Local channels have none",
  EndpointStateChange = "needs a channel driver with endpoints (SIP/PJSIP/IAX2); Local channels have none",
  BridgeAttendedTransfer = "needs an attended transfer (a SIP REFER or AMI Atxfer; no ARI operation makes one)",
  BridgeBlindTransfer = "needs a blind transfer (a SIP REFER or the BlindTransfer dialplan app on a bridged "
    .. "channel, not in the test dialplan)",
  BridgeMerged = "needs two bridges merged by a transfer; no ARI operation merges bridges",
  Dialed = "no response, event or property of the ARI spec carries it (an empty model)",
  MissingParams = "not produced by this server: a REST request lacking a parameter gets {message} (400), the "
    .. "events WebSocket without app an HTML 400",
}

-- the models of Asterisk 18: those without `since` (the schema's version facts)
local function models18()
  local names = {}
  for name, m in pairs(schema.models) do if m.since == nil then names[#names + 1] = name end end
  table.sort(names)
  return names
end

local function list_of(t) return t:match("^List%[(.+)%]$") end

-- Walk a decoded value that should be of schema type t: every model object
-- must carry its model (or a subtype of it) and typed fields.
local function checker()
  local seen, bad = {}, {}
  local function is_a(name, want)
    while name do
      if name == want then return true end
      name = schema.models[name] and schema.models[name].extends
    end
    return false
  end
  local walk
  local function check(x, t, where)
    if x == json_null then return end
    local inner = list_of(t)
    if inner then
      if type(x) ~= "table" then bad[#bad + 1] = where .. ": not a list"; return end
      for i = 1, #x do check(x[i], inner, where .. "[" .. i .. "]") end
    elseif schema.models[t] then
      walk(x, t, where)
    elseif t == "string" or t == "Date" then
      if type(x) ~= "string" then bad[#bad + 1] = where .. ": not a string" end
    elseif t == "int" or t == "long" then
      if math.type(x) ~= "integer" then bad[#bad + 1] = where .. ": not an integer (" .. tostring(x) .. ")" end
    elseif t == "double" then
      if type(x) ~= "number" then bad[#bad + 1] = where .. ": not a number" end
    elseif t == "boolean" then
      if type(x) ~= "boolean" then bad[#bad + 1] = where .. ": not a boolean" end
    elseif t == "object" then
      if type(x) ~= "table" then bad[#bad + 1] = where .. ": not an object" end
    end
  end
  function walk(v, want, where)
    local name = models.model_of(v)
    if name == nil or not is_a(name, want) then
      bad[#bad + 1] = ("%s: %s where %s was expected"):format(where, tostring(name or type(v)), want)
      return
    end
    seen[name] = true
    local m = schema.models[name]
    for f, p in pairs(m.properties) do
      local x = rawget(v, f)
      if x ~= nil then
        if p.from then seen[p.from] = true end -- the base type's fields (Event, Message) decoded too
        check(x, p.type, where .. "." .. f)
      elseif p.required and p.since == nil then
        -- (a required field newer servers added is not expected from an older one)
        bad[#bad + 1] = where .. "." .. f .. ": required field missing"
      end
    end
  end
  return { seen = seen, bad = bad, check = check }
end

local result -- { seen, bad, notes }

local function drive(inst)
  local c = checker()
  local notes = {}
  local function keep(v, t, where) c.check(v, t, where) end
  local function try(what, fn)
    local ok, err = pcall(fn)
    if not ok then notes[#notes + 1] = what .. ": " .. tostring(err) end
  end
  ast.run(function()
    local app = ast.app_name("m18")
    local events = {}
    local client = ari.connect { url = inst.url, user = inst.user, password = inst.password, app = app,
      subscribe_all = true, strict = true }
    client:on("*", function(ev) events[#events + 1] = ev end)
    ast.poll(function() return client.stats.connects > 0 end, "the events socket")
    local a, ch = client.asterisk, client.channels

    -- asterisk: info, ping, modules, logging, variables, config objects
    keep(a.getInfo(), "AsteriskInfo", "asterisk.getInfo")
    keep(a.ping(), "AsteriskPing", "asterisk.ping")
    keep(a.listModules(), "List[Module]", "asterisk.listModules")
    keep(a.getModule { moduleName = "app_stasis.so" }, "Module", "asterisk.getModule")
    keep(a.listLogChannels(), "List[LogChannel]", "asterisk.listLogChannels")
    a.setGlobalVar { variable = "M18_" .. app:gsub("%W", ""), value = "x" }
    keep(a.getGlobalVar { variable = "M18_" .. app:gsub("%W", "") }, "Variable", "asterisk.getGlobalVar")

    -- mailboxes (and their sorcery objects: ConfigTuple)
    local mb = "mb" .. app:gsub("%W", "")
    client.mailboxes.update { mailboxName = mb, oldMessages = 1, newMessages = 2 }
    keep(client.mailboxes.get { mailboxName = mb }, "Mailbox", "mailboxes.get")
    keep(client.mailboxes.list(), "List[Mailbox]", "mailboxes.list")
    keep(a.getObject { configClass = "res_mwi_external", objectType = "mailboxes", id = mb }, "List[ConfigTuple]",
      "asterisk.getObject")
    client.mailboxes.delete { mailboxName = mb }

    -- sounds, endpoints, device states, applications
    keep(client.sounds.list(), "List[Sound]", "sounds.list")
    keep(client.sounds.get { soundId = "hello-world" }, "Sound", "sounds.get")
    keep(client.endpoints.list(), "List[Endpoint]", "endpoints.list")
    local dev = "Stasis:" .. app:gsub("%W", "")
    client.deviceStates.update { deviceName = dev, deviceState = "BUSY" }
    keep(client.deviceStates.get { deviceName = dev }, "DeviceState", "deviceStates.get")
    keep(client.deviceStates.list(), "List[DeviceState]", "deviceStates.list")
    client.deviceStates.delete { deviceName = dev }
    keep(client.applications.get { applicationName = app }, "Application", "applications.get")
    keep(client.applications.list(), "List[Application]", "applications.list")

    -- a call: Local/dtmf@caller, its ;1 half in the app
    local chan = ast.originate(client, "dtmf", app)
    keep(chan, "Channel", "channels.originate")
    local id = chan.id
    ast.poll(function()
      for _, ev in ipairs(events) do if ev.type == "StasisStart" and ev.channel.id == id then return true end end
    end, "StasisStart")
    ch.answer { channelId = id }
    keep(ch.get { channelId = id }, "Channel", "channels.get")
    keep(ch.list(), "List[Channel]", "channels.list")
    ch.setChannelVar { channelId = id, variable = "M18", value = "1" }
    local var -- the channel sets it on its own thread: it may not be there yet
    ast.poll(function()
      local ok, v = pcall(ch.getChannelVar, { channelId = id, variable = "M18" })
      var = ok and v or nil
      return var ~= nil
    end, "the channel variable")
    keep(var, "Variable", "channels.getChannelVar")
    try("caller id", function() ch.setChannelVar { channelId = id, variable = "CALLERID(all)", value = "\"M18\" <555>" } end)
    try("connected line", function()
      ch.setChannelVar { channelId = id, variable = "CONNECTEDLINE(all)", value = "\"Other\" <666>" }
    end)
    -- hold: HOLD_INTERCEPT turns the hold indicated to the channel into events
    ch.setChannelVar { channelId = id, variable = "HOLD_INTERCEPT(set)", value = "" }
    ch.hold { channelId = id }
    ast.poll(function()
      for _, ev in ipairs(events) do if ev.type == "ChannelHold" and ev.channel.id == id then return true end end
    end, "ChannelHold")
    ch.unhold { channelId = id }
    ast.poll(function()
      for _, ev in ipairs(events) do if ev.type == "ChannelUnhold" and ev.channel.id == id then return true end end
    end, "ChannelUnhold")
    client.events.userEvent { eventName = "m18", application = app, source = { "channel:" .. id },
      variables = { fields = { k = "v" } } }
    try("move to a missing app", function() ch.move { channelId = id, app = "no-such-app-" .. app } end)
    -- digits 1 2 3 # arrive from the far end
    ast.poll(function()
      for _, ev in ipairs(events) do
        if ev.type == "ChannelDtmfReceived" and ev.channel.id == id and ev.digit == "#" then return true end
      end
    end, "the far end's digits")
    -- playbacks: one, then a list (PlaybackContinuing between its items)
    local pb = ch.play { channelId = id, media = { "sound:beep", "sound:beep" } }
    keep(pb, "Playback", "channels.play")
    try("playbacks.get", function() keep(client.playbacks.get { playbackId = pb.id }, "Playback", "playbacks.get") end)
    ast.poll(function()
      for _, ev in ipairs(events) do
        if ev.type == "PlaybackFinished" and ev.playback.id == pb.id then return true end
      end
    end, "PlaybackFinished")
    -- a recording, stored
    local rname = "m18-" .. app
    local rec = ch.record { channelId = id, name = rname, format = "wav", maxDurationSeconds = 1, ifExists = "overwrite" }
    keep(rec, "LiveRecording", "channels.record")
    try("recordings.getLive", function()
      keep(client.recordings.getLive { recordingName = rname }, "LiveRecording", "recordings.getLive")
    end)
    ast.poll(function()
      for _, ev in ipairs(events) do
        if (ev.type == "RecordingFinished" or ev.type == "RecordingFailed") and ev.recording.name == rname then
          return true
        end
      end
    end, "RecordingFinished")
    keep(client.recordings.getStored { recordingName = rname }, "StoredRecording", "recordings.getStored")
    keep(client.recordings.listStored(), "List[StoredRecording]", "recordings.listStored")
    client.recordings.deleteStored { recordingName = rname }
    -- talk detection: what we play comes back (Local/echo@caller), then silence
    local talker = ast.originate(client, "echo", app)
    ast.poll(function()
      for _, ev in ipairs(events) do if ev.type == "StasisStart" and ev.channel.id == talker.id then return true end end
    end, "StasisStart of the talker")
    try("talk detect", function()
      ch.setChannelVar { channelId = talker.id, variable = "TALK_DETECT(set)", value = "300" }
      ch.answer { channelId = talker.id }
      local tp = ch.play { channelId = talker.id, media = "sound:hello-world" }
      ast.poll(function()
        for _, ev in ipairs(events) do
          if ev.type == "PlaybackFinished" and ev.playback.id == tp.id then return true end
        end
      end, "the talker's prompt")
      -- silence keeps frames coming back, so the end of talking is seen
      ch.startSilence { channelId = talker.id }
    end)
    -- a bridge: created, joined, left, video source, destroyed
    local br = client.bridges.create { type = "mixing", name = "m18" }
    keep(br, "Bridge", "bridges.create")
    client.bridges.addChannel { bridgeId = br.id, channel = id }
    ast.poll(function()
      for _, ev in ipairs(events) do
        if ev.type == "ChannelEnteredBridge" and ev.channel.id == id then return true end
      end
    end, "ChannelEnteredBridge")
    -- a recording that fails: a channel in a bridge cannot be recorded
    try("a failing recording", function()
      local fname = "m18f-" .. app
      ch.record { channelId = id, name = fname, format = "wav", maxDurationSeconds = 1, ifExists = "overwrite" }
      ast.poll(function()
        for _, ev in ipairs(events) do
          if (ev.type == "RecordingFinished" or ev.type == "RecordingFailed") and ev.recording.name == fname then
            return true
          end
        end
      end, "the failing recording to end")
    end)
    keep(client.bridges.get { bridgeId = br.id }, "Bridge", "bridges.get")
    keep(client.bridges.list(), "List[Bridge]", "bridges.list")
    try("video source", function() client.bridges.setVideoSource { bridgeId = br.id, channelId = id } end)
    client.bridges.removeChannel { bridgeId = br.id, channel = id }
    client.bridges.destroy { bridgeId = br.id }
    -- RTP statistics of an RTP channel (an external media channel)
    try("rtp statistics", function()
      local em = ch.externalMedia { app = app, external_host = "127.0.0.1:9", format = "ulaw" }
      keep(em, "Channel", "channels.externalMedia")
      keep(ch.rtpstatistics { channelId = em.id }, "RTPstat", "channels.rtpstatistics")
      ch.hangup { channelId = em.id }
    end)
    -- the talker talks, then stops
    try("talking finished", function()
      ast.poll(function()
        for _, ev in ipairs(events) do
          if ev.type == "ChannelTalkingFinished" and ev.channel.id == talker.id then return true end
        end
      end, "ChannelTalkingFinished", 30000)
    end)
    try("hang up", function() client.channels.hangup { channelId = id } end)
    try("hang up the talker", function() client.channels.hangup { channelId = talker.id } end)
    -- events (the other connection's events came in on this socket too)
    for _, want in ipairs { { "StasisEnd", id }, { "ChannelDestroyed", id }, { "StasisEnd", talker.id },
      { "ChannelDestroyed", talker.id }, { "ChannelHangupRequest" } } do
      ast.poll(function()
        for _, ev in ipairs(events) do
          if ev.type == want[1] and (want[2] == nil or ev.channel.id == want[2]) then return true end
        end
      end, want[1])
    end
    -- last: a second client for the same app replaces the first (which then hears no more)
    local c2 = ari.connect { url = inst.url, user = inst.user, password = inst.password, app = app, strict = true }
    ast.poll(function()
      for _, ev in ipairs(events) do if ev.type == "ApplicationReplaced" then return true end end
    end, "ApplicationReplaced")
    c2:close()
    for i, ev in ipairs(events) do keep(ev, ev.type, "event " .. i .. " " .. tostring(ev.type)) end
    client:close()
  end, 120000)
  return { seen = c.seen, bad = c.bad, notes = notes }
end

ast.describe("real Asterisk: the 70 models of Asterisk 18 decode from real traffic", function(inst)
  local names = models18()

  it("the schema has the 70 models of Asterisk 18 (those of the seed)", function()
    assert.equals(70, #names)
    local seed = require("spec.support.shared").dir .. "/seed/ari-data-models.txt"
    local f = io.open(seed)
    if f then
      local text = f:read("a")
      f:close()
      for _, n in ipairs(names) do assert.matches("\n" .. n .. "\n", text, 1, true) end
    end
  end)

  it("real traffic: every object decoded is of its model, with typed fields", function()
    result = drive(inst)
    assert.same({}, result.bad)
  end)

  -- produced where the server can; otherwise pending with what it answered
  local MAYBE = {
    RTPstat = { "RTP info not found", "needs a channel with RTP statistics (SIP); this server's external media "
      .. "(UnicastRTP) channel answers 404 RTP info not found" },
  }
  for _, name in ipairs(names) do
    if PENDING[name] then
      pending(name .. ": " .. PENDING[name])
    elseif MAYBE[name] then
      it("decodes " .. name .. " (where the server produces it)", function()
        assert.is_table(result, "the traffic test did not run")
        if not result.seen[name] and table.concat(result.notes, "; "):find(MAYBE[name][1], 1, true) then
          return pending(name .. ": " .. MAYBE[name][2])
        end
        assert.is_true(result.seen[name] == true, name .. " never seen; notes: " .. table.concat(result.notes, "; "))
      end)
    else
      it("decodes " .. name, function()
        assert.is_table(result, "the traffic test did not run")
        assert.is_true(result.seen[name] == true, name .. " never seen; notes: " .. table.concat(result.notes, "; "))
      end)
    end
  end
end)
