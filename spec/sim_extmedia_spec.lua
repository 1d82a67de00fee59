-- The simulator's POST /channels/externalMedia (ari.sim.extmedia) against
-- what a real Asterisk 22.11 does (observed with curl and a raw events
-- socket, and read in res/ari/resource_channels.c, chan_rtp.c,
-- chan_audiosocket.c, chan_websocket.c): its checks and messages, the
-- channel it makes, the events, and the media on the wire (RTP from the
-- advertised port, chan_websocket's /media/<id> with its control messages).
local ari = require "ari"
local core = require "ari.core"
local simmod = require "ari.sim"
local json = require "ari.sim.json"
local util = require "spec.support.util"
local ws = require "ari.ws"

local wait_for = util.wait_for

local function with_sim(opts, fn)
  if fn == nil then fn, opts = opts, {} end
  ari.run(function()
    opts.speed = opts.speed or 1
    local sim = simmod.new(opts)
    local events = {}
    sim:connect_events("em", false, function(text) events[#events + 1] = assert(json.decode(text)) end)
    local ok, err = pcall(fn, sim, events)
    sim:close()
    if not ok then error(err, 0) end
  end)
end

local function post(sim, query, body)
  local s, text = sim:request("POST", "/ari/channels/externalMedia", query, body,
    body and { ["content-type"] = "application/json" } or nil)
  return s, text and json.decode(text), text
end

-- the event types of channel id, in order
local function types_of(events, id)
  local t = {}
  for _, e in ipairs(events) do
    local ch = e.channel or e.peer
    if ch and ch.id == id then t[#t + 1] = e.type .. (e.dialstatus and ("(" .. e.dialstatus .. ")") or "") end
  end
  return t
end

local function of(events, id, etype)
  for _, e in ipairs(events) do
    local ch = e.channel or e.peer
    if ch and ch.id == id and e.type == etype then return e end
  end
end

describe("sim externalMedia: checks, in Asterisk's order and words", function()
  local cases = {
    { "format=slin16", 400, "external_host is required for all but websocket server connections" },
    { "format=slin16&transport=websocket&external_host=x", 400, "encapsulation must be 'none' for websocket transport" },
    { "format=slin16&transport=tcp&external_host=1.2.3.4:5", 400, "transport must be 'udp' for rtp encapsulation" },
    { "format=slin16&encapsulation=audiosocket&external_host=1.2.3.4:5", 400, "transport must be 'tcp' for audiosocket encapsulation" },
    { "format=slin16&connection_type=server&external_host=1.2.3.4:5", 400, "'server' connection_type can only be used with the websocket transport" },
    { "format=slin16&transport=websocket&encapsulation=none&external_host=nosuch", 400, "external_host must be a valid websocket_client connection id." },
    { "format=slin16&external_host=127.0.0.1", 400, "external_host must be <host>:<port> for all transports other than websocket" },
    { "external_host=127.0.0.1:4000", 400, "format cannot be empty" },
    { "format=slin16&transport=websocket&encapsulation=none&connection_type=server&direction=sideways", 400, "Invalid direction specified" },
    { "format=slin16&encapsulation=audiosocket&transport=tcp&external_host=127.0.0.1:4000", 400, "data can not be empty" },
    { "format=slin16&encapsulation=none&transport=udp&external_host=1.2.3.4:5", 501, "The encapsulation and/or transport is not supported" },
    { "format=nosuch&external_host=127.0.0.1:4000", 500, "An internal error prevented this request from being handled" },
    { "format=slin16&external_host=nohost.invalid:4000", 500, "An internal error prevented this request from being handled" },
    { "format=slin16&encapsulation=audiosocket&transport=tcp&external_host=127.0.0.1:4000&data=notauuid", 500,
      "An internal error prevented this request from being handled" },
  }
  it("answers each bad request as Asterisk 22 does", function()
    with_sim(function(sim)
      local s, v = post(sim, "format=slin16&external_host=127.0.0.1:4000")
      assert.equals(400, s)
      assert.equals("app cannot be empty", v.message)
      for _, c in ipairs(cases) do
        s, v = post(sim, "app=em&" .. c[1])
        assert.equals(c[2], s, c[1])
        assert.equals(c[3], v.message, c[1])
      end
    end)
  end)

  it("refuses an AudioSocket server nobody listens on (500), and a channel id in use (500, not 409)", function()
    with_sim(function(sim, events)
      -- a port nobody listens on: take one from the system, then free it
      local probe = assert(core.farmedia({ kind = "rtp", format = "slin", host = "127.0.0.1", port = 9, bind = "127.0.0.1" }))
      local port = probe:local_port()
      probe:close()
      local s, v = post(sim, "app=em&format=slin&encapsulation=audiosocket&transport=tcp&external_host=127.0.0.1:" .. port
        .. "&data=0b7c9f2e-1234-4a5b-8c6d-7e8f9a0b1c2d")
      assert.equals(500, s)
      assert.equals("An internal error prevented this request from being handled", v.message)
      assert.equals(200, (post(sim, "app=em&format=ulaw&external_host=127.0.0.1:40000&channelId=dup")))
      s, v = post(sim, "app=em&format=ulaw&external_host=127.0.0.1:40000&channelId=dup")
      assert.equals(500, s)
      wait_for(events, function(e) return e.type == "StasisStart" end)
    end)
  end)
end)

describe("sim externalMedia: rtp", function()
  it("makes a UnicastRTP channel that enters the app at once, with args from data", function()
    with_sim(function(sim, events)
      local s, v, text = post(sim, "app=em&format=slin16&external_host=127.0.0.1:40000&channelId=e1&data=hi")
      assert.equals(200, s)
      assert.matches("^UnicastRTP/127%.0%.0%.1:40000%-0x%x+$", v.name)
      assert.equals("Down", v.state)
      assert.equals("AppDial2", v.dialplan.app_name)
      -- channelvars newest first, as Asterisk lists them
      assert.matches('"channelvars":{"UNICASTRTP_LOCAL_PORT":"%d+","UNICASTRTP_LOCAL_ADDRESS":"127.0.0.1"}}$', text)
      assert.is_true(tonumber(v.channelvars.UNICASTRTP_LOCAL_PORT) > 0)
      wait_for(events, function(e) return e.type == "StasisStart" end)
      assert.same({ "Dial()", "ChannelStateChange", "Dial(ANSWER)", "ChannelVarset", "StasisStart" }, types_of(events, "e1"))
      assert.equals("127.0.0.1:40000/c(slin16)", of(events, "e1", "Dial").dialstring)
      assert.same({ "hi" }, of(events, "e1", "StasisStart").args)
      assert.equals("em,hi", of(events, "e1", "StasisStart").channel.dialplan.app_data)
    end)
  end)

  it("sends the caller's audio as RTP from the advertised port and measures what comes back", function()
    local scn = { app = "em", calls = { { from = "1001", channel_id = "caller", audio = { tone = 440, amplitude = 8000 },
      script = { { "wait_hangup", timeout = 20000 } } } } }
    with_sim({ scenario = scn }, function(sim, events)
      require("ari.sim.scenario").start(sim, "em")
      wait_for(events, function(e) return e.type == "StasisStart" and e.channel.id == "caller" end)
      assert.equals(204, (sim:request("POST", "/ari/channels/caller/answer")))
      -- the app's end: an RTP socket of our own (the same C peer the simulator uses)
      local app_side = assert(core.farmedia({ kind = "rtp", format = "slin", frame_bytes = 320, host = "127.0.0.1",
        port = 9, bind = "127.0.0.1", pt = 11 }))
      local app_port = app_side:local_port()
      app_side:close()
      local s, v = post(sim, "app=em&format=slin&external_host=127.0.0.1:" .. app_port .. "&channelId=e2")
      assert.equals(200, s)
      local sim_port = tonumber(v.channelvars.UNICASTRTP_LOCAL_PORT)
      app_side = assert(core.farmedia({ kind = "rtp", format = "slin", frame_bytes = 320, host = "127.0.0.1",
        port = sim_port, bind = "127.0.0.1", bind_port = app_port, pt = 11 }))
      assert.equals(app_port, (app_side:local_port()))
      wait_for(events, function(e) return e.type == "StasisStart" and e.channel.id == "e2" end)
      assert.equals(200, (sim:request("POST", "/ari/bridges/b1", "type=mixing")))
      assert.equals(204, (sim:request("POST", "/ari/bridges/b1/addChannel", "channel=caller,e2")))
      -- the app talks back: 1 s of a quieter tone
      local tone = {}
      for i = 0, 7999 do tone[#tone + 1] = string.pack("<i2", math.floor(2000 * math.sin(2 * math.pi * 300 * i / 8000))) end
      app_side:source(table.concat(tone), false)
      app_side:flow(true)
      local deadline = ari.now() + 5000
      while app_side:stats().frames_in < 60 and ari.now() < deadline do ari.sleep(20) end
      local got = app_side:stats()
      assert.is_true(got.frames_in >= 60, "RTP from the simulator: " .. got.frames_in)
      assert.is_true(got.rms_in > 5000 and got.rms_in < 6000, "the caller's tone: " .. got.rms_in)
      app_side:close()
      -- slin16's dynamic payload type (118) is dropped, as chan_rtp drops it
      local odd = assert(core.farmedia({ kind = "rtp", format = "slin", frame_bytes = 320, host = "127.0.0.1",
        port = sim_port, bind = "127.0.0.1", pt = 118 }))
      odd:flow(true)
      local peer = sim.extmedia.e2.peer
      deadline = ari.now() + 5000
      while peer:stats().dropped_in < 5 and ari.now() < deadline do ari.sleep(20) end
      odd:close()
      assert.equals(204, (sim:request("DELETE", "/ari/channels/e2")))
      local m = sim.media_stats.e2
      assert.is_not_nil(m)
      assert.equals("rtp", m.transport)
      assert.is_true(m.to_app.frames >= 60)
      assert.is_true(m.from_app.loud_ms >= 700 and m.from_app.loud_ms <= 1040, "1 s of tone from the app: " .. m.from_app.loud_ms)
      assert.is_true(math.abs(m.from_app.peak_rms - 1414) < 60, "the app's tone: " .. m.from_app.peak_rms)
      assert.is_true(m.from_app.dropped >= 5, "payload type 118 dropped: " .. m.from_app.dropped)
      -- in the transcript, with the caller's call
      local entry
      for _, e in ipairs(sim.transcript) do if e.kind == "media" then entry = e end end
      assert.equals(sim.chan_call.caller, entry.call)
      assert.same(m, entry.media)
    end)
  end)
end)

describe("sim externalMedia: websocket (chan_websocket, server)", function()
  local function media_ws(sim, id, msgs)
    local done = false
    local conn = ws.connect { url = sim.url:gsub("^http", "ws") .. "/media/" .. id, protocol = "media", reconnect = false,
      on_message = function(text, binary) if not binary then msgs[#msgs + 1] = text end end,
      on_close = function() done = true end, on_error = function() done = true end }
    return conn, function() return done end
  end

  it("stays Down until /media/<id> is connected, then says MEDIA_START and enters the app", function()
    with_sim(function(sim, events)
      sim:listen { host = "127.0.0.1", port = 0 }
      local s, v, text = post(sim, "app=em&format=slin16&transport=websocket&encapsulation=none&connection_type=server&channelId=w1")
      assert.equals(200, s)
      assert.matches("^WebSocket/INCOMING/0x%x+$", v.name)
      assert.matches('"channelvars":{"MEDIA_WEBSOCKET_CONNECTION_ID":"[%x%-]+","MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE":"640"}}$', text)
      local id = v.channelvars.MEDIA_WEBSOCKET_CONNECTION_ID
      wait_for(events, function(e) return e.type == "Dial" end)
      assert.equals("INCOMING", of(events, "w1", "Dial").dialstring)
      assert.same({ "Dial()" }, types_of(events, "w1"))
      local msgs = {}
      local conn = media_ws(sim, id, msgs)
      assert.is_true(conn:wait_open(3000))
      wait_for(events, function(e) return e.type == "StasisStart" end)
      assert.same({ "Dial()", "ChannelStateChange", "Dial(ANSWER)", "ChannelVarset", "StasisStart" }, types_of(events, "w1"))
      wait_for(msgs, function(m) return m:find("^MEDIA_START") end)
      assert.equals("MEDIA_START connection_id:" .. id .. " channel:" .. v.name .. " channel_id:w1 format:slin16 optimal_frame_size:640 ptime:20", msgs[1])
      conn:send("GET_STATUS")
      wait_for(msgs, function(m) return m:find("^STATUS") end)
      assert.equals("STATUS channel_id:w1 queue_length:0 xon_level:800 xoff_level:900 queue_full:false bulk_media:false media_paused:false", msgs[2])
      conn:send("MARK_MEDIA m1")
      wait_for(msgs, function(m) return m == "MEDIA_MARK_PROCESSED m1" end)
      -- the app closes: hang-up with chan_websocket's "going away" (1001)
      conn:close()
      local d = wait_for(events, function(e) return e.type == "ChannelDestroyed" end)
      local hr = of(events, "w1", "ChannelHangupRequest")
      assert.equals(16, hr.cause)
      assert.equals(1001, hr.tech_cause)
      assert.equals(16, d.cause)
      assert.equals(1001, d.tech_cause)
    end)
  end)

  it("HANGUP: cause 16 then 0, tech_cause 1000; an unknown id is 404; a second connection 409", function()
    with_sim(function(sim, events)
      sim:listen { host = "127.0.0.1", port = 0 }
      local _, v = post(sim, "app=em&format=ulaw&transport=websocket&encapsulation=none&connection_type=server&channelId=w2&direction=both")
      assert.equals("160", v.channelvars.MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE)
      local bad = {}
      local c0, closed0 = media_ws(sim, "nosuch", bad)
      local ok = c0:wait_open(1000)
      assert.is_falsy(ok)
      c0:close()
      local msgs = {}
      local conn = media_ws(sim, v.channelvars.MEDIA_WEBSOCKET_CONNECTION_ID, msgs)
      assert.is_true(conn:wait_open(3000))
      local c2 = media_ws(sim, v.channelvars.MEDIA_WEBSOCKET_CONNECTION_ID, {})
      assert.is_falsy(c2:wait_open(1000))
      c2:close()
      wait_for(events, function(e) return e.type == "StasisStart" end)
      assert.equals("INCOMING/d(both)", of(events, "w2", "Dial").dialstring)
      conn:send("HANGUP")
      local d = wait_for(events, function(e) return e.type == "ChannelDestroyed" end)
      local hr = of(events, "w2", "ChannelHangupRequest")
      assert.equals(16, hr.cause)
      assert.equals(1000, hr.tech_cause)
      assert.equals(0, d.cause)
      assert.equals(1000, d.tech_cause)
      assert.is_true(closed0() or true)
      conn:close()
    end)
  end)

  it("never connected: gone after the originate's 30 s with cause 19, no hang-up request", function()
    with_sim({ speed = 100 }, function(sim, events)
      local s = post(sim, "app=em&format=slin16&transport=websocket&encapsulation=none&connection_type=server&channelId=w3")
      assert.equals(200, s)
      local d = wait_for(events, function(e) return e.type == "ChannelDestroyed" end, 5000)
      assert.equals(19, d.cause)
      assert.same({ "Dial()", "ChannelDestroyed" }, types_of(events, "w3"))
    end)
  end)
end)

describe("sim externalMedia: ari.testing", function()
  it("gives each call the figures of its media streams (r.media, view.media)", function()
    local testing = require "ari.testing"
    local r = testing.run { app = "examples/echo-bot.lua", scenario = "examples/scenarios/echo-bot.lua", speed = 1 }
    assert.same({}, r.errors)
    assert.equals(1, #r.media)
    local m = r.calls[1].media[1]
    assert.equals(r.media[1], m)
    assert.equals("rtp", m.transport)
    assert.is_true(m.from_app.loud_ms >= 1000 and m.from_app.loud_ms <= 2200, m.from_app.loud_ms)
  end)
end)

describe("sim externalMedia: websocket (chan_websocket, client)", function()
  it("dials the scenario's websocket_clients connection: MEDIA_START, audio both ways", function()
    local testing = require "ari.testing"
    local media = require "ari.media"
    local lst, r
    ari.run(function() lst = media.listen { host = "127.0.0.1", port = 0 } end)
    r = testing.run { name = "wsc", speed = 1,
      scenario = { app = "wsc", websocket_clients = { ["bot-media"] = { uri = lst:url() } },
        calls = { { from = "1001", voice = { tone = 440 },
          script = { { "wait_answer" }, { "sleep", 300 }, { "talk", 1000 }, { "silence", 500 }, { "hangup" } } } } },
      on_call = function(call)
        call:answer()
        local m = call:media { transport = "websocket", connection_type = "client", connection = "bot-media",
          listener = lst }
        while true do
          local d = m:read()
          if not d then break end
          m:write(d)
        end
      end,
    }
    lst:close()
    assert.same({}, r.errors)
    assert.equals(1, #r.media)
    local m = r.media[1]
    assert.equals("websocket", m.transport)
    -- (a loaded machine may lose some of the echo: at least half of it, never more than was sent)
    assert.is_true(m.from_app.loud_ms >= 500 and m.from_app.loud_ms <= 1100, m.from_app.loud_ms)
    assert.is_true(r:find("websocket client connected to ws://127%.0%.0%.1:%d+"))
  end)

  it("without such a connection: 400, as Asterisk", function()
    with_sim(function(sim)
      local s, v = post(sim, "app=em&format=slin16&transport=websocket&encapsulation=none&external_host=bot-media")
      assert.equals(400, s)
      assert.equals("external_host must be a valid websocket_client connection id.", v.message)
    end)
  end)
end)

describe("sim externalMedia: websocket client connection refused", function()
  it("ends the channel with cause 3 and no Dial (as Asterisk 22.11)", function()
    local probe
    ari.run(function()
      probe = assert(core.farmedia({ kind = "rtp", format = "slin", host = "127.0.0.1", port = 9, bind = "127.0.0.1" }))
    end)
    local port = probe:local_port()
    probe:close()
    with_sim({ scenario = { websocket_clients = { nobody = { uri = "ws://127.0.0.1:" .. port .. "/media" } } } },
      function(sim, events)
        local s, v = post(sim, "app=em&format=slin16&transport=websocket&encapsulation=none&external_host=nobody&channelId=wc2")
        assert.equals(200, s)
        assert.equals("nobody", v.channelvars.MEDIA_WEBSOCKET_CONNECTION_ID)
        assert.matches("^WebSocket/nobody/0x%x+$", v.name)
        local d = wait_for(events, function(e) return e.type == "ChannelDestroyed" end)
        assert.equals(3, d.cause)
        assert.same({ "ChannelDestroyed" }, types_of(events, "wc2"))
      end)
  end)
end)

describe("call:media options", function()
  it("refuses a bad stall_timeout with a usage error before making anything", function()
    local testing = require "ari.testing"
    local got = {}
    local r = testing.run { name = "opts", speed = 1,
      scenario = { app = "opts", calls = { { from = "1001", script = { { "wait_answer" }, { "wait_hangup", timeout = 5000 } } } } },
      on_call = function(call)
        call:answer()
        for _, v in ipairs { -1, 1.5, "10s" } do
          local ok, err = pcall(call.media, call, { transport = "audiosocket", format = "slin16", stall_timeout = v })
          got[#got + 1] = { ok, err.kind, tostring(err):match("stall_timeout") ~= nil }
        end
        local m = call:media { transport = "audiosocket", format = "slin16", stall_timeout = 0 }
        got.zero = m.closed == false or m.closed == nil
        m:close()
        call:hangup()
      end,
    }
    assert.same({}, r.errors)
    for i = 1, 3 do assert.same({ false, "usage", true }, got[i]) end
    assert.is_true(got.zero)
    assert.equals(1, #r.media) -- only the valid one made an external media channel
  end)
end)
