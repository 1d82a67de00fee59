-- Events: client:on / obj:on routing, once/off/wait, ordering, several
-- clients, and a real WebSocket from the project's server.
local ari = require "ari"
local models = require "ari.models"
local schema = require "ari.schema"
local client_mod = require "ari.client"
local util = require "spec.support.util"

local FIX = "spec/fixtures/ari/"

local read = util.read


-- one event of each type: the real sample when there is one
local function sample(etype)
  local text = read(FIX .. "events/" .. etype .. ".json")
  if text then return models.decode(text) end
  return models.decode(client_mod.json_encode(models.example(etype)))
end

-- a sample whose channel is `id`
local function sample_for(etype, id)
  local ev = sample(etype)
  ev.channel.id = id
  return ev
end

local EVENT_TYPES = {}
for _, s in ipairs(schema.models.Event.subtypes) do EVENT_TYPES[#EVENT_TYPES + 1] = s end

local function new_client(extra)
  local o = { url = "http://127.0.0.1:8088", user = "u", password = "p", events = false,
    transport = function(req) return 204, "", {} end }
  for k, v in pairs(extra or {}) do o[k] = v end
  return ari.connect(o)
end

-- the routable objects an event carries: { field, model, key }
local function targets(ev)
  local out = {}
  for f, p in pairs(schema.models[ev.type].properties) do
    local keyf = models.route_key[p.type]
    if keyf and type(ev[f]) == "table" and keyf(ev[f]) then
      out[#out + 1] = { f, p.type, keyf(ev[f]) }
    end
  end
  return out
end

describe("client:on", function()
  it("there are 45 event types and each one is delivered to client:on(type) and '*'", function()
    assert.equals(45, #EVENT_TYPES)
    local c = new_client()
    local got, all = {}, 0
    for _, t in ipairs(EVENT_TYPES) do c:on(t, function(ev) got[#got + 1] = ev.type end) end
    c:on("*", function() all = all + 1 end)
    ari.run(function()
      for _, t in ipairs(EVENT_TYPES) do
        local ev = sample(t)
        assert.equals(t, ari.model_of(ev))
        c:dispatch(ev)
      end
    end)
    assert.same(EVENT_TYPES, got)
    assert.equals(45, all)
  end)

  it("handlers run as coroutines and may call operations", function()
    local seen = {}
    local c = new_client { transport = function(req) seen[#seen + 1] = req.method .. " " .. req.path; return 204, "", {} end }
    c:on("StasisStart", function(ev) ev.channel:answer() end)
    ari.run(function()
      c:dispatch(sample("StasisStart"))
      ari.sleep(1)
    end)
    assert.same({ "POST /channels/demo-A2/answer" }, seen)
  end)

  it("once fires once; off removes", function()
    local c = new_client()
    local n1, n2 = 0, 0
    c:once("ChannelDtmfReceived", function() n1 = n1 + 1 end)
    local h = c:on("ChannelDtmfReceived", function() n2 = n2 + 1 end)
    ari.run(function()
      c:dispatch(sample("ChannelDtmfReceived"))
      c:dispatch(sample("ChannelDtmfReceived"))
      c:off("ChannelDtmfReceived", h)
      c:dispatch(sample("ChannelDtmfReceived"))
    end)
    assert.equals(1, n1)
    assert.equals(2, n2)
  end)

  it("an error in a handler is reported and does not stop delivery", function()
    local c = new_client()
    local reported, after = nil, 0
    local sched = require "ari.sched"
    local old = sched.on_error
    sched.on_error = function(msg) reported = msg end
    c:on("ChannelHold", function() error("handler boom") end)
    c:on("ChannelHold", function() after = after + 1 end)
    ari.run(function() c:dispatch(sample("ChannelHold")) end)
    sched.on_error = old
    assert.matches("handler boom", tostring(reported))
    assert.equals(1, after)
  end)

  it("unknown event types still reach '*' and their own handlers", function()
    local c = new_client()
    local got = {}
    c:on("*", function(ev) got[#got + 1] = ev.type end)
    c:on("BrandNewEvent", function(ev) got[#got + 1] = "own:" .. ev.extra end)
    ari.run(function() c:dispatch(models.decode('{"type":"BrandNewEvent","extra":"x"}')) end)
    assert.same({ "own:x", "BrandNewEvent" }, (function() table.sort(got, function(a, b) return a > b end) return got end)())
  end)

  it("routers see every event first, synchronously", function()
    local c = new_client()
    local order = {}
    c:add_router(function(ev) order[#order + 1] = "router " .. ev.type end)
    c:on("*", function(ev) order[#order + 1] = "on " .. ev.type end)
    ari.run(function() c:dispatch(sample("ChannelHold")) end)
    assert.same({ "router ChannelHold", "on ChannelHold" }, order)
  end)
end)

describe("obj:on", function()
  it("every event type with an object reaches that object's handlers, and only its", function()
    local c = new_client()
    local routed = 0
    ari.run(function()
      for _, t in ipairs(EVENT_TYPES) do
        local ev = sample(t)
        local tg = targets(ev)
        for _, x in ipairs(tg) do
          local field, model, key = x[1], x[2], x[3]
          -- an object of the same kind and id, as a REST call would give it
          local obj = models.cast(client_mod.json_decode(client_mod.json_encode(ev[field])), model)
          models.attach(obj, c)
          local other = models.cast({ id = "other", name = "other", technology = "X", resource = "other" }, model)
          models.attach(other, c)
          local hits, wrong = 0, 0
          local h = obj:on(t, function(e) assert.equals(ev, e); hits = hits + 1 end)
          local hw = other:on(t, function() wrong = wrong + 1 end)
          c:dispatch(ev)
          ari.sleep(0)
          assert.equals(1, hits, t .. " -> " .. model .. " " .. key .. " (" .. field .. ")")
          assert.equals(0, wrong, t)
          obj:off(t, h); other:off(t, hw)
          routed = routed + 1
        end
      end
    end)
    -- every event type naming a channel/bridge/playback/... was routed
    local expected = 0
    for _, t in ipairs(EVENT_TYPES) do expected = expected + #targets(sample(t)) end
    assert.equals(expected, routed)
    assert.is_true(routed >= 45)
  end)

  it("routes by channel.id, peer.id, bridge.id, playback.id, recording.name, device name, endpoint", function()
    local function keys(t)
      local out = {}
      for _, x in ipairs(targets(sample(t))) do out[#out + 1] = x[2] .. ":" .. x[1] end
      table.sort(out)
      return table.concat(out, " ")
    end
    assert.equals("Channel:peer", keys("Dial")) -- the real sample has no caller
    local dial = {}
    for _, r in ipairs(client_mod.routes.Dial) do dial[#dial + 1] = r[1] end
    assert.same({ "caller", "forwarded", "peer" }, dial)
    assert.equals("Bridge:bridge Channel:channel", keys("ChannelEnteredBridge"))
    assert.equals("Playback:playback", keys("PlaybackFinished"))
    assert.equals("LiveRecording:recording", keys("RecordingFinished"))
    assert.equals("DeviceState:device_state", keys("DeviceStateChanged"))
    assert.equals("Endpoint:endpoint", keys("EndpointStateChange"))
  end)

  it("delivers one object's events in arrival order even when a handler waits", function()
    local c = new_client()
    local ch = models.cast({ id = "demo-A2", name = "n", state = "Up" }, "Channel")
    models.attach(ch, c)
    local order = {}
    ch:on("*", function(ev)
      if ev.type == "ChannelDtmfReceived" then ari.sleep(20) end
      order[#order + 1] = ev.type
    end)
    ari.run(function()
      for _, t in ipairs({ "ChannelDtmfReceived", "ChannelHold", "ChannelUnhold", "StasisEnd" }) do
        c:dispatch(sample_for(t, "demo-A2"))
      end
      ari.sleep(60)
    end)
    assert.same({ "ChannelDtmfReceived", "ChannelHold", "ChannelUnhold", "StasisEnd" }, order)
  end)

  it("drops an object's handlers after its final event", function()
    local c = new_client()
    local ch = models.cast({ id = "demo-A2" }, "Channel")
    models.attach(ch, c)
    local n = 0
    ch:on("*", function() n = n + 1 end)
    ari.run(function()
      local d = sample("ChannelDestroyed")
      d.channel.id = "demo-A2"
      c:dispatch(d)
      c:dispatch(sample_for("ChannelHold", "demo-A2"))
    end)
    assert.equals(1, n)
  end)

  it("does not lose playback events that arrive before the REST reply", function()
    local c
    c = new_client { transport = function(req)
      if req.path:match("/play$") then
        -- Asterisk often sends PlaybackStarted before the 201 of /play
        c:dispatch(sample("PlaybackStarted"))
        return 201, '{"id":"pb-hello","media_uri":"sound:hello-world","target_uri":"channel:demo-A2",'
          .. '"language":"en","state":"queued"}', {}
      end
      return 204, "", {}
    end }
    local started
    ari.run(function()
      local ch = models.cast({ id = "demo-A2" }, "Channel")
      models.attach(ch, c)
      local pb = ch:play { media = "sound:hello-world" }
      assert.equals("pb-hello", pb.id)
      pb:on("PlaybackStarted", function(ev) started = ev end)
      local fin = pb:wait("PlaybackStarted", nil, 100)
      assert.equals("PlaybackStarted", fin.type)
      ari.sleep(0)
    end)
    assert.equals("PlaybackStarted", started and started.type)
  end)
end)

describe("client:wait", function()
  it("waits for the next matching event (table or function filter) or times out", function()
    local c = new_client()
    ari.run(function()
      ari.spawn(function()
        ari.sleep(5)
        c:dispatch(sample("ChannelHold"))
        local d = sample("ChannelDtmfReceived")
        c:dispatch(d)
      end)
      local ev = c:wait("ChannelDtmfReceived", { channel = { id = "demo-A2" } }, 1000)
      assert.equals("ChannelDtmfReceived", ev.type)
      ari.spawn(function() ari.sleep(5); c:dispatch(sample_for("ChannelHold", "demo-A2")) end)
      ev = c:wait("ChannelHold", function(e) return e.channel.id == "demo-A2" end, 1000)
      assert.equals("ChannelHold", ev.type)
      local none, err = c:wait("ChannelHold", { channel = { id = "nobody" } }, 30)
      assert.is_nil(none)
      assert.equals("timeout", err)
      local ch = models.cast({ id = "demo-A2" }, "Channel")
      models.attach(ch, c)
      ari.spawn(function() ari.sleep(5); c:dispatch(sample_for("ChannelUnhold", "demo-A2")) end)
      ev = ch:wait("ChannelUnhold", nil, 1000)
      assert.equals("ChannelUnhold", ev.type)
    end)
  end)

  it("close ends waits with nil, 'closed'", function()
    local c = new_client()
    ari.run(function()
      ari.spawn(function() ari.sleep(5); c:close() end)
      local ev, err = c:wait("StasisStart", nil, 1000)
      assert.is_nil(ev)
      assert.equals("closed", err)
    end)
  end)
end)

describe("several clients", function()
  it("keep their own handlers, routing and transport", function()
    local sent = { a = {}, b = {} }
    local a = new_client { transport = function(r) sent.a[#sent.a + 1] = r.path; return 204, "", {} end, user = "ua" }
    local b = new_client { transport = function(r) sent.b[#sent.b + 1] = r.path; return 204, "", {} end, user = "ub" }
    local got = { a = 0, b = 0 }
    a:on("StasisStart", function(ev) got.a = got.a + 1; ev.channel:answer() end)
    b:on("StasisStart", function(ev) got.b = got.b + 1; ev.channel:hangup() end)
    ari.run(function()
      a:dispatch(sample("StasisStart"))
      b:dispatch(sample("StasisStart"))
      b:dispatch(sample("StasisStart"))
      ari.sleep(1)
    end)
    assert.same({ a = 1, b = 2 }, got)
    assert.same({ "/channels/demo-A2/answer" }, sent.a)
    assert.same({ "/channels/demo-A2", "/channels/demo-A2" }, sent.b)
    a:close(); b:close()
  end)
end)

describe("over a real WebSocket", function()
  it("events from the project's server reach client:on and obj:on", function()
    local server = require "ari.server"
    local auth, query
    local lines = {}
    for _, t in ipairs({ "StasisStart", "ChannelDtmfReceived", "ChannelVarset", "StasisEnd" }) do
      lines[#lines + 1] = read(FIX .. "events/" .. t .. ".json")
    end
    local srv = assert(server.listen {
      host = "127.0.0.1", port = 0,
      handler = function() return 404, {}, { message = "no" } end,
      on_websocket = function(req)
        auth, query = req.headers.authorization, req.query
        local ws = req:upgrade(nil, { on_message = function() end, on_close = function() end })
        for _, l in ipairs(lines) do ws:send(l) end
      end,
    })
    local got, per_channel = {}, {}
    local c = ari.connect { url = "http://127.0.0.1:" .. srv:port(), user = "asterisk", password = "secret",
      app = "test-app", subscribe_all = false }
    c:on("StasisStart", function(ev)
      ev.channel:on("ChannelDtmfReceived", function(e) per_channel[#per_channel + 1] = e.digit end)
    end)
    c:on("*", function(ev) got[#got + 1] = ev.type end)
    ari.run(function()
      local ev = c:wait("StasisEnd", nil, 5000)
      assert.is_truthy(ev, "no StasisEnd over the socket")
      ari.sleep(1)
      c:close()
      srv:close()
    end)
    assert.same({ "StasisStart", "ChannelDtmfReceived", "ChannelVarset", "StasisEnd" }, got)
    assert.equals(1, #per_channel)
    assert.equals("Basic " .. require("ari.base64")("asterisk:secret"), auth)
    assert.equals("app=test-app&subscribeAll=false", query)
  end)
end)
