-- Scripted ARI flows for the differential check (spec/asterisk/differential_spec.lua):
-- the same code runs against the simulator and against a real Asterisk,
-- through ari.connect (the client), recorded by spec/support/transcript.lua.
--
-- Calls are Local/<exten>@caller channels: the ;1 half ({caller}) enters
-- the app, the ;2 half ({far}) runs the [caller] dialplan of
-- ../shared/asterisk/etc/extensions.conf, which the simulator mirrors in
-- spec/fixtures/sim/caller.lua.
--
--   local flows = require "spec.support.flows"
--   for _, f in ipairs(flows.list) do flows.run(f, url, user, password) -> rec end
local ari = require "ari"
local T = require "spec.support.transcript"

local M = {}

-- the name prefix of the user events Ctx:barrier sends (not compared)
M.BARRIER = "diff-barrier-"

local Ctx = {}
Ctx.__index = Ctx

--- Wait until an event for which pred(ev) holds has been recorded; returns it.
-- A failure guard (limit_ms, default 20000), not a timing assertion.
function Ctx:wait(pred, what, limit_ms)
  local deadline = ari.now() + (limit_ms or 20000)
  while true do
    for _, e in ipairs(self.rec.entries) do
      if e.kind == "event" and pred(e.ev) then return e.ev end
    end
    if ari.now() > deadline then error("timed out waiting for " .. what, 2) end
    ari.sleep(10)
  end
end

--- Wait for an event of type etype about the channel of role (or any).
function Ctx:wait_for(etype, role, extra)
  local id = role and self.rec:id(role)
  return self:wait(function(ev)
    if ev.type ~= etype then return false end
    if id then
      local c = ev.channel or ev.peer
      local pb = ev.playback or ev.recording
      local b = ev.bridge
      local hit = (type(c) == "table" and c.id == id) or (type(pb) == "table" and (pb.id == id or pb.name == id
        or pb.target_uri == "channel:" .. id)) or (type(b) == "table" and b.id == id)
      if not hit then return false end
    end
    return extra == nil or extra(ev)
  end, etype .. " " .. tostring(role), self.limit)
end

