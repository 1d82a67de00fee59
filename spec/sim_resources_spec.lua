-- The simulated Asterisk, resource by resource: response bodies compared
-- with real Asterisk 22 bodies (spec/fixtures/ari/rest, copied from the
-- captured samples: same keys, same key order, same value types), and the
-- error statuses and messages Asterisk answers with.
local ari = require "ari"
local simmod = require "ari.sim"
local json = require "ari.sim.json"
local util = require "spec.support.util"

local FIX = "spec/fixtures/ari/rest/"

local read = util.read_all

-- Keys of the outermost object (or of the first element of an outermost
-- array) in the order they appear in the text.
local function top_keys(text)
  local keys, depth, i, n = {}, 0, 1, #text
  local want = text:match("^%s*%[") and 2 or 1
  local after_colon = false
  while i <= n do
    local c = text:sub(i, i)
    if c == '"' then
      local j = i + 1
      while true do
        local d = text:sub(j, j)
        if d == "\\" then j = j + 2 elseif d == '"' then break else j = j + 1 end
      end
      local s = text:sub(i + 1, j - 1)
      if depth == want and not after_colon and text:match("^%s*:", j + 1) then keys[#keys + 1] = s end
      i = j + 1
      after_colon = false
    elseif c == "{" or c == "[" then
      depth = depth + 1; i = i + 1; after_colon = false
    elseif c == "}" or c == "]" then
      depth = depth - 1; i = i + 1
      if depth < want and #keys > 0 then break end
    elseif c == ":" then after_colon = true; i = i + 1
    elseif c == "," then after_colon = false; i = i + 1
    else i = i + 1 end
  end
  return keys
end

-- A value's shape: the key set and value types, recursively (arrays by
-- their first element).
local function shape(v)
  if type(v) == "table" then
    if getmetatable(v) == json.array_mt or v[1] ~= nil then
      return { "array", v[1] ~= nil and shape(v[1]) or "empty" }
    end
    local s = {}
    for k, x in pairs(v) do s[k] = shape(x) end
    return s
  end
  if math.type(v) == "float" then return "number" end
  if math.type(v) == "integer" then return "number" end
  return type(v)
end

-- Same keys in the same order and the same shape as the fixture.
local function assert_like(fixture, status, text, want_status)
  assert.equals(want_status or 200, status, text)
  local ftext = read(FIX .. fixture .. ".json")
  assert.same(top_keys(ftext), top_keys(text))
  local fv, v = json.decode(ftext), json.decode(text)
  local fs, s = shape(fv), shape(v)
  -- an empty list in either sample cannot say what its items look like
  local function prune(a, b)
    if type(a) ~= "table" or type(b) ~= "table" then return end
    for k in pairs(a) do
      if a[k] and b[k] and ((type(a[k]) == "table" and a[k][2] == "empty") or (type(b[k]) == "table" and b[k][2] == "empty")) then
        a[k], b[k] = "list", "list"
      else
        prune(a[k], b[k])
      end
    end
  end
  prune(fs, s)
  assert.same(fs, s)
  return v
end

