-- The media codecs and streams without Asterisk (docs/media.md): G.711,
-- energy and tones (ari.audio), RTP packets and the reorder window,
-- AudioSocket framing, and two RTP streams of the core talking to each
-- other over loopback (order, pacing, foreign packets, queues).
local ari = require "ari"
local core = require "ari.core"
local sched = require "ari.sched"
local audio = ari.audio

describe("ari.audio", function()
  it("gives the RMS of a chunk on the 16-bit scale, for every format", function()
    for _, fmt in ipairs { "slin", "slin16", "ulaw", "alaw" } do
      local t = audio.tone(1000, 100, fmt, 10000)
      assert.equals(audio.bytes(100, fmt), #t)
      local e = audio.energy(t, fmt)
      -- a sine's RMS is its peak / sqrt(2); G.711 is within a few percent
      assert.is_true(math.abs(e - 10000 / math.sqrt(2)) < 0.03 * 7071, fmt .. " " .. e)
      assert.is_true(audio.energy(audio.silence(100, fmt), fmt) < 10, fmt)
      assert.equals(0, audio.energy("", fmt))
    end
    assert.is_true(math.abs(audio.dbfs(audio.tone(500, 20, "slin", 32767), "slin") + 3.01) < 0.1)
    assert.equals(-math.huge, audio.dbfs(audio.silence(20, "slin"), "slin"))
  end)

  it("decodes and encodes G.711 (round trip of every code)", function()
    for _, fmt in ipairs { "ulaw", "alaw" } do
      local all = {}
      for b = 0, 255 do all[#all + 1] = string.char(b) end
      local codes = table.concat(all)
      local lin = audio.decode(codes, fmt)
      assert.equals(512, #lin)
      local again = audio.decode(audio.encode(lin, fmt), fmt)
      assert.equals(lin, again)
    end
    -- known values: ulaw 0x00 is the most negative, 0xff zero; alaw 0xd5 the smallest positive
    assert.equals(-32124, string.unpack("<i2", audio.decode("\0", "ulaw")))
    assert.equals(0, string.unpack("<i2", audio.decode("\255", "ulaw")))
    assert.equals(8, string.unpack("<i2", audio.decode("\213", "alaw")))
  end)

  it("refuses unknown formats and odd-length 16-bit data with a usage error", function()
    local ok, err = pcall(audio.energy, "abcd", "mp3")
    assert.is_false(ok)
    assert.equals("usage", err.kind)
    assert.matches("unknown audio format 'mp3'", tostring(err))
    ok, err = pcall(audio.energy, "abc", "slin16")
    assert.is_false(ok)
    assert.equals("usage", err.kind)
    assert.is_true(pcall(audio.energy, "abc", "ulaw"))
    assert.is_false(pcall(audio.tone, 9000, 20, "slin")) -- above half the rate
    assert.equals(16000, audio.rate("slin16"))
    assert.equals(20, audio.ms(640, "slin16"))
  end)
end)

describe("RTP codec", function()
  it("builds and parses packets", function()
    local pkt = core.media_rtp_packet(118, 65535, 4000000000, 0x12345678, "abcd")
    assert.equals(16, #pkt)
    local p = core.media_rtp_parse(pkt)
    assert.same({ pt = 118, seq = 65535, ts = 4000000000, ssrc = 0x12345678, marker = false, payload = "abcd" }, p)
    -- not RTP version 2, too short, CSRC list or padding past the end
    assert.is_nil(core.media_rtp_parse("\0" .. pkt:sub(2)))
    assert.is_nil(core.media_rtp_parse(pkt:sub(1, 11)))
    assert.is_nil(core.media_rtp_parse("\x8f" .. pkt:sub(2)))
    assert.is_nil(core.media_rtp_parse("\xa0" .. pkt:sub(2, -2) .. "\x10"))
    -- padding and an extension are skipped
    local padded = "\xa0" .. pkt:sub(2) .. "\0\0\3"
    assert.equals("abcd", core.media_rtp_parse(padded).payload)
    local ext = "\x90" .. pkt:sub(2, 12) .. "\0\0\0\1" .. "xxxx" .. "abcd"
    assert.equals("abcd", core.media_rtp_parse(ext).payload)
  end)

  it("puts reordered packets back in order", function()
    local out, st = core.media_rtp_window { 10, 12, 11, 13, 15, 14 }
    assert.same({ 10, 11, 12, 13, 14, 15 }, out)
    assert.equals(2, st.reordered)
    assert.equals(0, st.lost)
  end)

  it("counts a gap still open past the window as lost, late and repeated packets as such", function()
    local out, st = core.media_rtp_window { 1, 2, 4, 5, 6, 7, 3, 7, 8 }
    assert.same({ 1, 2, 4, 5, 6, 7, 8 }, out)
    assert.equals(1, st.lost)
    assert.equals(1, st.late)       -- 3 came after its place was passed
    assert.equals(1, st.duplicates) -- 7 twice
  end)

  it("wraps around 65535 and restarts on a large jump", function()
    local out, st = core.media_rtp_window { 65534, 65535, 0, 1, 30000, 30001 }
    assert.same({ 65534, 65535, 0, 1, 30000, 30001 }, out)
    assert.equals(0, st.lost)
  end)

  it("delivers what it holds when the stream ends", function()
    local out, st = core.media_rtp_window({ 1, 3, 4 }, true)
    assert.same({ 1, 3, 4 }, out)
    assert.equals(1, st.lost)
    assert.equals(0, st.held)
  end)
end)

describe("AudioSocket codec", function()
  it("splits a byte stream into messages", function()
    local uuid = ("\1"):rep(16)
    local stream = "\1\0\16" .. uuid .. "\16\0\4abcd" .. "\0\0\0"
    local msgs, st = core.media_as_parse(stream)
    assert.equals("ok", st)
    assert.equals(3, #msgs)
    assert.same({ kind = 1, payload = uuid }, msgs[1])
    assert.same({ kind = 16, payload = "abcd" }, msgs[2])
    assert.same({ kind = 0, payload = "" }, msgs[3])
  end)

  it("waits for the rest of a message and refuses an oversize one", function()
    local msgs, st = core.media_as_parse("\16\0\4ab")
    assert.equals(0, #msgs)
    assert.equals("more", st)
    msgs, st = core.media_as_parse("\16\16\1" .. ("x"):rep(4097))
    assert.equals("too_large", st)
    assert.equals(0, #msgs)
  end)
end)

-- Two RTP streams of the core, each the other's peer, over loopback
-- (opts: queue_ms and on_event of the first, in_queue_ms of the second).
local function pair(fmt, opts)
  opts = opts or {}
  local a = assert(core.media_new({ transport = "rtp", format = fmt, queue_ms = opts.queue_ms }, opts.on_event or function() end))
  local b = assert(core.media_new({ transport = "rtp", format = fmt, in_queue_ms = opts.in_queue_ms }, function() end))
  a:set_peer("127.0.0.1", b:port())
  b:set_peer("127.0.0.1", a:port())
  return a, b
end

local function run(fn)
  local ok, err = pcall(sched.run, fn)
  assert(ok, tostring(err))
end

describe("RTP streams over loopback", function()
  it("deliver written audio in order, frame by frame, paced at real time", function()
    run(function()
      local a, b = pair("slin16")
      -- 10 frames, each a different level
      local parts = {}
      for i = 1, 10 do parts[i] = audio.tone(400, 20, "slin16", i * 1000) end
      local t0 = core.now()
      assert(a:write(table.concat(parts)))
      local got = {}
      while #got < 10 do
        local d, ms = b:read()
        if d then
          assert.equals(640, #d)
          assert.equals(20, ms)
          got[#got + 1] = audio.energy(d, "slin16")
        else
          ari.sleep(5)
        end
      end
      local took = core.now() - t0
      for i = 2, 10 do assert.is_true(got[i] > got[i - 1], "frame order") end
      -- 10 frames of 20 ms are not sent at once (lower bound only: a loaded machine is slower)
      assert.is_true(took >= 150, "took " .. took)
      local sa, sb = a:stats(), b:stats()
      assert.equals(10, sa.frames_out)
      assert.equals(10, sb.frames_in)
      assert.equals(0, sb.lost)
      assert.equals(0, sb.dropped_foreign)
      a:close(); b:close()
    end)
  end)

  it("send a whole frame written while one is due at once; a drain owed then comes at the next tick", function()
    run(function()
      local events = {}
      local a, b = pair("ulaw", { on_event = function(kind) events[#events + 1] = kind end })
      assert(a:write(audio.silence(20, "ulaw")))
      -- no loop turn in between: stream:write sent it
      assert.equals(1, a:stats().frames_out)
      assert.equals(0, a:queued())
      -- the write emptied the queue without calling into Lua; a drain
      -- wanted now is said by the next tick
      a:want_drain(true)
      local t0 = core.now()
      while #events == 0 and core.now() - t0 < 2000 do ari.sleep(5) end
      assert.same({ "drained" }, events)
      a:close(); b:close()
    end)
  end)

  it("drop and count packets from another port, never deliver them", function()
    run(function()
      local a, b = pair("ulaw")
      local intruder = assert(core.media_new({ transport = "rtp", format = "ulaw" }, function() end))
      intruder:set_peer("127.0.0.1", b:port())
      assert(intruder:write(audio.tone(1000, 200, "ulaw", 20000)))
      while intruder:stats().frames_out < 10 do ari.sleep(10) end
      ari.sleep(50)
      assert.is_nil(b:read())
      assert.equals(10, b:stats().dropped_foreign)
      assert.equals(0, b:stats().frames_in)
      a:close(); b:close(); intruder:close()
    end)
  end)

  it("bound the output queue and flush it", function()
    run(function()
      local a, b = pair("slin", { queue_ms = 100 })
      assert.is_true(a:write(audio.silence(100, "slin")))
      -- a frame that was due went out at once (stream:write); the rest
      -- waits, and the queue never holds more than queue_ms
      assert.is_true(a:queued() <= 100)
      local ok, why
      for _ = 1, 3 do
        ok, why = a:write(audio.silence(20, "slin"))
        assert.is_true(a:queued() <= 100)
        if not ok then break end
      end
      assert.is_false(ok)
      assert.equals("overflow", why)
      assert.equals(100, a:queued())
      assert.is_true(a:flush() > 60)
      assert.equals(0, a:queued())
      assert.is_true(a:write(audio.silence(20, "slin")))
      assert.has_error(function() a:write("abc") end)
      a:close(); b:close()
      local cok, cwhy = a:write(audio.silence(20, "slin"))
      assert.is_false(cok)
      assert.equals("closed", cwhy)
    end)
  end)

  it("drop the oldest input when nobody reads, and count it", function()
    run(function()
      local a, b = pair("ulaw", { in_queue_ms = 100 })
      assert(a:write(audio.tone(500, 300, "ulaw", 8000)))
      while a:stats().frames_out < 15 do ari.sleep(10) end
      ari.sleep(50)
      local st = b:stats()
      assert.equals(15, st.frames_in)
      assert.equals(10, st.dropped_in)
      assert.equals(100, st.in_queue_ms)
      a:close(); b:close()
    end)
  end)

  it("pad a partial last frame with silence", function()
    run(function()
      local a, b = pair("slin")
      assert(a:write(audio.tone(500, 30, "slin", 8000))) -- a frame and a half
      while a:stats().frames_out < 2 do ari.sleep(10) end
      assert.equals(1, a:stats().underruns)
      ari.sleep(30)
      local d1 = b:read()
      local d2 = b:read()
      assert.equals(320, #d1)
      assert.equals(320, #d2)
      assert.equals(0, audio.energy(d2:sub(161), "slin")) -- the padding
      a:close(); b:close()
    end)
  end)
end)

describe("RTP stream input (crafted datagrams from the peer's own port)", function()
  it("reorders, drops what is not the stream's RTP, and turns slin to host order", function()
    run(function()
      local a, b = pair("slin")
      local function pkt(seq, pt, payload) return core.media_rtp_packet(pt or 11, seq, seq * 160, 7, payload) end
      local function be(v) return string.pack(">i2", v):rep(160) end
      -- in order 1, 3, 2: delivered 1, 2, 3
      assert(core.media_udp_send(a, pkt(1, 11, be(100))))
      assert(core.media_udp_send(a, pkt(3, 11, be(300))))
      assert(core.media_udp_send(a, pkt(2, 11, be(200))))
      -- not for the stream: another payload type, RTP version 1, oversize, a runt
      assert(core.media_udp_send(a, pkt(4, 0, ("\255"):rep(160))))
      assert(core.media_udp_send(a, "\64" .. pkt(4, 11, be(1)):sub(2)))
      assert(core.media_udp_send(a, pkt(4, 11, ("\0"):rep(1600))))
      assert(core.media_udp_send(a, "\128\11"))
      -- comfort noise is ignored, not foreign
      assert(core.media_udp_send(a, pkt(4, 13, "\64")))
      local got = {}
      local deadline = core.now() + 2000
      while #got < 3 and core.now() < deadline do
        local d = b:read()
        if d then got[#got + 1] = string.unpack("<i2", d) else ari.sleep(5) end
      end
      assert.same({ 100, 200, 300 }, got)
      ari.sleep(50)
      local st = b:stats()
      assert.equals(1, st.reordered)
      assert.equals(4, st.dropped_foreign)
      assert.equals(3, st.frames_in)
      a:close(); b:close()
    end)
  end)
end)

-- Stream:read's waits (lua/ari/media.lua): the call's own coroutine, the
-- only reader, waits lean (no record, no Lua timer, nothing in the call's
-- waiters: the core times the read); any other coroutine waits with a
-- record (one reused per stream, one re-armable timer).  Both modes run the
-- same cases: a Stream over a bare core RTP stream whose call is a Call
-- without a channel, so the test decides when audio comes and when the call
-- hangs up.
for _, mode in ipairs { "lean", "record" } do
describe("Stream waits (" .. mode .. ")", function()
  local media = require "ari.media"
  local Call = require("ari.call").Call
  local call_mod = require "ari.call"

  -- lean: the running coroutine is the call's own (call.co)
  local function stream_pair()
    local call = setmetatable({ id = "test-call", waiters = {}, queue = {} }, { __index = Call })
    if mode == "lean" then call.co = coroutine.running() end
    local st = setmetatable({ call = call, format = "ulaw", transport = "rtp", frame_ms = 20, queue_ms = 2000,
      channel_id = "test-ext" }, media.Stream)
    local s = assert(core.media_new({ transport = "rtp", format = "ulaw" }, function(kind) media._on_event(st, kind) end))
    local peer = assert(core.media_new({ transport = "rtp", format = "ulaw" }, function() end))
    s:set_peer("127.0.0.1", peer:port())
    peer:set_peer("127.0.0.1", s:port())
    st._s = s
    return st, peer, call
  end

  it("the read waits " .. mode, function()
    run(function()
      local st, peer, call = stream_pair()
      local seen
      sched.spawn(function()
        ari.sleep(20)
        seen = { rco = st._rco ~= nil, waiters = #call.waiters }
        peer:write(audio.silence(20, "ulaw"))
      end)
      assert.equals(160, #st:read(5000))
      if mode == "lean" then
        assert.same({ rco = true, waiters = 0 }, seen)
        assert.is_nil(st._timer, "no Lua timer")
      else
        assert.same({ rco = false, waiters = 1 }, seen)
      end
      st._s:close("closed"); peer:close()
    end)
  end)

  it("time out again and again, wake on audio, and leave nothing in the call's waiters", function()
    run(function()
      local st, peer, call = stream_pair()
      for _ = 1, 3 do
        local t0 = core.now()
        local d, why = st:read(30)
        assert.is_nil(d)
        assert.equals("timeout", why)
        assert.is_true(core.now() - t0 >= 29, "waited the timeout")
        assert.equals(0, #call.waiters)
      end
      -- a timed read that gets audio before its timeout; the timer does not
      -- fire into the next wait
      sched.spawn(function() ari.sleep(20); peer:write(audio.silence(20, "ulaw")) end)
      local d = st:read(5000)
      assert.equals(160, #d)
      local t0 = core.now()
      local d2, why = st:read(100)
      assert.is_nil(d2)
      assert.equals("timeout", why)
      assert.is_true(core.now() - t0 >= 99, "the whole new timeout")
      assert.equals(0, #call.waiters)
      st._s:close("closed"); peer:close()
    end)
  end)

  it("reads that get audio before their timeout move the deadline: a later timeout is still whole", function()
    run(function()
      local st, peer, call = stream_pair()
      local function audio_in(ms) sched.spawn(function() ari.sleep(ms); peer:write(audio.silence(20, "ulaw")) end) end
      -- audio 60 ms into each of two reads with a 100 ms timeout: the core's
      -- timer, armed by the first, fires during the second and third reads
      -- and must wait out the rest of the third read's own 100 ms
      for _ = 1, 2 do audio_in(60); assert.equals(160, #st:read(100)) end
      local t0 = core.now()
      local d, why = st:read(100)
      assert.is_nil(d)
      assert.equals("timeout", why)
      assert.is_true(core.now() - t0 >= 99, "the whole timeout, got " .. (core.now() - t0))
      -- a longer read after short ones: the timer they armed does not end it early
      for _ = 1, 2 do audio_in(60); assert.equals(160, #st:read(100)) end
      audio_in(150)
      assert.equals(160, #st:read(1000))
      assert.equals(0, #call.waiters)
      st._s:close("closed"); peer:close()
    end)
  end)

  it("a hang-up raises the Hangup error in a waiting read (timed or not)", function()
    for _, timeout in ipairs { 5000, false } do
      run(function()
        local st, peer, call = stream_pair()
        sched.spawn(function() ari.sleep(20); call:_mark_hungup("ChannelDestroyed") end)
        local ok, err = pcall(st.read, st, timeout or nil)
        assert.is_false(ok)
        assert.is_true(call_mod.is_hangup(err), tostring(err))
        assert.equals(0, #call.waiters)
        st._s:close("closed"); peer:close()
      end)
    end
  end)

  it("two coroutines reading one stream each get their own timeout", function()
    run(function()
      local st, peer = stream_pair()
      local res = {}
      local done = 0
      sched.spawn(function() res.a = { st:read(60) }; done = done + 1 end)
      sched.spawn(function() res.b = { st:read(200) }; done = done + 1 end)
      local t0 = core.now()
      while done < 2 and core.now() - t0 < 3000 do ari.sleep(5) end
      assert.equals(2, done)
      assert.same({ nil, "timeout" }, res.a)
      assert.same({ nil, "timeout" }, res.b)
      assert.is_true(core.now() - t0 >= 199, "the longer timeout ran in full")
      st._s:close("closed"); peer:close()
    end)
  end)

  it("a closed stream ends a waiting read with closed", function()
    run(function()
      local st, peer = stream_pair()
      sched.spawn(function() ari.sleep(20); st:close() end)
      assert.same({ nil, "closed" }, { st:read(5000) })
      peer:close()
    end)
  end)

  it("the transport closing ends a waiting read with closed", function()
    run(function()
      local st, peer = stream_pair()
      sched.spawn(function() ari.sleep(20); st._s:close("peer"); media._on_event(st, "closed") end)
      assert.same({ nil, "closed" }, { st:read(5000) })
      peer:close()
    end)
  end)

  it("a read in the main coroutine and one in another, at once: each gets its own timeout and audio", function()
    run(function()
      local st, peer = stream_pair()
      local other
      sched.spawn(function() other = { st:read(60) } end)
      local t0 = core.now()
      assert.same({ nil, "timeout" }, { st:read(200) })
      assert.is_true(core.now() - t0 >= 199, "the main read's own timeout")
      assert.same({ nil, "timeout" }, other)
      -- and audio still wakes the main read afterwards
      sched.spawn(function() ari.sleep(20); peer:write(audio.silence(20, "ulaw")) end)
      assert.equals(160, #st:read(5000))
      st._s:close("closed"); peer:close()
    end)
  end)
end)
end
