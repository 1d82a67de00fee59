-- Typed decoding: every one of the 85 models, from real Asterisk 22 samples
-- (spec/fixtures/ari, copied from the captured traffic) where they exist,
-- synthesized from the schema otherwise.
local ari = require "ari"
local models = require "ari.models"
local schema = require "ari.schema"
local client_mod = require "ari.client"
local util = require "spec.support.util"

local FIX = "spec/fixtures/ari/"

local read = util.read_all

local function ls(dir)
  local out = {}
  local p = io.popen("ls " .. dir)
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

-- REST bodies and the type each operation declares for them
local REST = {
  ["application-subscribe.json"] = "Application", ["application-test-app.json"] = "Application",
  ["applications.json"] = "List[Application]", ["asterisk-info.json"] = "AsteriskInfo",
  ["asterisk-ping.json"] = "AsteriskPing", ["asterisk-variable.json"] = "Variable",
  ["bridge-create.json"] = "Bridge", ["bridge-get.json"] = "Bridge", ["bridges-list.json"] = "List[Bridge]",
  ["channel-create.json"] = "Channel", ["channel-externalMedia.json"] = "Channel",
  ["channel-get.json"] = "Channel", ["channel-originate.json"] = "Channel", ["channel-snoop.json"] = "Channel",
  ["channel-variable.json"] = "Variable", ["channel-variables.json"] = "Variables",
  ["channel-with-channelvars.json"] = "Channel", ["channels-list.json"] = "List[Channel]",
  ["device-state.json"] = "DeviceState", ["device-states.json"] = "List[DeviceState]",
  ["endpoints.json"] = "List[Endpoint]", ["logging.json"] = "List[LogChannel]",
  ["mailbox.json"] = "Mailbox", ["mailboxes.json"] = "List[Mailbox]", ["module-res_ari.json"] = "Module",
  ["playback-bridge.json"] = "Playback", ["playback-create.json"] = "Playback",
  ["playback-get.json"] = "Playback", ["playback-paused.json"] = "Playback",
  ["playback-playlist.json"] = "Playback", ["recording-copy.json"] = "StoredRecording",
  ["recording-live-bridge.json"] = "LiveRecording", ["recording-live-create.json"] = "LiveRecording",
  ["recording-live-get.json"] = "LiveRecording", ["recording-stored-get.json"] = "StoredRecording",
  ["recordings-stored.json"] = "List[StoredRecording]", ["sound-hello-world.json"] = "Sound",
  ["sounds.json"] = "List[Sound]",
}

local function list_of(t) return t:match("^List%[(.+)%]$") end

local function is_a(name, want)
  while name do
    if name == want then return true end
    name = schema.models[name] and schema.models[name].extends
  end
  return false
end

-- Check that v is a well-typed `name`, recursively; returns the number of
-- typed fields checked.
local function check(v, name, where)
  local got = ari.model_of(v)
  assert.is_truthy(got and is_a(got, name), where .. ": expected " .. name .. ", got " .. tostring(got))
  local n = 0
  for f, p in pairs(schema.models[got].properties) do
    local x = v[f]
    local t = p.type
    local w = where .. "." .. f
    if x ~= nil and x ~= client_mod.json_null then
      n = n + 1
      local inner = list_of(t)
      if inner then
        assert.equals("table", type(x), w)
        for i = 1, #x do
          if schema.models[inner] then check(x[i], inner, w .. "[" .. i .. "]")
          elseif inner == "string" then assert.equals("string", type(x[i]), w) end
        end
      elseif schema.models[t] then
        check(x, t, w)
      elseif t == "int" or t == "long" then
        assert.equals("integer", math.type(x), w)
      elseif t == "double" then
        assert.equals("float", math.type(x), w)
      elseif t == "boolean" then
        assert.equals("boolean", type(x), w)
      elseif t == "string" or t == "Date" then
        assert.equals("string", type(x), w)
      end
    end
  end
  return n
end

-- every model object reachable from v
local function collect(v, found, src, depth)
  if type(v) ~= "table" or depth > 10 then return end
  local m = ari.model_of(v)
  if m and not found[m] then found[m] = { v, src } end
  for _, x in pairs(v) do collect(x, found, src, depth + 1) end
end

local function real_samples()
  local found = {}
  for file, t in pairs(REST) do
    local v = assert(models.decode(read(FIX .. "rest/" .. file), t))
    collect(v, found, "rest/" .. file, 0)
  end
  for _, dir in ipairs({ "events", "variants" }) do
    for _, file in ipairs(ls(FIX .. dir)) do
      local v = assert(models.decode(read(FIX .. dir .. "/" .. file)))
      collect(v, found, dir .. "/" .. file, 0)
    end
  end
  return found
end

-- A value of type t, built from the schema.
local function synth(t, depth, name_hint)
  local inner = list_of(t)
  if inner then
    if depth > 3 then return setmetatable({}, { __jsonarray = true }) end
    return { synth(inner, depth + 1), synth(inner, depth + 1) }
  end
  local m = schema.models[t]
  if m then
    local obj = {}
    for f, p in pairs(m.properties) do
      if p.required or depth < 2 then
        if p.allowed and p.allowed.values then obj[f] = p.allowed.values[1]
        else obj[f] = synth(p.type, depth + 1, f) end
      end
    end
    if m.properties.type then obj.type = t end
    obj.x_unknown_field = "kept"
    return obj
  end
  if t == "int" or t == "long" then return 42 end
  if t == "double" then return 1.5 end
  if t == "boolean" then return true end
  if t == "Date" then return "2026-11-26T08:11:35.621+0000" end
  if t == "object" then return { any = "thing" } end
  return "s-" .. tostring(name_hint or t)
