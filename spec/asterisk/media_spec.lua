-- Real Asterisk: call:media (docs/media.md).  The caller is Local/moh@caller
-- (music on hold): its audio must reach m:read() with energy, in order, at
-- real time; a tone written with m:write() must reach the call (checked on
-- a snoop of the call's incoming audio, read through a second stream).
local ast = require "spec.support.asterisk"
local ari = require "ari"
local core = require "ari.core"

local function transports()
  local list = { "rtp", "audiosocket" }
  if ast.at_least(20) then list[#list + 1] = "websocket" end
  return list
end

-- Run fn(call, got) as the on_call of a fresh app for a Local/EXTEN@caller
-- call; returns what fn left in got and the call's outcome.
local function with_call(inst, exten, fn, limit)
  local got = {}
  ast.run(function()
    local name = ast.app_name("media")
    local app = ari.app { app = name, url = inst.url, user = inst.user, password = inst.password }
    local done
    app:on_call(function(call) fn(call, got, app) end)
    app.on_end = function(_, outcome, err) done = outcome; got.err = got.err or err end
    ast.poll(function() return app.client.stats.connects > 0 end, "the events socket")
    ast.originate(app.client, exten, name)
    ast.poll(function() return done ~= nil end, "the call to end")
    got.outcome = done
    app.client:close()
  end, limit or 30000)
  return got
end

-- Read `n` chunks; returns their count, total ms, mean energy, and the
-- wall-clock ms they took.
local function read_some(m, n)
  local total, energy, t0 = 0, 0, core.now()
  local first
  for i = 1, n do
    local data, ms = m:read(3000)
    assert(data, "read: " .. tostring(ms))
    if i == 1 then first = core.now() end
    total = total + ms
    energy = energy + ari.audio.energy(data, m.format)
  end
  return { n = n, ms = total, energy = energy / n, wall = core.now() - (first or t0) }
end

ast.describe("real Asterisk: call audio (call:media) #core", function(inst)
  for _, tr in ipairs { "rtp", "audiosocket" } do
    it("audio from music on hold reaches m:read() over " .. tr, function()
      local fmt = tr == "audiosocket" and "slin" or "slin16"
      local got = with_call(inst, "moh", function(call, g)
        call:answer()
        local m = call:media { format = fmt, transport = tr }
        g.fields = { format = m.format, rate = m.rate, frame_ms = m.frame_ms, transport = m.transport,
          channel = m.channel and m.channel.id }
        read_some(m, 10) -- the first frames may be the start of the music
        g.r = read_some(m, 50)
        g.stats = m:stats()
        m:close()
        g.after_close = { m:read(100) }
        call:hangup()
      end)
      assert.is_nil(got.err)
      assert.equals(fmt, got.fields.format)
      assert.equals(tr, got.fields.transport)
      assert.equals(20, got.fields.frame_ms)
      assert.is_string(got.fields.channel)
      assert.is_true(got.r.energy > 100, "energy " .. tostring(got.r.energy))
      assert.is_true(math.abs(got.r.ms - 1000) < 1, "ms " .. tostring(got.r.ms))
      -- 1 s of audio came in about 1 s (real time, not a burst): generous bounds
      assert.is_true(got.r.wall > 600, "wall " .. tostring(got.r.wall))
      assert.equals(0, got.stats.dropped_foreign)
      assert.is_nil(got.after_close[1])
      assert.equals("closed", got.after_close[2])
    end)
  end

  it("websocket (connection_type server): audio both ways", function()
    if not ast.at_least(20) then
      pending("chan_websocket (transport websocket) needs Asterisk 20 or later; this is " .. tostring(ast.version))
      return
    end
    local got = with_call(inst, "moh", function(call, g)
      call:answer()
      local m = call:media { format = "slin16", transport = "websocket" }
      g.start = m.media_start
      g.r = read_some(m, 50)
      call:hangup()
    end)
    assert.is_nil(got.err)
    assert.is_true(got.r.energy > 100, "energy " .. tostring(got.r.energy))
    assert.is_true(math.abs(got.r.ms - 1000) < 1)
  end)
end)

ast.describe("real Asterisk: call audio (call:media)", function(inst)
  for _, tr in ipairs(transports()) do
    it("a tone written with m:write() is heard on the call (" .. tr .. ")", function()
      local fmt = tr == "audiosocket" and "slin" or "slin16"
      local got = with_call(inst, "wait", function(call, g)
        call:answer()
        local m = call:media { format = fmt, transport = tr }
        -- what the call receives: a snoop of its outgoing audio ("out": towards the caller)
        local snoop = call:snoop { spy = "out" }
        local sm = snoop:media { format = "slin", transport = "rtp" }
        local quiet = read_some(sm, 10)
        local tone = ari.audio.tone(440, 1000, fmt, 10000)
        assert(m:write(tone))
        local heard = read_some(sm, 40)
        g.quiet, g.heard = quiet.energy, heard.energy
        assert(m:drain(5000))
        g.stats = m:stats()
        call:hangup()
      end)
      assert.is_nil(got.err)
      assert.is_true(got.heard > 1000, "heard " .. tostring(got.heard))
      assert.is_true(got.heard > 10 * (got.quiet + 1), "quiet " .. tostring(got.quiet))
      assert.is_true(got.stats.frames_out >= 50, "frames out " .. tostring(got.stats.frames_out))
    end)

    it("a hang-up ends a waiting m:read() with the Hangup error (" .. tr .. ")", function()
      local got = with_call(inst, "short", function(call, g)
        call:answer()
        local m = call:media { format = tr == "audiosocket" and "slin" or "ulaw", transport = tr }
        g.m = m
        local ok, err = pcall(function() while true do m:read() end end)
        g.ok, g.err_hangup = ok, ari.app and require("ari.call").is_hangup(err)
        g.werr = { pcall(m.write, m, "\0\0") }
      end)
      assert.is_false(got.ok)
      assert.is_true(got.err_hangup)
      assert.is_false(got.werr[1])
      assert.is_true(got.m.closed)
    end)
  end

  it("bad input: unknown format and transport, odd-length slin, overflow", function()
    local got = with_call(inst, "wait", function(call, g)
      call:answer()
      g.badfmt = { pcall(call.media, call, { format = "mp3" }) }
      g.badtr = { pcall(call.media, call, { transport = "sctp" }) }
      local m = call:media { format = "slin", transport = "rtp", queue_ms = 200 }
      g.odd = { pcall(m.write, m, "abc") }
      g.first = { m:write(ari.audio.silence(200, "slin")) }
      g.over = { m:write(ari.audio.silence(40, "slin")) }
      g.flushed = m:flush()
      g.after = { m:write(ari.audio.silence(40, "slin")) }
      call:hangup()
    end)
    assert.is_false(got.badfmt[1]); assert.equals("usage", got.badfmt[2].kind)
    assert.matches("unknown format 'mp3'", tostring(got.badfmt[2]))
    assert.is_false(got.badtr[1]); assert.equals("usage", got.badtr[2].kind)
    assert.is_false(got.odd[1]); assert.equals("usage", got.odd[2].kind)
    assert.is_true(got.first[1])
    assert.is_nil(got.over[1]); assert.equals("overflow", got.over[2].reason); assert.equals("media", got.over[2].kind)
    assert.is_true(got.flushed > 100)
    assert.is_true(got.after[1])
  end)

  it("a UDP flood from another port onto the stream's port is dropped and counted", function()
    local got = with_call(inst, "moh", function(call, g)
      call:answer()
      local m = call:media { format = "ulaw", transport = "rtp" }
      local port = tonumber(m.external_host:match(":(%d+)$"))
      -- a second stream's socket sends RTP-looking packets at the first one's port
      local flood = assert(core.media_new({ transport = "rtp", format = "ulaw" }, function() end))
      flood:set_peer("127.0.0.1", port)
      assert(flood:write(ari.audio.tone(1000, 400, "ulaw", 20000)))
      local r = read_some(m, 40)
      g.stats = m:stats()
      g.fstats = flood:stats()
      g.energy = r.energy
      flood:close()
      call:hangup()
    end)
    assert.is_nil(got.err)
    assert.is_true(got.fstats.frames_out >= 10, "flood sent " .. tostring(got.fstats.frames_out))
    assert.is_true(got.stats.dropped_foreign >= 10, "dropped " .. tostring(got.stats.dropped_foreign))
  end)
end)
