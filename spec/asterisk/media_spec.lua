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
        read_some(m, 100) -- the music fades in over its first two seconds
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
      assert(m:write(ari.audio.tone(440, 1000, "slin16", 5000)))
      g.flushed = m:flush() -- also FLUSH_MEDIA to Asterisk
      g.queued_after = m:stats().queue_ms
      read_some(m, 100)
      g.r = read_some(m, 50)
      call:hangup()
    end)
    assert.is_nil(got.err)
    assert.is_true(got.r.energy > 100, "energy " .. tostring(got.r.energy))
    assert.is_true(math.abs(got.r.ms - 1000) < 1)
    assert.matches("MEDIA_START", got.start)
    assert.is_true(got.flushed > 800, "flushed " .. tostring(got.flushed))
    assert.equals(0, got.queued_after)
  end)
end)

ast.describe("real Asterisk: call audio (call:media)", function(inst)
  for _, tr in ipairs(transports()) do
    it("a tone written with m:write() is heard on the call (" .. tr .. ")", function()
      -- the far end (Local/echo@caller) sends back what it hears: the tone
      -- comes back through the call into the same stream.  (RTP: slin, payload
      -- type 11; Asterisk drops slin16 it receives over RTP: see docs/media.md)
      local fmt = (tr == "audiosocket" or tr == "rtp") and "slin" or "slin16"
      local got = with_call(inst, "echo", function(call, g)
        call:answer()
        local m = call:media { format = fmt, transport = tr }
        -- nothing (or silence: AudioSocket is fed silence) comes back before the tone
        local b = m:read(300)
        g.before = b and ari.audio.energy(b, fmt) or 0
        assert(m:write(ari.audio.tone(440, 2000, fmt, 10000)))
        read_some(m, 10)
        local heard = read_some(m, 50)
        assert(m:drain(5000))
        -- and once the tone has been sent, silence (or nothing) comes back
        g.ended = false
        for _ = 1, 150 do
          local d = m:read(300)
          if d == nil or ari.audio.energy(d, fmt) < 200 then g.ended = true; break end
        end
        g.heard = heard.energy
        g.stats = m:stats()
        call:hangup()
      end)
      assert.is_nil(got.err)
      assert.is_true(got.heard > 1000, "heard " .. tostring(got.heard))
      assert.is_true(got.before < 200, "before " .. tostring(got.before))
      assert.is_true(got.ended, "the echo of the tone did not end")
      assert.is_true(got.stats.frames_out >= 100, "frames out " .. tostring(got.stats.frames_out))
    end)

    it("the media channel hanging up ends the stream, not the call (" .. tr .. ")", function()
      local got = with_call(inst, "moh", function(call, g, app)
        call:answer()
        local m = call:media { format = tr == "websocket" and "slin16" or "slin", transport = tr }
        assert(m:read(3000))
        ari.spawn(function() app.client.channels.hangup { channelId = m.channel.id } end)
        local d, why
        repeat d, why = m:read(5000) until d == nil
        g.why, g.reason, g.call_up = why, m.closed_reason, not call.hungup
        g.write = { m:write(ari.audio.silence(20, m.format)) }
        call:hangup()
      end)
      assert.is_nil(got.err)
      assert.equals("closed", got.why)
      assert.equals("peer", got.reason)
      assert.is_true(got.call_up)
      assert.is_nil(got.write[1])
      assert.equals("closed", got.write[2].reason)
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

  it("AudioSocket in slin16 (Asterisk 20 and later), both ways; refused before", function()
    local got = with_call(inst, "echo", function(call, g)
      call:answer()
      if not ast.at_least(20) then
        g.refused = { pcall(call.media, call, { transport = "audiosocket", format = "slin16" }) }
        call:hangup()
        return
      end
      local m = call:media { format = "slin16", transport = "audiosocket" }
      assert(m:write(ari.audio.tone(440, 1500, "slin16", 10000)))
      local r = read_some(m, 40)
      g.heard, g.ms = r.energy, r.ms
      call:hangup()
    end)
    assert.is_nil(got.err)
    if not ast.at_least(20) then
      assert.is_false(got.refused[1])
      assert.equals("unsupported", got.refused[2].kind)
      assert.equals(20, got.refused[2].since)
      pending("slin16 over AudioSocket needs Asterisk 20 or later; checked that 18 refuses it")
      return
    end
    assert.is_true(got.heard > 1000, "heard " .. tostring(got.heard))
    assert.is_true(math.abs(got.ms - 800) < 1)
  end)

  it("bad input: unknown format and transport, odd-length slin, overflow", function()
    local got = with_call(inst, "wait", function(call, g)
      call:answer()
      g.badfmt = { pcall(call.media, call, { format = "mp3" }) }
      g.badtr = { pcall(call.media, call, { transport = "sctp" }) }
      g.asulaw = { pcall(call.media, call, { transport = "audiosocket", format = "ulaw" }) }
      g.wsbad = { pcall(call.media, call, { transport = "websocket", connection_type = "client" }) }
      local m = call:media { format = "slin", transport = "rtp", queue_ms = 200 }
      g.odd = { pcall(m.write, m, "abc") }
      local m16 = call:media { format = "slin16", transport = "rtp" }
      g.rtp16 = { m16:write(ari.audio.silence(20, "slin16")) }
      m16:close()
      g.first = { m:write(ari.audio.silence(200, "slin")) }
      g.over = { m:write(ari.audio.silence(40, "slin")) }
      g.flushed = m:flush()
      g.after = { m:write(ari.audio.silence(40, "slin")) }
      call:hangup()
    end)
    assert.is_false(got.badfmt[1]); assert.equals("usage", got.badfmt[2].kind)
    assert.matches("unknown format 'mp3'", tostring(got.badfmt[2]))
    assert.is_false(got.badtr[1]); assert.equals("usage", got.badtr[2].kind)
    assert.is_false(got.asulaw[1]); assert.equals("usage", got.asulaw[2].kind)
    assert.is_false(got.wsbad[1]); assert.equals("usage", got.wsbad[2].kind)
    assert.is_false(got.odd[1]); assert.equals("usage", got.odd[2].kind)
    assert.is_nil(got.rtp16[1]); assert.equals("unsupported", got.rtp16[2].reason)
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

ast.describe("real Asterisk: call audio across an Asterisk restart", function()
  it("every stream's reading coroutine ends cleanly when Asterisk restarts mid-stream", function()
    local inst = ast.start {}
    local trs = transports()
    local got = { ended = {}, reading = 0 }
    local ok, err = pcall(ast.run, function()
      local name = ast.app_name("mrestart")
      local app = ari.app { app = name, url = inst.url, user = inst.user, password = inst.password }
      local i = 0
      app:on_call(function(call)
        i = i + 1
        local tr = trs[i]
        call:answer()
        local m = call:media { format = tr == "audiosocket" and "slin" or "ulaw", transport = tr }
        assert(m:read(3000))
        got.reading = got.reading + 1
        local rok, rerr = pcall(function()
          while true do
            local d, why = m:read()
            if not d then return why end
          end
        end)
        got.ended[tr] = rok and ("returned " .. tostring(rerr)) or (require("ari.call").is_hangup(rerr) and "hangup" or tostring(rerr))
      end)
      ast.poll(function() return app.client.stats.connects > 0 end, "the events socket")
      for _ = 1, #trs do ast.originate(app.client, "moh", name) end
      ast.poll(function() return got.reading == #trs end, "every stream to read audio", 20000)
      inst:restart()
      ast.poll(function()
        local n = 0
        for _ in pairs(got.ended) do n = n + 1 end
        return n == #trs
      end, "every stream's coroutine to end", 60000)
      app.client:close()
    end, 120000)
    inst:stop()
    if not ok then error(err, 0) end
    for _, tr in ipairs(trs) do
      assert.is_truthy(got.ended[tr] == "hangup" or got.ended[tr] == "returned closed", tr .. ": " .. tostring(got.ended[tr]))
    end
  end)
end)

ast.describe("real Asterisk: websocket media, connection_type client", function()
  it("Asterisk connects to the app's listener; audio both ways", function()
    if not ast.at_least(20) then
      pending("chan_websocket and websocket_client.conf need Asterisk 20 or later; this is " .. tostring(ast.version))
      return
    end
    local listener = ari.media.listen { host = "127.0.0.1", port = 0 }
    local conf = os.tmpname()
    os.remove(conf)
    assert(os.execute("mkdir -p '" .. conf .. "'"))
    local f = assert(io.open(conf .. "/websocket_client.conf", "w"))
    f:write(table.concat({ "[app-media]", "type = websocket_client", "connection_type = per_call_config",
      "uri = " .. listener:url("/media"), "protocols = media", "connection_timeout = 2000", "" }, "\n"))
    f:close()
    local inst = ast.start { version = ast.version, conf = conf }
    local got
    local ok, err = pcall(function()
      got = with_call(inst, "echo", function(call, g)
        call:answer()
        local m = call:media { format = "slin16", transport = "websocket", connection_type = "client",
          connection = "app-media", listener = listener }
        g.connection_type = m.connection_type
        g.start = m.media_start
        assert(m:write(ari.audio.tone(440, 1500, "slin16", 10000)))
        read_some(m, 10)
        g.heard = read_some(m, 40).energy
        g.lstats = listener:stats()
        call:hangup()
      end)
    end)
    inst:stop()
    listener:close()
    os.execute("rm -rf '" .. conf .. "'")
    if not ok then error(err, 0) end
    assert.is_nil(got.err)
    assert.equals("client", got.connection_type)
    assert.matches("MEDIA_START", got.start)
    assert.is_true(got.heard > 1000, "heard " .. tostring(got.heard))
    assert.equals(1, got.lstats.adopted)
  end)
end)