local function with_sim(opts, fn)
  if fn == nil then fn, opts = opts, {} end
  ari.run(function()
    opts.speed = opts.speed or 50
    local sim = simmod.new(opts)
    local events = {}
    sim:connect_events(opts.app or "test-app", opts.subscribe_all, function(text)
      events[#events + 1] = assert(json.decode(text))
    end)
    local ok, err = pcall(fn, sim, events)
    sim:close()
    if not ok then error(err, 0) end
  end)
end

local wait_for = util.wait_for

local function reqh(sim, method, path, query, body)
  return sim:request(method, path, query, body, body and { ["content-type"] = "application/json" } or nil)
end

local function req(sim, method, path, query, body)
  local s, text = reqh(sim, method, path, query, body)
  return s, text
end

local function expect_error(sim, method, path, query, status, message, body)
  local s, text = req(sim, method, path, query, body)
  assert.equals(status, s, method .. " " .. path .. "?" .. tostring(query) .. " -> " .. tostring(text))
  local v = json.decode(text)
  assert.same({ "message" }, top_keys(text))
  if message then assert.equals(message, v.message) end
end

-- A channel in Stasis (answered) in app test-app.
local function stasis_channel(sim, events, id)
  local s = req(sim, "POST", "/ari/channels", "endpoint=PJSIP/alice&app=test-app&channelId=" .. id)
  assert.equals(200, s)
  wait_for(events, function(e) return e.type == "StasisStart" and e.channel.id == id end)
end

describe("sim resources: channels", function()
  it("answers GET, list, variables like Asterisk", function()
    with_sim(function(sim, events)
      local s, text = req(sim, "POST", "/ari/channels", "endpoint=PJSIP/alice&app=test-app&channelId=c1&callerId=%22Demo+A%22+%3C1000%3E")
      assert_like("channel-originate", s, text)
      wait_for(events, function(e) return e.type == "StasisStart" end)
      assert_like("channel-get", req(sim, "GET", "/ari/channels/c1"))
      assert_like("channels-list", req(sim, "GET", "/ari/channels"))
      assert.equals(204, (req(sim, "POST", "/ari/channels/c1/variable", "variable=TESTVAR&value=hello")))
      local v = assert_like("channel-variable", req(sim, "GET", "/ari/channels/c1/variable", "variable=TESTVAR"))
      assert.equals("hello", v.value)
      assert.equals(204, (req(sim, "POST", "/ari/channels/c1/variables", nil,
        '{"variables":{"MULTI_A":"1","MULTI_B":{"value":"2","report_events":true}}}')))
      v = assert_like("channel-variables", req(sim, "GET", "/ari/channels/c1/variables", "variables=TESTVAR,MULTI_A,MULTI_B"))
      assert.same({ TESTVAR = "hello", MULTI_A = "1", MULTI_B = "2" }, v.variables)
      -- report_events puts the variable into channelvars
      assert.equals(204, (req(sim, "POST", "/ari/channels/c1/variable",
        "variable=REPORTED_VAR&value=shown&report_events=true")))
      v = assert_like("channel-with-channelvars", req(sim, "GET", "/ari/channels/c1"))
      assert.same({ REPORTED_VAR = "shown", MULTI_B = "2" }, v.channelvars)
      local s2, t2 = req(sim, "POST", "/ari/channels/create", "endpoint=PJSIP/bob&app=test-app&channelId=c2")
      assert_like("channel-create", s2, t2)
      s2, t2 = req(sim, "POST", "/ari/channels/c1/snoop/snoop-1", "app=test-app&spy=both&appArgs=snoop")
      assert_like("channel-snoop", s2, t2)
      s2, t2 = req(sim, "POST", "/ari/channels/externalMedia",
        "app=test-app&channelId=ext-1&external_host=127.0.0.1%3A40000&format=ulaw")
      assert_like("channel-externalMedia", s2, t2)
    end)
  end)

  it("answers errors with Asterisk's statuses and messages", function()
    with_sim(function(sim, events)
      stasis_channel(sim, events, "c1")
      expect_error(sim, "GET", "/ari/channels/does-not-exist", nil, 404, read(FIX .. "error-404-channel.json"):match('"message": "(.-)"'))
      expect_error(sim, "POST", "/ari/channels", "app=test-app", 400,
        read(FIX .. "error-400-missing-endpoint.json"):match('"message": "(.-)"'))
      expect_error(sim, "POST", "/ari/channels", "endpoint=PJSIP/b", 400, "Application or extension must be specified")
      expect_error(sim, "POST", "/ari/channels", "endpoint=bogus&app=test-app", 400)
      expect_error(sim, "POST", "/ari/channels", "endpoint=PJSIP/x&app=test-app&channelId=c1", 409)
      expect_error(sim, "POST", "/ari/channels/nope/answer", nil, 404, "Channel not found")
      expect_error(sim, "POST", "/ari/channels/c1/play", nil, 400)
      expect_error(sim, "POST", "/ari/channels/c1/record", "format=wav", 400)
      expect_error(sim, "POST", "/ari/channels/c1/record", "name=r&format=nosuchformat", 422)
      expect_error(sim, "POST", "/ari/channels/c1/snoop", "app=test-app&spy=sideways", 400)
      expect_error(sim, "POST", "/ari/channels/c1/mute", "direction=sideways", 400)
      expect_error(sim, "POST", "/ari/channels/c1/dtmf", nil, 400)
      expect_error(sim, "GET", "/ari/channels/c1/variable", nil, 400)
      expect_error(sim, "GET", "/ari/channels/c1/variable", "variable=NOT_SET", 404)
      expect_error(sim, "POST", "/ari/channels/c1/move", nil, 400)
      expect_error(sim, "POST", "/ari/channels", nil, 400, "Error parsing request body", "{not json")
      -- a channel outside Stasis: 412 for media operations
      local s = req(sim, "POST", "/ari/channels/c1/continue")
      assert.equals(204, s)
      wait_for(events, function(e) return e.type == "StasisEnd" end)
      -- the channel still exists but left Stasis (Asterisk's find_control: 409)
      expect_error(sim, "POST", "/ari/channels/c1/answer", nil, 409, "Channel not in Stasis application")
      -- unknown path and method
      expect_error(sim, "GET", "/ari/nothing/here", nil, 404)
      expect_error(sim, "PATCH", "/ari/channels", nil, 405)
    end)
  end)
end)

describe("sim resources: bridges", function()
  it("creates, lists, adds and removes channels; errors", function()
    with_sim(function(sim, events)
      stasis_channel(sim, events, "a1")
      stasis_channel(sim, events, "b1")
      local s, text = req(sim, "POST", "/ari/bridges", "type=mixing&bridgeId=br&name=demo-bridge")
      local b = assert_like("bridge-create", s, text)
      assert.equals("demo-bridge", b.name)
      assert.equals(204, (req(sim, "POST", "/ari/bridges/br/addChannel", "channel=a1,b1")))
      b = assert_like("bridge-get", req(sim, "GET", "/ari/bridges/br"))
      assert.same({ "a1", "b1" }, b.channels)
      assert_like("bridges-list", req(sim, "GET", "/ari/bridges"))
      wait_for(events, function(e) return e.type == "ChannelEnteredBridge" and e.channel.id == "b1" end)
      s, text = req(sim, "POST", "/ari/bridges/br/play/pb-br", "media=sound:hello-world")
      assert_like("playback-bridge", s, text, 201)
      expect_error(sim, "POST", "/ari/bridges", "type=bogus", 400)
      expect_error(sim, "POST", "/ari/bridges/br/addChannel", nil, 400)
      expect_error(sim, "POST", "/ari/bridges/br/addChannel", "channel=nope", 400, "Channel not found")
      expect_error(sim, "POST", "/ari/bridges/nope/addChannel", "channel=a1", 404, "Bridge not found")
      assert.equals(204, (req(sim, "POST", "/ari/bridges/br/removeChannel", "channel=b1")))
      expect_error(sim, "POST", "/ari/bridges/br/removeChannel", "channel=b1", 422)
      assert.equals(204, (req(sim, "DELETE", "/ari/bridges/br")))
      expect_error(sim, "GET", "/ari/bridges/br", nil, 404, "Bridge not found")
    end)
  end)
end)

describe("sim resources: playbacks", function()
  it("play, get, pause, unpause, stop; 404 afterwards", function()
    with_sim(function(sim, events)
      stasis_channel(sim, events, "c1")
      local s, text = req(sim, "POST", "/ari/channels/c1/play/pb-ctl", "media=sound:silence/10")
      assert_like("playback-create", s, text, 201)
      wait_for(events, function(e) return e.type == "PlaybackStarted" end)
      local v = assert_like("playback-get", req(sim, "GET", "/ari/playbacks/pb-ctl"))
      assert.equals("playing", v.state)
      assert.equals(204, (req(sim, "POST", "/ari/playbacks/pb-ctl/control", "operation=pause")))
      v = assert_like("playback-paused", req(sim, "GET", "/ari/playbacks/pb-ctl"))
      assert.equals("paused", v.state)
      assert.equals(204, (req(sim, "POST", "/ari/playbacks/pb-ctl/control", "operation=unpause")))
      assert.equals(204, (req(sim, "DELETE", "/ari/playbacks/pb-ctl")))
      expect_error(sim, "GET", "/ari/playbacks/pb-ctl", nil, 404,
        read(FIX .. "error-404-playback.json"):match('"message": "(.-)"'))
      expect_error(sim, "POST", "/ari/playbacks/pb-ctl/control", "operation=pause", 404)
      s, text = req(sim, "POST", "/ari/channels/c1/play/pb-list", "media=sound:beep,digits:42,number:105,characters:ab")
      assert_like("playback-playlist", s, text, 201)
    end)
  end)
end)

describe("sim resources: recordings", function()
  it("live recording, stored list/get/copy/delete, WAV download", function()
    with_sim(function(sim, events)
      stasis_channel(sim, events, "c1")
      local s, text = req(sim, "POST", "/ari/channels/c1/record",
        "name=demo-chan-rec&format=wav&maxDurationSeconds=1&ifExists=overwrite&beep=false")
      assert_like("recording-live-create", s, text, 201)
      wait_for(events, function(e) return e.type == "RecordingStarted" end)
      assert_like("recording-live-get", req(sim, "GET", "/ari/recordings/live/demo-chan-rec"))
      expect_error(sim, "POST", "/ari/channels/c1/record", "name=demo-chan-rec&format=wav", 409)
      wait_for(events, function(e) return e.type == "RecordingFinished" end)
      expect_error(sim, "GET", "/ari/recordings/live/demo-chan-rec", nil, 404)
      assert_like("recordings-stored", req(sim, "GET", "/ari/recordings/stored"))
      assert_like("recording-stored-get", req(sim, "GET", "/ari/recordings/stored/demo-chan-rec"))
      s, text = req(sim, "POST", "/ari/recordings/stored/demo-chan-rec/copy", "destinationRecordingName=rec-copy")
      local v = assert_like("recording-copy", s, text)
      assert.equals("rec-copy", v.name)
      expect_error(sim, "POST", "/ari/recordings/stored/demo-chan-rec/copy", "destinationRecordingName=rec-copy", 409)
      -- the file is a valid WAV (RIFF header, sizes consistent)
      local fs, wav, headers = reqh(sim, "GET", "/ari/recordings/stored/demo-chan-rec/file")
      assert.equals(200, fs)
      assert.equals("RIFF", wav:sub(1, 4))
      assert.equals("WAVE", wav:sub(9, 12))
      assert.equals(#wav - 8, string.unpack("<I4", wav, 5))
      assert.equals(8000, string.unpack("<I4", wav, 25))
      assert.equals(#wav - 44, string.unpack("<I4", wav, 41))
      assert.matches("audio", headers["content-type"])
      assert.equals(204, (req(sim, "DELETE", "/ari/recordings/stored/rec-copy")))
      expect_error(sim, "GET", "/ari/recordings/stored/rec-copy", nil, 404, "Recording not found")
      expect_error(sim, "GET", "/ari/recordings/stored/nope/file", nil, 404)
    end)
  end)
end)

describe("sim resources: sounds, endpoints, device states, mailboxes", function()
  it("answer like Asterisk", function()
    with_sim(function(sim)
      assert_like("sounds", req(sim, "GET", "/ari/sounds"))
      local s, text = req(sim, "GET", "/ari/sounds/hello-world")
      assert.same(json.decode(read(FIX .. "sound-hello-world.json")), json.decode(text))
      assert.equals(200, s)
      expect_error(sim, "GET", "/ari/sounds/nope", nil, 404)
      s, text = req(sim, "GET", "/ari/endpoints")
      assert.equals(200, s)
      assert.equals("table", type(json.decode(text)))
      expect_error(sim, "GET", "/ari/endpoints/NOPE", nil, 404)
      expect_error(sim, "GET", "/ari/endpoints/PJSIP/nobody", nil, 404)
      assert.equals(204, (req(sim, "PUT", "/ari/deviceStates/Stasis:demo-dev", "deviceState=BUSY")))
      assert.same(json.decode(read(FIX .. "device-state.json")), json.decode(select(2, req(sim, "GET", "/ari/deviceStates/Stasis:demo-dev"))))
      assert.same(json.decode(read(FIX .. "device-states.json")), json.decode(select(2, req(sim, "GET", "/ari/deviceStates"))))
      expect_error(sim, "PUT", "/ari/deviceStates/PJSIP:x", "deviceState=BUSY", 409)
      expect_error(sim, "PUT", "/ari/deviceStates/Stasis:x", "deviceState=WEIRD", 400)
      assert.equals(204, (req(sim, "DELETE", "/ari/deviceStates/Stasis:demo-dev")))
      assert.equals(204, (req(sim, "PUT", "/ari/mailboxes/1000@demo", "oldMessages=1&newMessages=3")))
      s, text = req(sim, "GET", "/ari/mailboxes/1000@demo")
      assert_like("mailbox", s, text)
      assert.same(json.decode(read(FIX .. "mailbox.json")), json.decode(text))
      assert.same(json.decode(read(FIX .. "mailboxes.json")), json.decode(select(2, req(sim, "GET", "/ari/mailboxes"))))
      assert.equals(204, (req(sim, "DELETE", "/ari/mailboxes/1000@demo")))
      expect_error(sim, "GET", "/ari/mailboxes/1000@demo", nil, 404)
    end)
  end)
end)

describe("sim resources: asterisk", function()
  it("info, ping, global variables, modules, logging, config", function()
    with_sim(function(sim)
      local v = assert_like("asterisk-info", req(sim, "GET", "/ari/asterisk/info"))
      assert.equals(sim.asterisk_id, v.system.entity_id)
      v = assert_like("asterisk-ping", req(sim, "GET", "/ari/asterisk/ping"))
      assert.equals("pong", v.ping)
      assert.equals(204, (req(sim, "POST", "/ari/asterisk/variable", "variable=GLOBAL_DEMO&value=xyz")))
      v = assert_like("asterisk-variable", req(sim, "GET", "/ari/asterisk/variable", "variable=GLOBAL_DEMO"))
      assert.equals("xyz", v.value)
      expect_error(sim, "GET", "/ari/asterisk/variable", nil, 400)
      assert_like("module-res_ari", req(sim, "GET", "/ari/asterisk/modules/res_ari.so"))
      expect_error(sim, "GET", "/ari/asterisk/modules/nope.so", nil, 404)
      expect_error(sim, "POST", "/ari/asterisk/modules/res_ari.so", nil, 409)
      assert_like("logging", req(sim, "GET", "/ari/asterisk/logging"))
      expect_error(sim, "GET", "/ari/asterisk/config/dynamic/res_pjsip/endpoint/nope", nil, 404)
    end)
  end)
end)

describe("sim resources: applications and events", function()
  it("get, subscribe, unsubscribe, event filter, user events", function()
    with_sim(function(sim, events)
      assert_like("application-test-app", req(sim, "GET", "/ari/applications/test-app"))
      assert_like("applications", req(sim, "GET", "/ari/applications"))
      expect_error(sim, "GET", "/ari/applications/nope", nil, 404)
      local s, text = req(sim, "POST", "/ari/applications/test-app/subscription", "eventSource=deviceState:Stasis:demo-dev")
      local v = assert_like("application-subscribe", s, text)
      assert.same({ "Stasis:demo-dev" }, v.device_names)
      assert.equals(204, (req(sim, "PUT", "/ari/deviceStates/Stasis:demo-dev", "deviceState=BUSY")))
      local ev = wait_for(events, function(e) return e.type == "DeviceStateChanged" end)
      assert.equals("BUSY", ev.device_state.state)
      s, text = req(sim, "DELETE", "/ari/applications/test-app/subscription", "eventSource=deviceState:Stasis:demo-dev")
      assert.equals(200, s)
      assert.same({}, json.decode(text).device_names)
      expect_error(sim, "POST", "/ari/applications/test-app/subscription", "eventSource=channel:nope", 422)
      expect_error(sim, "POST", "/ari/applications/test-app/subscription", "eventSource=bogus", 400)
      -- the filter is the whole JSON body, as Asterisk reads it
      s, text = req(sim, "PUT", "/ari/applications/test-app/eventFilter", nil, '{"allowed":[{"type":"ChannelUserevent"}]}')
      assert.equals(200, s)
      assert.same({ { type = "ChannelUserevent" } }, json.decode(text).events_allowed)
      assert.equals(200, (req(sim, "POST", "/ari/channels", "endpoint=PJSIP/x&app=test-app&channelId=f1")))
      assert.equals(204, (req(sim, "POST", "/ari/events/user/ev1", "application=test-app&source=channel:f1", '{"variables":{"k":"v"}}')))
      ev = wait_for(events, function(e) return e.type == "ChannelUserevent" end)
      assert.equals("ev1", ev.eventname)
      assert.equals("v", ev.userevent.k)
      for _, e in ipairs(events) do
        assert.is_false(e.type == "StasisStart" and e.channel.id == "f1", "filtered event delivered")
      end
      expect_error(sim, "POST", "/ari/events/user/ev1", "application=nope", 404)
      expect_error(sim, "POST", "/ari/events/user/ev1", nil, 400)
    end)
  end)
end)
