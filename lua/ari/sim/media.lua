-- ari.sim.media: playbacks, live and stored recordings, sounds.
-- A module of Sim methods, route handlers (<resource>_<nickname>) and an
-- init hook, installed by ari.sim (init.lua).
local json = require "ari.sim.json"
local util = require "ari.sim.util"
local channels = require "ari.sim.channels"
local bridges = require "ari.sim.bridges"
local obj, arr = json.obj, json.arr
local err_body = util.err_body
local get_bridge = bridges.get_bridge

-- Durations (ms) of the built-in sounds; any other known sound lasts 1 s.
local DURATIONS = {
  ["hello-world"] = 1440, beep = 250, ["demo-congrats"] = 2760, ["tt-monkeys"] = 2000,
  ["tt-weasels"] = 2500, ["demo-thanks"] = 2200, ["vm-goodbye"] = 900, ["vm-intro"] = 3000,
  ["conf-onlyperson"] = 2000, ["pbx-invalid"] = 1500, ["pbx-transfer"] = 1200,
  ["auth-thankyou"] = 1000, ["tone-1000hz"] = 1000,
}
local FORMATS = { wav = true, WAV = true, wav49 = true, gsm = true, ulaw = true, alaw = true,
  sln = true, slin = true, g722 = true, g729 = true, ogg = true, h263 = true, h264 = true,
  siren7 = true, siren14 = true, g726 = true, ilbc = true, speex = true, mp3 = true }