--- Wait until the call of role is up: its StasisStart, and its far end
-- (;2, role "far" for "caller", else role.."far") past Answer (Asterisk's
-- Answer() waits up to 500 ms for media before the next priority: waiting
-- for that priority keeps a flow's transcript free of that race).
function Ctx:answered(role)
  self:wait_for("StasisStart", role)
  local far = role == "caller" and "far" or (role .. "far")
  self:wait_for("ChannelDialplan", far, function(ev) return ev.dialplan_app ~= "Answer" end)
end

--- Call fn(...) (a client operation); an error is noted (a parameter
-- error raised before sending is not in the REST transcript).  Returns ok, result.
function Ctx:try(fn, ...)
  local ok, res = pcall(fn, ...)
  if not ok then
    if type(res) == "table" and res.kind == "http" then
      return false, res
    end
    self.rec:note("error %s: %s", type(res) == "table" and tostring(res.kind) or "lua", tostring(res))
    return false, res
  end
  return true, res
end

--- Originate Local/<exten>@caller into the app: ;1 is `role`, ;2 `role`.."far"
-- ("caller" -> "far").
function Ctx:originate(exten, role, params)
  role = role or "caller"
  local p = { endpoint = exten:find("/", 1, true) and exten or ("Local/" .. exten .. "@caller"), app = self.app,
    channelId = self.rec:id(role), otherChannelId = self.rec:id(role == "caller" and "far" or (role .. "far")),
    formats = "ulaw" }
  for k, v in pairs(params or {}) do p[k] = v end
  return self:try(self.client.channels.originate, p)
end

--- Wait until every channel seen in an event has been destroyed.
-- unsubscribed: roles of channels the app is not subscribed to until their
-- end (a snoop channel after StasisEnd): for those, the server is asked.
function Ctx:finish(unsubscribed)
  local ask = {}
  for _, role in ipairs(unsubscribed or {}) do ask[self.rec:id(role)] = true end
  local deadline = ari.now() + (self.limit or 20000)
  while true do
    local live, gone = {}, {}
    for _, e in ipairs(self.rec.entries) do
      local ev = e.kind == "event" and e.ev
      if ev then
        for _, f in ipairs { "channel", "peer" } do
          local c = ev[f]
          if type(c) == "table" and c.id then live[c.id] = true end
        end
        if ev.type == "ChannelDestroyed" then gone[ev.channel.id] = true end
      end
    end
    local left = {}
    for id in pairs(live) do
      -- an app is not always subscribed to a channel until its end (a
      -- snoop or moved channel after StasisEnd): ask the server
      if not gone[id] and ask[id] and not self:exists(id) then gone[id] = true end
      if not gone[id] then left[#left + 1] = id end
    end
    if #left == 0 then return self:barrier() end
    if ari.now() > deadline then error("channels not destroyed: " .. table.concat(left, ", "), 2) end
    ari.sleep(10)
  end
end

--- Wait until every event the server sent the app before now has been
-- recorded: a user event (sent through a client that is not recorded)
-- comes after them on the app's socket; it is left out of the transcript.
function Ctx:barrier()
  local q = self.quiet or ari.connect { url = self.url, user = self.user, password = self.password, events = false }
  self.quiet = q
  local name = M.BARRIER .. tostring(ari.now())
  local apps, seen = {}, {}
  for _, cl in ipairs(self.rec.clients) do
    if not cl._closed and cl.app and not seen[cl.app] then seen[cl.app] = true; apps[#apps + 1] = cl.app end
  end
  for _, app in ipairs(apps) do
    local ok = pcall(q.events.userEvent, { eventName = name, application = app })
    if ok then
      self:wait(function(ev) return ev.type == "ChannelUserevent" and ev.eventname == name
        and ev.application == app end, "the barrier event")
    end
  end
end

--- Does channel id exist (GET /channels/{id} on a client that is not recorded)?
function Ctx:exists(id)
  local q = self.quiet or ari.connect { url = self.url, user = self.user, password = self.password, events = false }
  self.quiet = q
  return (pcall(q.channels.get, { channelId = id }))
end

--- Wait (polling GET /channels/{id} on a client that is not recorded)
-- until the channel of role is gone.
function Ctx:gone(role)
  local id = self.rec:id(role)
  local q = self.quiet or ari.connect { url = self.url, user = self.user, password = self.password, events = false }
  self.quiet = q
  local deadline = ari.now() + (self.limit or 20000)
  while pcall(q.channels.get, { channelId = id }) do
    if ari.now() > deadline then error("channel " .. role .. " still there", 2) end
    ari.sleep(20)
  end
end

--- Hang up a channel role (errors noted) and wait for its ChannelDestroyed.
function Ctx:hangup(role)
  self:try(self.client.channels.hangup, { channelId = self.rec:id(role) })
end

--- Collect DTMF of role until one of terminators or max digits.
function Ctx:get_digits(role, max, terminators)
  local id = self.rec:id(role)
  local digits = ""
  local deadline = ari.now() + (self.limit or 20000)
  local seen = 0
  while ari.now() < deadline do
    local evs = self.rec:events(function(ev)
      return ev.type == "ChannelDtmfReceived" and ev.channel.id == id
    end)
    for i = seen + 1, #evs do
      local d = evs[i].digit
      seen = i
      if terminators and terminators:find(d, 1, true) then return digits, d end
      digits = digits .. d
      if max and #digits >= max then return digits end
    end
    ari.sleep(10)
  end
  return digits, "timeout"
end

-- The flows ------------------------------------------------------------------

local F = {}

F[#F + 1] = { name = "answer, play, hang up", run = function(c)
  c:originate("s")
  c:answered("caller")
  c:try(c.client.channels.answer, { channelId = c.rec:id("caller") })
  c:try(c.client.channels.play, { channelId = c.rec:id("caller"), media = "sound:hello-world",
    playbackId = c.rec:id("pb") })
  c:wait_for("PlaybackFinished", "pb")
  c:hangup("caller")
  c:finish()
end }

F[#F + 1] = { name = "inbound ringing call answered by the app", run = function(c)
  -- Local/<app>@stasis-app: ;2 enters the app ringing; ;1 waits for it
  c:originate("Local/" .. c.app .. "@stasis-app", "caller")
  c:wait_for("StasisStart", "far")
  c:try(c.client.channels.ring, { channelId = c.rec:id("far") })
  c:try(c.client.channels.answer, { channelId = c.rec:id("far") })
  c:wait_for("StasisStart", "caller")
  c:hangup("far")
  c:finish()
end }

F[#F + 1] = { name = "DTMF from the far end, get digits", run = function(c)
  c:originate("dtmf")
  c:answered("caller")
  local digits, term = c:get_digits("caller", 8, "#")
  c.rec:note("digits %s terminator %s", digits, tostring(term))
  -- the far end's next priority comes 250 ms after the last digit: wait for
  -- it rather than race it
  c:wait_for("ChannelDialplan", "far", function(ev) return ev.dialplan_app_data == "20" end)
  c:hangup("caller")
  c:finish()
end }

F[#F + 1] = { name = "originate answered", run = function(c)
  c:originate("s", "caller", { timeout = 10 })
  c:answered("caller")
  c:hangup("caller")
  c:finish()
end }

for _, o in ipairs { { "busy", "busy" }, { "congestion", "congestion" } } do
  F[#F + 1] = { name = "originate " .. o[1], run = function(c)
    c:originate(o[2], "caller", { timeout = 10 })
    c:wait_for("ChannelDestroyed", "caller")
    c:finish()
  end }
end

F[#F + 1] = { name = "originate ringing, timeout (no answer)", run = function(c)
  c:originate("ring", "caller", { timeout = 2 })
  c:wait_for("ChannelDestroyed", "caller")
  c:finish()
end }

F[#F + 1] = { name = "originate to an endpoint that does not exist", run = function(c)
  c:originate("Nonexistent/foo", "caller", { timeout = 5 })
  c:originate("Local/nosuchexten@nosuchcontext", "other", { timeout = 5 })
  c:gone("other")
  c:finish()
end }

F[#F + 1] = { name = "originate, far end hangs up at once", run = function(c)
  c:originate("hangup", "caller", { timeout = 10 })
  c:wait_for("ChannelDestroyed", "caller")
  c:finish()
end }

F[#F + 1] = { name = "far end hangs up after answer", run = function(c)
  c:originate("short", "caller", { timeout = 10 })
  c:answered("caller")
  c:wait_for("ChannelDestroyed", "caller")
  c:finish()
end }

F[#F + 1] = { name = "bridge two channels, leave, destroy", run = function(c)
  local cl = c.client
  c:originate("s", "caller")
  c:originate("wait", "peer")
  c:answered("caller")
  c:answered("peer")
  local bid = c.rec:id("bridge")
  c:try(cl.bridges.createWithId, { bridgeId = bid, type = "mixing" })
  c:try(cl.bridges.addChannel, { bridgeId = bid, channel = c.rec:id("caller") })
  c:wait_for("ChannelEnteredBridge", "caller")
  c:try(cl.bridges.addChannel, { bridgeId = bid, channel = c.rec:id("peer") })
  c:wait_for("ChannelEnteredBridge", "peer")
  c:try(cl.bridges.removeChannel, { bridgeId = bid, channel = c.rec:id("peer") })
  c:wait_for("ChannelLeftBridge", "peer")
  c:try(cl.bridges.removeChannel, { bridgeId = bid, channel = c.rec:id("peer") })
  c:try(cl.bridges.destroy, { bridgeId = bid })
  c:wait_for("ChannelLeftBridge", "caller")
  c:try(cl.bridges.get, { bridgeId = bid })
  c:hangup("caller")
  c:hangup("peer")
  c:finish()
end }

F[#F + 1] = { name = "bridge: a channel hangs up in it, destroyed with the other inside", run = function(c)
  local cl = c.client
  c:originate("s", "caller")
  c:originate("wait", "peer")
  c:answered("caller")
  c:answered("peer")
  local bid = c.rec:id("bridge")
  c:try(cl.bridges.createWithId, { bridgeId = bid, type = "mixing" })
  c:try(cl.bridges.addChannel, { bridgeId = bid, channel = { c.rec:id("caller"), c.rec:id("peer") } })
  c:wait_for("ChannelEnteredBridge", "peer")
  c:wait_for("ChannelEnteredBridge", "caller")
  c:hangup("peer")
  c:wait_for("ChannelDestroyed", "peer")
  c:try(cl.bridges.destroy, { bridgeId = bid })
  c:wait_for("ChannelLeftBridge", "caller")
  c:hangup("caller")
  c:finish()
end }

F[#F + 1] = { name = "record real audio (music on hold far end)", run = function(c)
  local cl = c.client
  c:originate("moh")
  c:answered("caller")
  local name = c.rec:id("rec")
  c:try(cl.channels.record, { channelId = c.rec:id("caller"), name = name, format = "wav",
    maxDurationSeconds = 2, maxSilenceSeconds = 1, ifExists = "overwrite" })
  local fin = c:wait_for("RecordingFinished", "rec")
  c.rec:note("recording duration %s", (tonumber(fin.recording.duration) or 0) > 0 and ">0" or "0")
  local ok, st = c:try(cl.recordings.getStored, { recordingName = name })
  if ok then c.rec:note("stored format %s", tostring(st.format)) end
  c:try(cl.recordings.deleteStored, { recordingName = name })
  c:try(cl.recordings.getStored, { recordingName = name })
  c:hangup("caller")
  c:finish()
end }

F[#F + 1] = { name = "record a silent caller", run = function(c)
  local cl = c.client
  c:originate("s")
  c:answered("caller")
  local name = c.rec:id("rec")
  c:try(cl.channels.record, { channelId = c.rec:id("caller"), name = name, format = "wav",
    maxDurationSeconds = 10, maxSilenceSeconds = 1, ifExists = "overwrite" })
  c:wait_for("RecordingFinished", "rec")
  c:try(cl.recordings.deleteStored, { recordingName = name })
  c:hangup("caller")
  c:finish()
end }

F[#F + 1] = { name = "play an unknown media scheme and a missing sound", run = function(c)
  local cl = c.client
  c:originate("s")
  c:answered("caller")
  c:try(cl.channels.play, { channelId = c.rec:id("caller"), media = "nosuchscheme:foo", playbackId = c.rec:id("pb1") })
  c:try(cl.channels.play, { channelId = c.rec:id("caller"), media = "sound:no-such-sound-here",
    playbackId = c.rec:id("pb2") })
  c:wait_for("PlaybackFinished", "pb2")
  c:try(cl.playbacks.get, { playbackId = c.rec:id("pb1") })
  c:hangup("caller")
  c:finish()
end }

F[#F + 1] = { name = "channel variables", run = function(c)
  local cl = c.client
  c:originate("s")
  c:answered("caller")
  local id = c.rec:id("caller")
  c:try(cl.channels.setChannelVar, { channelId = id, variable = "DIFFVAR", value = "hello" })
  local ok, v = c:try(cl.channels.getChannelVar, { channelId = id, variable = "DIFFVAR" })
  if ok then c.rec:note("DIFFVAR=%s", tostring(v.value)) end
  c:try(cl.channels.setChannelVar, { channelId = id, variable = "DIFFVAR" })
  ok, v = c:try(cl.channels.getChannelVar, { channelId = id, variable = "DIFFVAR" })
  if ok then c.rec:note("DIFFVAR after unset=%s", tostring(v.value)) end
  c:try(cl.channels.getChannelVar, { channelId = id, variable = "NEVER_SET_VAR" })
  ok, v = c:try(cl.channels.getChannelVar, { channelId = id, variable = "CALLERID(num)" })
  if ok then c.rec:note("CALLERID(num)=%s", tostring(v.value)) end
  c:try(cl.channels.setChannelVar, { channelId = id, variable = "CALLERID(num)", value = "555" })
  c:hangup("caller")
  c:finish()
end }

F[#F + 1] = { name = "hold, mute, moh, silence", run = function(c)
  local cl = c.client
  c:originate("s")
  c:answered("caller")
  local id = c.rec:id("caller")
  c:try(cl.channels.hold, { channelId = id })
  c:try(cl.channels.unhold, { channelId = id })
  c:try(cl.channels.mute, { channelId = id, direction = "both" })
  c:try(cl.channels.unmute, { channelId = id, direction = "both" })
  c:try(cl.channels.startMoh, { channelId = id })
  c:try(cl.channels.stopMoh, { channelId = id })
  c:try(cl.channels.startSilence, { channelId = id })
  c:try(cl.channels.stopSilence, { channelId = id })
  c:hangup("caller")
  c:finish()
end }

F[#F + 1] = { name = "error cases 404 409 412 400", run = function(c)
  local cl = c.client
  local nochan, nobridge, nopb = c.rec:id("nochan"), c.rec:id("nobridge"), c.rec:id("nopb")
  c:try(cl.channels.answer, { channelId = nochan })
  c:try(cl.channels.get, { channelId = nochan })
  c:try(cl.channels.hangup, { channelId = nochan })
  c:try(cl.bridges.get, { bridgeId = nobridge })
  c:try(cl.bridges.addChannel, { bridgeId = nobridge, channel = nochan })
  c:try(cl.playbacks.get, { playbackId = nopb })
  c:try(cl.playbacks.control, { playbackId = nopb, operation = "pause" })
  c:try(cl.playbacks.stop, { playbackId = nopb })
  c:try(cl.recordings.getLive, { recordingName = nopb })
  -- 412: a channel still ringing; 409: its ;2 half, which is not in Stasis
  c:originate("ring", "caller", { timeout = 10 })
  c:wait(function(ev) return ev.type == "Dial" and ev.dialstatus == "RINGING" end, "ringing")
  c:try(cl.channels.play, { channelId = c.rec:id("caller"), media = "sound:beep" })
  c:try(cl.channels.answer, { channelId = c.rec:id("far") })
  c:try(cl.channels.play, { channelId = c.rec:id("far"), media = "sound:beep" })
  -- 412: a channel in Stasis that is not answered (created, not dialled)
  c:try(cl.channels.create, { endpoint = "Local/s@caller", app = c.app, channelId = c.rec:id("created"),
    otherChannelId = c.rec:id("createdfar") })
  c:wait_for("StasisStart", "created")
  c:try(cl.channels.play, { channelId = c.rec:id("created"), media = "sound:beep" })
  c:try(cl.channels.answer, { channelId = c.rec:id("created") })
  c:try(cl.channels.sendDTMF, { channelId = c.rec:id("created"), dtmf = "1" })
  c:hangup("created")
  -- 400
  c:try(cl.channels.hangup, { channelId = c.rec:id("caller"), reason = "normal", reason_code = "16" })
  c:try(cl.channels.originate, { endpoint = "Local/s", app = c.app, extension = "s",
    channelId = c.rec:id("appext"), otherChannelId = c.rec:id("appextfar") })
  c:try(cl.channels.sendDTMF, { channelId = c.rec:id("caller") })
  c:hangup("caller")
  c:finish()
end }

F[#F + 1] = { name = "a second app of the same name (ApplicationReplaced)", run = function(c)
  local first = c.client
  local second = c.rec:connect(c.url, c.user, c.password, { app = c.app, label = "second" })
  c:wait(function(ev) return ev.type == "ApplicationReplaced" end, "ApplicationReplaced")
  -- the app now lives on the second connection; the first stays open
  -- (it is not closed by the server, so it does not reconnect)
  c:try(second.channels.originate, { endpoint = "Local/s@caller", app = c.app, channelId = c.rec:id("caller"),
    otherChannelId = c.rec:id("far"), formats = "ulaw" })
  c:answered("caller")
  c:try(second.channels.hangup, { channelId = c.rec:id("caller") })
  c:finish()
  c.rec:note("connects: first %d, second %d", first.stats.connects, second.stats.connects)
end }

F[#F + 1] = { name = "originate with a caller id", run = function(c)
  c:originate("s", "caller", { callerId = '"Alice" <1000>' })
  c:answered("caller")
  local ok, ch = c:try(c.client.channels.get, { channelId = c.rec:id("caller") })
  if ok then c.rec:note("caller %s <%s>, connected %s <%s>", ch.caller.name, ch.caller.number,
    ch.connected.name, ch.connected.number) end
  c:try(c.client.channels.setChannelVar, { channelId = c.rec:id("caller"), variable = "CONNECTEDLINE(num)",
    value = "2000" })
  c:hangup("caller")
  c:finish()
end }

F[#F + 1] = { name = "create, dial, answer by the far end", run = function(c)
  local cl = c.client
  c:try(cl.channels.create, { endpoint = "Local/s@caller", app = c.app, channelId = c.rec:id("caller"),
    otherChannelId = c.rec:id("far"), formats = "ulaw" })
  c:wait_for("StasisStart", "caller")
  c:try(cl.channels.dial, { channelId = c.rec:id("caller"), timeout = 10 })
  c:wait_for("Dial", "caller", function(ev) return ev.dialstatus == "ANSWER" end)
  c:try(cl.channels.dial, { channelId = c.rec:id("caller") })
  c:hangup("caller")
  c:finish()
end }

F[#F + 1] = { name = "play a list, stop a playback", run = function(c)
  local cl = c.client
  c:originate("s")
  c:answered("caller")
  c:try(cl.channels.play, { channelId = c.rec:id("caller"), media = { "sound:beep", "digits:12" },
    playbackId = c.rec:id("list") })
  c:wait_for("PlaybackFinished", "list")
  c:try(cl.channels.play, { channelId = c.rec:id("caller"), media = "sound:silence/10", playbackId = c.rec:id("long") })
  c:wait_for("PlaybackStarted", "long")
  c:try(cl.playbacks.control, { playbackId = c.rec:id("long"), operation = "pause" })
  c:try(cl.playbacks.stop, { playbackId = c.rec:id("long") })
  c:wait_for("PlaybackFinished", "long")
  c:hangup("caller")
  c:finish()
end }

F[#F + 1] = { name = "an app subscribed to all (subscribeAll)", run = function(c)
  local obs = c.rec:connect(c.url, c.user, c.password, { app = c.rec:app("observer"), subscribe_all = true,
    label = "observer" })
  local deadline = ari.now() + 10000
  while obs.stats.connects == 0 and ari.now() < deadline do ari.sleep(5) end
  c:originate("s")
  c:answered("caller")
  local bid = c.rec:id("bridge")
  c:try(c.client.bridges.createWithId, { bridgeId = bid, type = "mixing" })
  c:try(c.client.bridges.destroy, { bridgeId = bid })
  c:hangup("caller")
  c:finish()
end }

F[#F + 1] = { name = "continue in the dialplan", run = function(c)
  c:originate("s")
  c:answered("caller")
  c:try(c.client.channels.continueInDialplan, { channelId = c.rec:id("caller"), context = "caller",
    extension = "short", priority = 1 })
  c:wait_for("StasisEnd", "caller")
  c:finish()
end }

F[#F + 1] = { name = "move to another app, then to one that is not there", run = function(c)
  local other = c.rec:connect(c.url, c.user, c.password, { app = c.rec:app("other"), label = "other" })
  local deadline = ari.now() + 10000
  while other.stats.connects == 0 and ari.now() < deadline do ari.sleep(5) end
  c:originate("s")
  c:answered("caller")
  c:try(c.client.channels.move, { channelId = c.rec:id("caller"), app = c.rec:app("other"), appArgs = "x,y" })
  c:wait(function(ev) return ev.type == "StasisStart" and ev.application == c.rec:app("other") end, "moved")
  c:try(other.channels.move, { channelId = c.rec:id("caller"), app = c.rec:app("nobody") })
  c:wait(function(ev) return ev.type == "ApplicationMoveFailed" end, "ApplicationMoveFailed")
  c:try(other.channels.hangup, { channelId = c.rec:id("caller") })
  c:finish()
end }

F[#F + 1] = { name = "snoop on a channel", run = function(c)
  local cl = c.client
  c:originate("s")
  c:answered("caller")
  c:try(cl.channels.snoopChannelWithId, { channelId = c.rec:id("caller"), snoopId = c.rec:id("snoop"),
    app = c.app, spy = "in" })
  c:wait_for("StasisStart", "snoop")
  c:try(cl.channels.snoopChannel, { channelId = c.rec:id("caller"), app = c.app })
  c:hangup("snoop")
  c:hangup("caller")
  c:finish { "snoop" }
end }

F[#F + 1] = { name = "talk detection while the far end plays", run = function(c)
  c:originate("playback")
  c:wait_for("StasisStart", "caller")
  c:try(c.client.channels.setChannelVar, { channelId = c.rec:id("caller"), variable = "TALK_DETECT(set)",
    value = "" })
  -- the far end plays hello-world and hangs up
  c:wait_for("ChannelDestroyed", "caller")
  c:finish()
end }

F[#F + 1] = { name = "record until the far end presses #", run = function(c)
  local cl = c.client
  c:originate("dtmf")
  c:wait_for("StasisStart", "caller")
  local name = c.rec:id("rec")
  c:try(cl.channels.record, { channelId = c.rec:id("caller"), name = name, format = "wav",
    maxDurationSeconds = 15, terminateOn = "#", ifExists = "overwrite" })
  local fin = c:wait_for("RecordingFinished", "rec")
  c.rec:note("recording duration %s", (tonumber(fin.recording.duration) or 0) > 0 and ">0" or "0")
  c:wait_for("ChannelDialplan", "far", function(ev) return ev.dialplan_app_data == "20" end)
  c:try(cl.recordings.deleteStored, { recordingName = name })
  c:hangup("caller")
  c:finish()
end }

F[#F + 1] = { name = "the far end hangs up during a playback", run = function(c)
  c:originate("short")
  c:wait_for("StasisStart", "caller")
  c:try(c.client.channels.play, { channelId = c.rec:id("caller"), media = "sound:silence/10",
    playbackId = c.rec:id("pb") })
  c:wait_for("PlaybackFinished", "pb")
  c:finish()
end }

F[#F + 1] = { name = "the app hangs up during a playback and a recording", run = function(c)
  c:originate("moh")
  c:answered("caller")
  c:try(c.client.channels.play, { channelId = c.rec:id("caller"), media = "sound:silence/10",
    playbackId = c.rec:id("pb") })
  c:wait_for("PlaybackStarted", "pb")
  c:try(c.client.channels.record, { channelId = c.rec:id("caller"), name = c.rec:id("rec"), format = "wav",
    maxDurationSeconds = 30, ifExists = "overwrite" })
  c:wait_for("RecordingStarted", "rec")
  c:hangup("caller")
  c:wait_for("PlaybackFinished", "pb")
  c:wait_for("RecordingFinished", "rec")
  c:try(c.client.recordings.deleteStored, { recordingName = c.rec:id("rec") })
  c:finish()
end }

F[#F + 1] = { name = "external media (rtp) bridged with a caller, and externalMedia's checks", run = function(c)
  local cl = c.client
  c:originate("moh", "caller")
  c:answered("caller")
  -- Asterisk's checks, in its order (the client sends what its own checks
  -- let through), as 20 and later make them: 18's are older (other words,
  -- no transport checks: a channel would be made), so they are not sent there
  local q = c.quiet or ari.connect { url = c.url, user = c.user, password = c.password, events = false }
  c.quiet = q
  local got, info = pcall(q.asterisk.getInfo)
  local major = got and tonumber(tostring(info.system and info.system.version or ""):match("^(%d+)")) or 22
  if major >= 20 then
    c:try(cl.channels.externalMedia, { app = c.app, format = "ulaw" })
    c:try(cl.channels.externalMedia, { app = c.app, format = "ulaw", external_host = "127.0.0.1" })
    c:try(cl.channels.externalMedia, { app = c.app, format = "ulaw", external_host = "127.0.0.1:9", transport = "tcp" })
    c:try(cl.channels.externalMedia, { app = c.app, format = "ulaw", external_host = "127.0.0.1:9",
      encapsulation = "audiosocket", transport = "tcp" })
    c:try(cl.channels.externalMedia, { app = c.app, format = "ulaw", external_host = "127.0.0.1:9",
      connection_type = "server" })
  end
  -- RTP to the discard port: the channel enters the app with data as its args
  c:try(cl.channels.externalMedia, { app = c.app, format = "ulaw", external_host = "127.0.0.1:9",
    channelId = c.rec:id("ext"), data = "x" })
  c:wait_for("StasisStart", "ext")
  local bid = c.rec:id("bridge")
  c:try(cl.bridges.createWithId, { bridgeId = bid, type = "mixing" })
  c:try(cl.bridges.addChannel, { bridgeId = bid, channel = c.rec:id("caller") .. "," .. c.rec:id("ext") })
  c:wait_for("ChannelEnteredBridge", "ext")
  c:hangup("ext")
  c:try(cl.bridges.destroy, { bridgeId = bid })
  c:wait_for("ChannelLeftBridge", "caller")
  c:hangup("caller")
  c:finish()
end }

F[#F + 1] = { name = "external media over a WebSocket (chan_websocket, server), closed by the app", run = function(c)
  local cl = c.client
  local q = c.quiet or ari.connect { url = c.url, user = c.user, password = c.password, events = false }
  c.quiet = q
  local got, info = pcall(q.asterisk.getInfo)
  local major = got and tonumber(tostring(info.system and info.system.version or ""):match("^(%d+)")) or 22
  if major < 20 then c:finish() return end -- no chan_websocket before 20
  local ok, ch = c:try(cl.channels.externalMedia, { app = c.app, format = "slin16", transport = "websocket",
    encapsulation = "none", connection_type = "server", channelId = c.rec:id("ext"), data = "d" })
  if not ok then c:finish() return end
  c:wait_for("Dial", "ext")
  -- the app's end of the media connection: /media/<id> on the server's HTTP port
  local url = c.url:gsub("^http", "ws"):gsub("/ari/?$", "") .. "/media/" .. ch.channelvars.MEDIA_WEBSOCKET_CONNECTION_ID
  local msgs = {}
  local conn = require("ari.ws").connect { url = url, protocol = "media", reconnect = false,
    on_message = function(text, binary) if not binary then msgs[#msgs + 1] = text end end,
    on_close = function() end, on_error = function() end }
  local opened = conn:wait_open(5000)
  c.rec:note("media connection %s", opened and "open" or "refused")
  if opened then
    c:wait_for("StasisStart", "ext")
    conn:send("GET_STATUS")
    local deadline = ari.now() + 5000
    while #msgs < 2 and ari.now() < deadline do ari.sleep(10) end
    c.rec:note("first %s", tostring((msgs[1] or ""):match("^(%S+)")))
    c.rec:note("then %s", tostring((msgs[2] or ""):gsub(" channel_id:%S+", "")))
    conn:close()
    c:wait_for("ChannelDestroyed", "ext")
  else
    conn:close()
    c:hangup("ext")
  end
  c:finish()
end }

M.list = F

--- Run one flow against the server at url; returns the recorder.
function M.run(flow, url, user, password, limit_ms)
  local rec = T.recorder("df")
  local ctx = setmetatable({ rec = rec, url = url, user = user, password = password, app = rec:app(),
    limit = limit_ms or 20000 }, Ctx)
  ctx.client = rec:connect(url, user, password, { app = ctx.app })
  local deadline = ari.now() + 10000
  while ctx.client.stats.connects == 0 do
    if ari.now() > deadline then error("events socket did not connect", 0) end
    ari.sleep(5)
  end
  -- the flow's client may have been replaced: originate through the newest one
  local ok, err = pcall(flow.run, setmetatable({}, { __index = function(_, k)
    if k == "client" then
      local cs = rec.clients
      for i = 1, #cs do if not cs[i]._closed then return cs[i] end end
      return ctx.client
    end
    return ctx[k]
  end }))
  rec:close()
  if not ok then rec.error = tostring(err) end
  return rec
end

return M