end

describe("typed decoding", function()
  local found = real_samples()

  it("real samples cover most models", function()
    local n = 0
    for _ in pairs(found) do n = n + 1 end
    assert.is_true(n >= 55, "only " .. n .. " models in the real samples")
  end)

  local names = {}
  for name in pairs(schema.models) do names[#names + 1] = name end
  table.sort(names)
  assert(#names == 85)

  for _, name in ipairs(names) do
    it(name .. " decodes into its typed object", function()
      local v, src = nil, nil
      if found[name] then
        v, src = found[name][1], found[name][2]
      else
        local obj = synth(name, 0)
        local text = client_mod.json_encode(obj)
        v = assert(models.decode(text, name))
        src = "synthesized"
        assert.equals("kept", v.x_unknown_field)
      end
      assert.equals(name, ari.model_of(v), src)
      assert.equals(name, getmetatable(v).__name)
      assert.equals(name, getmetatable(v).__model)
      check(v, name, name .. " (" .. src .. ")")
      assert.matches("^" .. name .. "%(", tostring(v))
    end)
  end

  it("nests: event.channel is a Channel, caller a CallerID, sound formats FormatLangPair", function()
    local ev = models.decode(read(FIX .. "events/StasisStart.json"), "Message")
    assert.equals("StasisStart", ari.model_of(ev))
    assert.equals("Channel", ari.model_of(ev.channel))
    assert.equals("CallerID", ari.model_of(ev.channel.caller))
    assert.equals("DialplanCEP", ari.model_of(ev.channel.dialplan))
    assert.equals("integer", math.type(ev.channel.dialplan.priority))
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", ev.timestamp) -- Date stays the ISO string
    local pb = models.decode(read(FIX .. "events/PlaybackStarted.json"), "Message")
    assert.equals("Playback", ari.model_of(pb.playback))
    local sounds = models.decode(read(FIX .. "rest/sounds.json"), "List[Sound]")
    assert.equals("FormatLangPair", ari.model_of(sounds[1].formats[1]))
  end)

  it("types events whose type key is not first (ChannelVarset)", function()
    local text = read(FIX .. "events/ChannelVarset.json")
    local ev = models.decode(text, "Message")
    assert.equals("ChannelVarset", ari.model_of(ev))
    -- with no type given too: an event names its model itself
    ev = models.decode('{"variable":"X","value":"1","type":"ChannelVarset","timestamp":"t","application":"a"}')
    assert.equals("ChannelVarset", ari.model_of(ev))
  end)

  it("formats Channel as Channel(id, name, state)", function()
    local ch = models.decode('{"id":"1700000000.1","name":"PJSIP/100-0001","state":"Up"}', "Channel")
    assert.equals("Channel(1700000000.1, PJSIP/100-0001, Up)", tostring(ch))
  end)

  it("keeps unknown fields and passes unknown event types as plain tables", function()
    local ev = models.decode('{"type":"FutureEvent","timestamp":"t","channel":{"id":"c"},"new_field":[1,2]}')
    assert.is_nil(ari.model_of(ev))
    assert.equals("FutureEvent", ev.type)
    assert.equals(2, #ev.new_field)
    local ch = models.decode('{"id":"c","brand_new":{"a":1}}', "Channel")
    assert.equals("Channel", ari.model_of(ch))
    assert.equals(1, ch.brand_new.a)
  end)

  it("model_of is nil for plain values", function()
    assert.is_nil(ari.model_of({}))
    assert.is_nil(ari.model_of("Channel"))
    assert.is_nil(ari.model_of(nil))
  end)

  it("gives objects the methods of the operations on their id, without shadowing fields", function()
    local expect = {
      Channel = { "answer", "hangup", "play", "record", "dial", "snoopChannel", "getChannelVar" },
      Bridge = { "addChannel", "removeChannel", "play", "record", "destroy", "startMoh" },
      Playback = { "control", "stop", "get" },
      LiveRecording = { "stop", "pause", "unpause", "mute", "unmute", "cancel", "getLive" },
      StoredRecording = { "copyStored", "deleteStored", "getStored", "getStoredFile" },
      DeviceState = { "get", "update", "delete" },
      Mailbox = { "get", "update", "delete" },
      Sound = { "get" },
      Application = { "get", "subscribe", "unsubscribe", "filter" },
      Endpoint = { "get", "sendMessageToEndpoint", "referToEndpoint" },
      Module = { "getModule", "loadModule", "unloadModule", "reloadModule" },
      LogChannel = { "addLog", "deleteLog", "rotateLog" },
    }
    for model, list in pairs(expect) do
      for _, m in ipairs(list) do
        assert.is_function(models.methods[model][m], model .. ":" .. m)
      end
      for f in pairs(schema.models[model].properties) do
        assert.is_nil(models.methods[model][f], model .. " method shadows field " .. f)
      end
    end
    assert.is_function(models.methods.Channel.on)
    assert.is_function(models.methods.Bridge.wait)
  end)
end)