-- The sounds a stock Asterisk 22 install (core sounds, en) lists in
-- /sounds, as seen in the captured samples.
local SOUND_IDS = {}
for id in ([[auth-thankyou beep conf-onlyperson demo-congrats demo-thanks
  digits/0 digits/1 digits/2 digits/3 digits/4 digits/5 digits/6 digits/7 digits/8 digits/9
  digits/10 digits/11 digits/12 digits/13 digits/14 digits/15 digits/16 digits/17 digits/18
  digits/19 digits/20 digits/30 digits/40 digits/50 digits/60 digits/70 digits/80 digits/90
  digits/hundred digits/million digits/minus digits/pound digits/star digits/thousand
  hello-world pbx-invalid pbx-transfer tone-1000hz tt-monkeys tt-weasels vm-goodbye vm-intro]]):gmatch("%S+") do
  SOUND_IDS[#SOUND_IDS + 1] = id
end
for c in ("abcdefghijklmnopqrstuvwxyz"):gmatch(".") do SOUND_IDS[#SOUND_IDS + 1] = "letters/" .. c end
for n = 1, 10 do SOUND_IDS[#SOUND_IDS + 1] = "silence/" .. n end
table.sort(SOUND_IDS)

local function init_media(self, opts)
  self.sounds = {}
  for _, id in ipairs(SOUND_IDS) do
    self.sounds[id] = DURATIONS[id] or (id:match("^silence/(%d+)$") and tonumber(id:match("%d+")) * 1000) or
      (id:match("^letters/") and 900) or 1000
  end
  if opts.sounds then for k, v in pairs(opts.sounds) do self.sounds[k] = v end end
end

--- Duration of one media URI in ms; nil when it cannot be played;
-- math.huge for tones (until stopped).
local function media_duration(self, uri, lang)
  local scheme, rest = uri:match("^(%a+):(.*)$")
  if not scheme then return nil end
  if scheme == "sound" then return self.sounds[rest] end
  if scheme == "recording" then
    local r = self.stored_recordings[rest]
    return r and math.max(r.duration_ms, 1) or nil
  end
  if scheme == "digits" then
    if not rest:match("^[0-9%*#A-Da-d%-]+$") then return nil end
    return #rest * 1000
  end
  if scheme == "characters" then return #rest * 900 end
  if scheme == "number" then
    local n = tonumber(rest)
    if not n then return nil end
    -- roughly one sound file per spoken word
    local words = 0
    n = math.abs(math.floor(n))
    if n == 0 then words = 1 end
    while n > 0 do
      local part = n % 1000
      if part >= 100 then words = words + 2 end
      if part % 100 > 0 then words = words + ((part % 100 > 20 and part % 10 > 0) and 2 or 1) end
      n = n // 1000
      if n > 0 then words = words + 1 end
    end
    return words * 1000
  end
  if scheme == "tone" then return math.huge end
  return nil
end

local function playback_json(self, pb)
  return obj { "id", pb.id, "media_uri", pb.media[pb.idx], "next_media_uri", pb.media[pb.idx + 1],
    "target_uri", pb.target_uri, "language", pb.language, "state", pb.state }
end

-- the channel or bridge a playback or recording is on (nil once it is gone)
local function target_of(sim, o)
  return o.target_kind == "channel" and sim.channels[o.target_id] or sim.bridges[o.target_id]
end

local function target_subs(sim, pb)
  local t = target_of(sim, pb)
  return t and t.subs or pb.subs
end

local function pb_event(self, pb, etype)
  self:deliver(etype, { "playback", self:playback_json(pb) }, self:targets(target_subs(self, pb)), pb.call)
end

local start_next

local function finish(sim, pb, state)
  if pb.state == "done" or pb.state == "failed" then return end
  if pb.timer then pb.timer.stop(); pb.timer = nil end
  pb.state = state or "done"
  sim.playbacks[pb.id] = nil
  local q = pb.queue
  if q then
    for i, x in ipairs(q) do if x == pb then table.remove(q, i) break end end
    if q.current == pb then q.current = nil end
  end
  sim:pb_event(pb, "PlaybackFinished")
  if sim.on_playback_finished then sim.on_playback_finished(pb) end
  local t = pb.target_kind == "channel" and sim.channels[pb.target_id]
  if t then
    t.playbacks_done = (t.playbacks_done or 0) + 1
    sim:wake_far(t, "playback")
  end
  if q and q.current == nil and q[1] then
    -- the next queued playback starts a moment later
    sim:after(0, function() start_next(sim, q) end)
  end
end

-- Schemes Asterisk plays; an item with another scheme, a recording that
-- does not exist or a number that is not one is skipped: it has its
-- PlaybackStarted but no final update (res_stasis_playback's `continue`),
-- so a playback of only such items ends with no PlaybackFinished.
local SCHEMES = { sound = true, recording = true, number = true, digits = true, characters = true, tone = true }
local function item_duration(sim, uri, lang)
  local scheme, rest = uri:match("^(%a+):(.*)$")
  if not scheme or not SCHEMES[scheme] then return "skip" end
  if scheme == "recording" and not sim.stored_recordings[rest] then return "skip" end
  if scheme == "number" and not tonumber(rest:match("^%s*([-+]?%d+)") or "") then return "skip" end
  return sim:media_duration(uri, lang)
end

-- A playback whose last item was skipped: it goes without an event.
local function vanish(sim, pb)
  if pb.timer then pb.timer.stop(); pb.timer = nil end
  sim.playbacks[pb.id] = nil
  local q = pb.queue
  if q then
    for i, x in ipairs(q) do if x == pb then table.remove(q, i) break end end
    if q.current == pb then q.current = nil end
    if q.current == nil and q[1] then sim:after(0, function() start_next(sim, q) end) end
  end
end

-- Play item pb.idx from offset `from` (ms).
local function play_item(sim, pb, from)
  local dur = item_duration(sim, pb.media[pb.idx], pb.language)
  pb.item_dur = dur
  pb.pos = from or 0
  pb.item_start = sim:elapsed()
  local function next_item()
    pb.idx = pb.idx + 1
    pb.state = "playing"
    sim:pb_event(pb, "PlaybackStarted")
    play_item(sim, pb, 0)
  end
  local function item_done(final)
    if pb.media[pb.idx + 1] then
      pb.state = "continuing"
      sim:pb_event(pb, "PlaybackContinuing")
      next_item()
    else
      finish(sim, pb, final)
    end
  end
  if dur == "skip" then
    if pb.media[pb.idx + 1] then return next_item() end
    return vanish(sim, pb)
  end
  if dur == nil then
    -- the file cannot be found: this item fails
    return item_done("failed")
  end
  if dur == math.huge then return end
  pb.timer = sim:after(math.max(0, dur - pb.pos), function()
    pb.timer = nil
    item_done("done")
  end)
end

function start_next(sim, q)
  local pb = q[1]
  if pb == nil or q.current then return end
  q.current = pb
  pb.state = "playing"
  sim:pb_event(pb, "PlaybackStarted")
  -- (calls helper) wake a far end waiting in `wait_playback_start`
  local t = pb.target_kind == "channel" and sim.channels[pb.target_id]
  if t and t.far_waiters then sim:wake_far(t, "playback_start") end
  play_item(sim, pb, pb.offsetms or 0)
end

--- Start a playback on a channel or bridge (after the 201 is sent).
local function start_playback(self, kind, target, media_list, p)
  local pb = {
    id = (p.playbackId and p.playbackId ~= "") and p.playbackId or self:uniqueid_uuid(),
    media = media_list, idx = 1, target_kind = kind, target_id = target.id,
    target_uri = kind .. ":" .. target.id, language = p.lang or target.language or "en",
    state = "queued", offsetms = p.offsetms, skipms = p.skipms or 3000, call = target.call,
    subs = target.subs,
  }
  self.playbacks[pb.id] = pb
  if self.keep then self.pb_call[pb.id] = pb.call end
  target.playq = target.playq or {}
  local q = target.playq
  q[#q + 1] = pb
  pb.queue = q
  local snap = self:playback_json(pb)
  self:after(0, function() if q.current == nil then start_next(self, q) end end)
  return pb, snap
end

--- The channel is going: its playbacks end (PlaybackFinished `done` when
-- the app hung it up, `failed` when the far end did: the stream was cut,
-- as Asterisk reports it), its recordings finish.
local function stop_channel_media(self, ch, by_app)
  local q = ch.playq
  if q then
    while q[1] do
      local pb = q[1]
      if pb.state == "queued" then
        table.remove(q, 1); self.playbacks[pb.id] = nil
      else
        q.current = nil
        pb.queue = nil
        table.remove(q, 1)
        if pb.timer then pb.timer.stop(); pb.timer = nil end
        pb.state = by_app and "done" or "failed"
        self.playbacks[pb.id] = nil
        self:pb_event(pb, "PlaybackFinished")
      end
    end
  end
  for _, rec in pairs(self.live_recordings) do
    if rec.target_kind == "channel" and rec.target_id == ch.id then self:finish_recording(rec, "done") end
  end
end

local function uniqueid_uuid(self)
  local n = self:seq("uuid")
  return string.format("%08x-%04x-4%03x-a%03x-%012x", (self.epoch0 // 1000) & 0xffffffff,
    n & 0xffff, (n >> 4) & 0xfff, n & 0xfff, n + 0x5eed0000)
end

local function split_media(s)
  local t = {}
  for m in s:gmatch("[^,]+") do t[#t + 1] = m end
  return t
end

-- Handlers ------------------------------------------------------------------
local function play(sim, kind, target, p)
  if p.media == nil or p.media == "" then return 400, err_body("Missing parameter media") end
  if p.playbackId and p.playbackId ~= "" and sim.playbacks[p.playbackId] then
    return 409, err_body("Playback with the given ID already exists")
  end
  local _, snap = sim:start_playback(kind, target, split_media(p.media), p)
  return 201, snap, { location = "/playbacks/" .. snap.id }
end

-- The announcer or recorder channel Asterisk puts in a bridge to play or
-- record stays there, in Stasis: the apps that joined the bridge stay
-- subscribed to it (BridgeDestroyed).
local function keep_bridge_subscribed(br)
  for app, how in pairs(br.subs) do if how == "join" then br.subs[app] = "media" end end
end

local function channels_play(sim, p)
  local ch, s, b = channels.ready_chan(sim, p.channelId)
  if not ch then return s, b end
  return play(sim, "channel", ch, p)
end

local function bridges_play(sim, p)
  local br, s, b = get_bridge(sim, p.bridgeId)
  if not br then return s, b end
  if p.announcer_format and not FORMATS[p.announcer_format] then
    return 422, err_body("Announcer format not found")
  end
  keep_bridge_subscribed(br)
  return play(sim, "bridge", br, p)
end

local function playbacks_get(sim, p)
  local pb = sim.playbacks[p.playbackId]
  if not pb then return 404, err_body("Playback not found") end
  return 200, sim:playback_json(pb)
end
local function playbacks_stop(sim, p)
  local pb = sim.playbacks[p.playbackId]
  if not pb then return 404, err_body("Playback not found") end
  if pb.state == "queued" then
    local q = pb.queue
    for i, x in ipairs(q) do if x == pb then table.remove(q, i) break end end
    sim.playbacks[pb.id] = nil
    pb.state = "done"
    sim:pb_event(pb, "PlaybackFinished")
    return 204
  end
  finish(sim, pb, "done")
  return 204
end
local OPS = { restart = true, pause = true, unpause = true, reverse = true, forward = true }
local function playbacks_control(sim, p)
  local pb = sim.playbacks[p.playbackId]
  if not pb then return 404, err_body("Playback not found") end
  if p.operation == nil or not OPS[p.operation] then return 400, err_body("Invalid operation " .. tostring(p.operation)) end
  if pb.state ~= "playing" and pb.state ~= "paused" then return 409, err_body("Playback not in a controllable state") end
  local op = p.operation
  local function position()
    if pb.state == "paused" then return pb.pos end
    return pb.pos + (sim:elapsed() - pb.item_start)
  end
  if op == "pause" then
    if pb.state == "paused" then return 204 end
    pb.pos = position()
    if pb.timer then pb.timer.stop(); pb.timer = nil end
    pb.state = "paused"
  elseif op == "unpause" then
    if pb.state ~= "paused" then return 204 end
    pb.state = "playing"
    sim:pb_event(pb, "PlaybackStarted")
    play_item(sim, pb, pb.pos)
  else
    local pos = position()
    if op == "restart" then pos = 0
    elseif op == "reverse" then pos = math.max(0, pos - pb.skipms)
    else pos = pos + pb.skipms end
    if pb.timer then pb.timer.stop(); pb.timer = nil end
    if pb.state == "paused" then pb.pos = pos
    else
      if pb.item_dur and pos >= pb.item_dur then pos = pb.item_dur end
      play_item(sim, pb, pos)
    end
  end
  return 204
end

-- Recordings ------------------------------------------------------------------

local function recording_json(self, rec)
  local dur
  if rec.state == "done" then dur = math.floor(rec.duration_ms / 1000) end
  return obj { "name", rec.name, "format", rec.format, "state", rec.state, "target_uri", rec.target_uri,
    "duration", dur, "talking_duration", rec.state == "done" and rec.talking_ms and math.floor(rec.talking_ms / 1000) or nil,
    "silence_duration", rec.state == "done" and rec.talking_ms and math.floor((rec.duration_ms - rec.talking_ms) / 1000) or nil,
    "cause", rec.cause }
end

local function rec_event(self, rec, etype)
  self:deliver(etype, { "recording", self:recording_json(rec) }, self:targets(target_subs(self, rec)), rec.call)
end

local function recorded_ms(sim, rec)
  local d = rec.acc_ms
  if rec.state == "recording" and rec.seg_start then d = d + (sim:elapsed() - rec.seg_start) end
  return d
end

--- End a live recording.  silence_ms: the trailing silence that ended it.
-- As Asterisk (__ast_play_and_record): the duration is the audio that
-- went into the file, in whole seconds, less (silence - 200 ms) in whole
-- seconds when silence ended it.  A Local channel whose far end runs a
-- simulated dialplan only carries audio while that plays (Playback,
-- MusicOnHold): waiting or answering sends no frames, so recording such
-- a silent caller gives 0 s.
local function finish_recording(self, rec, state, silence_ms)
  if self.live_recordings[rec.name] ~= rec then return end
  for _, t in ipairs(rec.timers) do t.stop() end
  if rec.talk_start then
    rec.talking_ms = (rec.talking_ms or 0) + (self:elapsed() - rec.talk_start)
    rec.talk_start = nil
  end
  local frames_ms = recorded_ms(self, rec)
  if rec.media_only then frames_ms = math.min(frames_ms, rec.talking_ms or 0) end
  local secs = math.floor(frames_ms / 1000)
  if silence_ms and silence_ms > 200 then secs = secs - (silence_ms - 200) // 1000 end
  rec.duration_ms = math.max(0, secs) * 1000
  rec.talking_ms = math.min(rec.duration_ms, rec.talking_ms or 0)
  self.live_recordings[rec.name] = nil
  if state == "canceled" then
    rec.state = "canceled"
    self:rec_event(rec, "RecordingFinished")
    return
  end
  rec.state = "done"
  local old = self.stored_recordings[rec.name]
  local dur = rec.duration_ms
  if old and rec.if_exists == "append" then dur = dur + old.duration_ms end
  self.stored_recordings[rec.name] = { name = rec.name, format = rec.format, duration_ms = math.floor(dur) }
  self:rec_event(rec, "RecordingFinished")
  local t = rec.target_kind == "channel" and self.channels[rec.target_id]
  if t then
    t.recordings_done = (t.recordings_done or 0) + 1
    self:wake_far(t, "recording")
  end
end

-- The far end's talking state changed (scenario): maxSilence timers.
local function recording_talk(self, ch, talking)
  self:media_voice_changed(ch)
  for _, rec in pairs(self.live_recordings) do
    if rec.target_kind == "channel" and rec.target_id == ch.id then
      if talking then
        if rec.silence_timer then rec.silence_timer.stop(); rec.silence_timer = nil end
        rec.talk_start = self:elapsed()
      else
        if rec.talk_start then
          rec.talking_ms = (rec.talking_ms or 0) + (self:elapsed() - rec.talk_start)
          rec.talk_start = nil
        end
        self:arm_silence(rec)
      end
    end
  end
end

local function arm_silence(self, rec)
  if not rec.max_silence or rec.max_silence <= 0 then return end
  if rec.silence_timer then rec.silence_timer.stop() end
  rec.silence_timer = self:after(rec.max_silence * 1000, function()
    rec.silence_timer = nil
    if rec.state == "recording" then self:finish_recording(rec, "done", rec.max_silence * 1000) end
  end)
  rec.timers[#rec.timers + 1] = rec.silence_timer
end

local function recording_dtmf(self, ch, digit)
  for _, rec in pairs(self.live_recordings) do
    if rec.target_kind == "channel" and rec.target_id == ch.id and rec.terminate_on ~= "none" then
      if rec.terminate_on == "any" or rec.terminate_on:find(digit, 1, true) then
        self:finish_recording(rec, "done")
      end
    end
  end
end

local IFEXISTS = { fail = true, overwrite = true, append = true }
local TERM = { none = true, any = true, ["*"] = true, ["#"] = true }

-- record's checks, in Asterisk's order: nil, or status, body.
local function check_record(sim, p)
  if p.name == nil or p.name == "" then return 400, err_body("Recording name is required") end
  if p.format == nil or p.format == "" then return 400, err_body("Format is required") end
  if p.maxDurationSeconds and p.maxDurationSeconds < 0 then return 400, err_body("maxDurationSeconds cannot be negative") end
  if p.maxSilenceSeconds and p.maxSilenceSeconds < 0 then return 400, err_body("maxSilenceSeconds cannot be negative") end
  local if_exists = p.ifExists or "fail"
  if not IFEXISTS[if_exists] then return 400, err_body("ifExists invalid") end
  if not TERM[p.terminateOn or "none"] then return 400, err_body("terminateOn invalid") end
  if p.name:find("%.%.") or p.name:sub(1, 1) == "/" then return 400, err_body("Recording name invalid") end
  if not FORMATS[p.format] then return 422, err_body("Unknown recording format") end
  if sim.live_recordings[p.name] then return 409, err_body("Recording with the same name is in progress") end
  if if_exists == "fail" and sim.stored_recordings[p.name] then
    return 422, err_body("Recording with the same name already exists on the system")
  end
  return nil
end

-- A live recording's start (after the beep, if any).
local function start_recording(sim, rec, kind, target)
  if sim.live_recordings[rec.name] ~= rec then return end
  rec.state = "recording"
  rec.seg_start = sim:elapsed()
  sim:rec_event(rec, "RecordingStarted")
  if rec.max_duration and rec.max_duration > 0 then
    rec.timers[#rec.timers + 1] = sim:after(rec.max_duration * 1000, function()
      if rec.state == "recording" or rec.state == "paused" then sim:finish_recording(rec, "done") end
    end)
  end
  if kind == "channel" and target.talking then rec.talk_start = sim:elapsed()
  else sim:arm_silence(rec) end
end

local function record(sim, kind, target, p)
  local s, b = check_record(sim, p)
  if s then return s, b end
  local rec = { name = p.name, format = p.format, state = "queued", target_kind = kind, target_id = target.id,
    target_uri = kind .. ":" .. target.id, if_exists = p.ifExists or "fail", terminate_on = p.terminateOn or "none",
    max_duration = p.maxDurationSeconds, max_silence = p.maxSilenceSeconds, acc_ms = 0, timers = {},
    call = target.call, subs = target.subs,
    -- a Local ;1 whose ;2 runs a simulated dialplan has audio only while it plays
    media_only = kind == "channel" and target.peer ~= nil and target.peer.runs_dialplan ~= nil
      and target.peer.dialplan_driven == true }
  local snap = sim:recording_json(rec)
  if kind == "channel" and target.bridge then
    sim:after(0, function()
      rec.state = "failed"
      rec.cause = "Cannot record channel while in bridge"
      sim:rec_event(rec, "RecordingFailed")
    end)
    return 201, snap, { location = "/recordings/live/" .. p.name }
  end
  sim.live_recordings[p.name] = rec
  sim:after(p.beep and 250 or 0, function() start_recording(sim, rec, kind, target) end)
  return 201, snap, { location = "/recordings/live/" .. p.name }
end

local function channels_record(sim, p)
  local ch, s, b = channels.stasis_chan(sim, p.channelId)
  if not ch then return s, b end
  return record(sim, "channel", ch, p)
end
local function bridges_record(sim, p)
  local br, s, b = get_bridge(sim, p.bridgeId)
  if not br then return s, b end
  keep_bridge_subscribed(br)
  return record(sim, "bridge", br, p)
end

local function live(sim, name)
  local rec = sim.live_recordings[name]
  if not rec then return nil, 404, err_body("Recording not found") end
  return rec
end
local function recordings_getLive(sim, p)
  local rec, s, b = live(sim, p.recordingName)
  if not rec then return s, b end
  return 200, sim:recording_json(rec)
end
local function recordings_cancel(sim, p)
  local rec, s, b = live(sim, p.recordingName)
  if not rec then return s, b end
  sim:finish_recording(rec, "canceled")
  return 204
end
local function recordings_stop(sim, p)
  local rec, s, b = live(sim, p.recordingName)
  if not rec then return s, b end
  sim:finish_recording(rec, "done")
  return 204
end
local function recordings_pause(sim, p)
  local rec, s, b = live(sim, p.recordingName)
  if not rec then return s, b end
  if rec.state == "queued" then return 409, err_body("Recording not in session") end
  if rec.state == "recording" then
    rec.acc_ms = recorded_ms(sim, rec)
    rec.seg_start = nil
    rec.state = "paused"
  end
  return 204
end
local function recordings_unpause(sim, p)
  local rec, s, b = live(sim, p.recordingName)
  if not rec then return s, b end
  if rec.state == "queued" then return 409, err_body("Recording not in session") end
  if rec.state == "paused" then
    rec.state = "recording"
    rec.seg_start = sim:elapsed()
  end
  return 204
end
local function recordings_mute(sim, p)
  local rec, s, b = live(sim, p.recordingName)
  if not rec then return s, b end
  if rec.state == "queued" then return 409, err_body("Recording not in session") end
  rec.muted = true
  return 204
end
local function recordings_unmute(sim, p)
  local rec, s, b = live(sim, p.recordingName)
  if not rec then return s, b end
  if rec.state == "queued" then return 409, err_body("Recording not in session") end
  rec.muted = false
  return 204
end

local function stored_json(r) return obj { "name", r.name, "format", r.format } end
local function recordings_listStored(sim)
  local names = {}
  for n in pairs(sim.stored_recordings) do names[#names + 1] = n end
  table.sort(names)
  local out = arr {}
  for _, n in ipairs(names) do out[#out + 1] = stored_json(sim.stored_recordings[n]) end
  return 200, out
end
local function recordings_getStored(sim, p)
  local r = sim.stored_recordings[p.recordingName]
  if not r then return 404, err_body("Recording not found") end
  return 200, stored_json(r)
end
local function recordings_deleteStored(sim, p)
  if not sim.stored_recordings[p.recordingName] then return 404, err_body("Recording not found") end
  sim.stored_recordings[p.recordingName] = nil
  return 204
end
local function recordings_copyStored(sim, p)
  local r = sim.stored_recordings[p.recordingName]
  if not r then return 404, err_body("Recording not found") end
  local dest = p.destinationRecordingName
  if dest == nil or dest == "" then return 400, err_body("Destination recording name is required") end
  if sim.stored_recordings[dest] then
    return 409, err_body("A recording with the same name already exists on the system")
  end
  sim.stored_recordings[dest] = { name = dest, format = r.format, duration_ms = r.duration_ms }
  return 200, stored_json(sim.stored_recordings[dest])
end

--- A valid WAV (8 kHz, 16-bit, mono) of silence lasting `ms`.
local function wav(ms)
  local samples = math.floor(8000 * ms / 1000)
  local data = string.rep("\0\0", samples)
  return "RIFF" .. string.pack("<I4", 36 + #data) .. "WAVE" .. "fmt " ..
    string.pack("<I4I2I2I4I4I2I2", 16, 1, 1, 8000, 16000, 2, 16) .. "data" ..
    string.pack("<I4", #data) .. data
end

local function recordings_getStoredFile(sim, p)
  if p.recordingName:find("%.%.") then return 403, err_body("Recording file could not be opened") end
  local r = sim.stored_recordings[p.recordingName]
  if not r then return 404, err_body("Recording not found") end
  local ct = (r.format == "wav" or r.format == "WAV") and "audio/wav" or
    (r.format == "ulaw" and "audio/basic" or "application/octet-stream")
  return 200, wav(r.duration_ms), { ["content-type"] = ct,
    ["content-disposition"] = 'attachment; filename="' .. r.name .. "." .. r.format .. '"' }
end

-- Sounds --------------------------------------------------------------------
local function sound_json(id, fmt)
  return obj { "id", id, "formats", arr { obj { "language", "en", "format", fmt or "slin" } } }
end
local function sounds_list(sim, p)
  if p.lang and p.lang ~= "en" then return 200, arr {} end
  local ids = {}
  for id in pairs(sim.sounds) do ids[#ids + 1] = id end
  table.sort(ids)
  local out = arr {}
  for _, id in ipairs(ids) do
    if p.format == nil or p.format == "slin" then out[#out + 1] = sound_json(id) end
  end
  return 200, out
end
local function sounds_get(sim, p)
  if not sim.sounds[p.soundId] then return 404, err_body("Sound not found") end
  return 200, sound_json(p.soundId)
end

return util.module {
  -- called by ari.sim.new for each new simulator
  init = init_media,
  -- methods of the Sim class
  methods = {
    media_duration = media_duration, playback_json = playback_json, pb_event = pb_event,
    finish_playback = finish, start_playback = start_playback, stop_channel_media = stop_channel_media,
    uniqueid_uuid = uniqueid_uuid, recording_json = recording_json, rec_event = rec_event,
    finish_recording = finish_recording, recording_talk = recording_talk, arm_silence = arm_silence,
    recording_dtmf = recording_dtmf,
  },
  -- route handlers by resource and operation nickname
  routes = {
    channels = { play = channels_play, playWithId = channels_play, record = channels_record },
    bridges = { play = bridges_play, playWithId = bridges_play, record = bridges_record },
    playbacks = { get = playbacks_get, stop = playbacks_stop, control = playbacks_control },
    recordings = {
      getLive = recordings_getLive, cancel = recordings_cancel, stop = recordings_stop,
      pause = recordings_pause, unpause = recordings_unpause, mute = recordings_mute,
      unmute = recordings_unmute, listStored = recordings_listStored, getStored = recordings_getStored,
      deleteStored = recordings_deleteStored, copyStored = recordings_copyStored,
      getStoredFile = recordings_getStoredFile,
    },
    sounds = { list = sounds_list, get = sounds_get },
  },
  wav = wav,
}
