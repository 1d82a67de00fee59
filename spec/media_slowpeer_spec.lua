-- Issue #17: a TCP media peer that stops reading while the app keeps
-- writing (docs/media.md "Pacing and limits").  The peer is socat with a
-- small receive buffer running spec/support/slowpeer.lua on the connection
-- itself (nofork): it plays Asterisk's side (AudioSocket; chan_websocket's
-- client and server types), then never reads.  Checked: writes return at
-- once (true, or false + "overflow" when the app writes faster than real
-- time), the core's unsent bytes stay under its cap and the frames past it
-- are counted in dropped_out, the heap does not grow with the time the peer
-- stalls, and closing the stream (or the peer going away) ends it.
local ari = require "ari"
local core = require "ari.core"
local util = require "spec.support.util"
local audio = ari.audio

local function sh_ok(cmd) return os.execute(cmd .. " >/dev/null 2>&1") == true end
local have_socat = sh_ok("command -v socat")
local CAP = 64 * 1024          -- MEDIA_MAX_TCP_OUT (src/media.h)
local MSG = 640 + 14           -- one slin16 frame with the largest header (WebSocket)

-- Start a socat peer (in the background); returns a function that kills it
-- (idempotent) and its pid.  No waiting: usable outside a coroutine.
local function start_peer(socat_addr, mode, arg_)
  local pidf = os.tmpname()
  assert(os.execute(string.format(
    "sh -c 'exec socat %s EXEC:\"lua5.4 spec/support/slowpeer.lua %s %s\",nofork' >/dev/null 2>&1 & echo $! > %s",
    socat_addr, mode, arg_ or "", pidf)))
  local pid = assert(tonumber((util.read(pidf) or ""):match("%d+")), "the peer's pid")
  os.remove(pidf)
  local alive = true
  return function()
    if alive then alive = false; os.execute("kill " .. pid .. " 2>/dev/null") end
  end, pid
end

local function running(pid) return sh_ok("kill -0 " .. pid) end

local free_port = require("spec.support.util").free_port

-- The C heap in use, or nil where the allocator cannot tell (a sanitizer's):
-- then the heap checks are left to the sanitizer's leak check.
local function heap()
  collectgarbage("collect")
  local m = core.memory()
  return m and m.heap_in_use
end

-- assert that a - b (both from heap()) is below `limit`, or above `floor`
local function heap_diff(a, b, cmp, v, what)
  if a == nil or b == nil then return end
  if cmp == "<" then assert.is_true(a - b < v, what .. " " .. (a - b))
  else assert.is_true(a - b > v, what .. " " .. (a - b)) end
end

-- Write 40 ms every 20 ms (twice real time) for `ms`; every write must
-- return true or false, "overflow".  Returns counts and the largest
-- unsent_out seen.
local function keep_writing(s, ms, seen)
  local chunk = audio.tone(440, 40, "slin16", 4000)
  local deadline = ari.now() + ms
  while ari.now() < deadline do
    local ok, why = s:write(chunk)
    if type(why) == "table" then why = why.reason end -- a call's Stream: nil, MediaError
    if ok then seen.ok = seen.ok + 1
    else
      assert.equals("overflow", why)
      seen.overflow = seen.overflow + 1
    end
    local u = s:stats().unsent_out
    if u > seen.max_unsent then seen.max_unsent = u end
    ari.sleep(20)
  end
end

-- The stalled phase, common to the transports: returns the stats after.
local function stall_checks(s)
  local seen = { ok = 0, overflow = 0, max_unsent = 0 }
  -- until the kernel's buffers and then the core's cap are full
  local limit = ari.now() + 60000
  while s:stats().dropped_out == 0 do
    assert(ari.now() < limit, "timed out waiting for dropped_out (the peer's buffers never filled)")
    keep_writing(s, 200, seen)
  end
  local st1 = s:stats()
  assert.is_true(st1.unsent_out > CAP - 2 * MSG, "unsent " .. st1.unsent_out) -- the cap is what stops it
  local h1 = heap()
  keep_writing(s, 2000, seen)          -- 2 s more of a stalled peer: ~64 KiB of audio
  local st2 = s:stats()
  local h2 = heap()
  assert.is_true(seen.ok > 0)
  assert.is_true(seen.overflow > 0)      -- the bounded queue (queue_ms) refused some
  assert.is_true(seen.max_unsent <= CAP + MSG, "unsent " .. seen.max_unsent)
  assert.is_true(st2.unsent_out <= CAP + MSG)
  -- the output still drains (paced at real time: ~100 frames in 2 s, fewer
  -- on a loaded machine), into dropped_out, not into the socket
  assert.is_true(st2.dropped_out - st1.dropped_out >= 10, (st2.dropped_out - st1.dropped_out) .. " dropped")
  assert.is_true(st2.bytes_out - st1.bytes_out <= 16 * 640, (st2.bytes_out - st1.bytes_out) .. " bytes sent")
  assert.is_true(st2.queue_ms <= 200)
  -- what 2 s of the stall would have queued is 64 KiB: the heap grew far less
  heap_diff(h2, h1, "<", 32 * 1024, "heap grew by")
  return st2, h2
end

-- fn(set_kill) on the loop; the peer is killed after, whatever happened
local function with_loop(fn)
  local kill
  local ok, err = pcall(ari.run, function() fn(function(k) kill = k end) end)
  if kill then kill() end
  assert(ok, tostring(err))
end

local UUID = "6f1c2b7e-9a51-4f0e-8d5c-3b2a1f0e9d8c"

describe("media: a TCP peer that stops reading #slowpeer", function()
  if not have_socat then
    pending("socat is not installed")
    return
  end

  it("AudioSocket: writes return, output is dropped past the cap, m:close() ends it, nothing stays", function()
    with_loop(function(set_kill)
      local h0 = heap()
      local events = {}
      local s = assert(core.media_new({ transport = "audiosocket", format = "slin16", queue_ms = 200, uuid = UUID, stall_ms = 0 },
        function(kind) events[#events + 1] = kind end))
      set_kill(start_peer("TCP:127.0.0.1:" .. s:port() .. ",rcvbuf=4096", "audiosocket", UUID))
      util.poll(function() return s:state() == "open" end, "the AudioSocket connection", 20000)
      util.poll(function() return s:stats().frames_in == 1 end, "the peer's audio message", 20000)
      local _, h2 = stall_checks(s)
      local held = s:stats().unsent_out
      s:close()
      assert.equals("closed", (s:state()))
      assert.equals(0, s:stats().unsent_out)
      local ok, why = s:write(audio.silence(20, "slin16"))
      assert.is_false(ok)
      assert.equals("closed", why)
      assert.equals(320, #s:read())  -- what had arrived stays readable
      assert.is_nil(s:read())
      s = nil
      ari.sleep(50)                    -- the socket's close callback (and its writes') run
      local h3 = heap()
      -- the ~64 KiB the core held for the peer are gone with the stream
      assert.is_true(held > CAP - 2 * MSG)
      heap_diff(h2, h3, ">", CAP - 8 * MSG, "freed at close")
      heap_diff(h3, h0, "<", 32 * 1024, "heap after close")
      assert.same({ "open" }, events)  -- no "closed" event for the app's own close
    end)
  end)

  it("AudioSocket: the stalled peer going away ends the stream with a closed event", function()
    with_loop(function(set_kill)
      local events = {}
      local s = assert(core.media_new({ transport = "audiosocket", format = "slin16", queue_ms = 200, uuid = UUID, stall_ms = 0 },
        function(kind) events[#events + 1] = kind end))
      local kill = start_peer("TCP:127.0.0.1:" .. s:port() .. ",rcvbuf=4096", "audiosocket", UUID)
      set_kill(kill)
      util.poll(function() return s:state() == "open" end, "the AudioSocket connection", 20000)
      stall_checks(s)
      kill()
      util.poll(function() return s:state() == "closed" end, "the stream to end", 20000)
      local _, reason = s:state()
      assert.is_true(reason == "peer" or reason:match("^error: ") ~= nil, reason)
      assert.same({ "open", "closed" }, events)
      assert.equals(0, s:stats().unsent_out)
      local ok, why = s:write(audio.silence(20, "slin16"))
      assert.is_false(ok)
      assert.equals("closed", why)
    end)
  end)

  it("WebSocket, connection_type client (Asterisk connects to the app's listener): the same", function()
    with_loop(function(set_kill)
      local l = assert(core.media_listen("127.0.0.1", 0))
      local events = {}
      local s = assert(core.media_new({ transport = "websocket", format = "slin16", queue_ms = 200, stall_ms = 0 },
        function(kind) events[#events + 1] = kind end))
      l:expect("slow-channel", s)
      set_kill(start_peer("TCP:127.0.0.1:" .. l:port() .. ",rcvbuf=4096", "wsclient", "slow-channel"))
      util.poll(function() return s:state() == "open" end, "the WebSocket connection", 20000)
      util.poll(function() return s:stats().frames_in == 1 end, "the peer's audio frame", 20000)
      local h2 = select(2, stall_checks(s))
      s:close()
      assert.equals("closed", (s:state()))
      assert.equals(640, #s:read())
      assert.is_nil(s:read())
      s = nil
      ari.sleep(50)
      local h3 = heap()
      heap_diff(h2, h3, ">", CAP - 8 * MSG, "freed at close")
      l:close()
    end)
  end)

  it("WebSocket, connection_type server (the core connects to Asterisk's /media/<id>): the same", function()
    with_loop(function(set_kill)
      local port = free_port()
      set_kill(start_peer("TCP-LISTEN:" .. port .. ",bind=127.0.0.1,reuseaddr,rcvbuf=4096", "wsserver"))
      -- until socat listens
      -- until socat listens (not probed by connecting: it accepts one connection)
      util.poll(function() return sh_ok("ss -ltn 'sport = :" .. port .. "' | grep -q LISTEN") end, "socat to listen", 10000)
      local events = {}
      local s = assert(core.media_new({ transport = "websocket", format = "slin16", queue_ms = 200, stall_ms = 0 },
        function(kind) events[#events + 1] = kind end))
      s:ws_connect("127.0.0.1", port, "/media/slow", "")
      util.poll(function() return s:state() == "open" end, "the WebSocket handshake", 20000)
      local h2 = select(2, stall_checks(s))
      s:close()
      assert.equals("closed", (s:state()))
      assert.equals(0, s:stats().unsent_out)
      s = nil
      ari.sleep(50)
      local h3 = heap()
      heap_diff(h2, h3, ">", CAP - 8 * MSG, "freed at close")
      assert.same({ "open", "text" }, events) -- MEDIA_START
    end)
  end)

  -- stall_ms: a peer that takes no output for that long while some is
  -- pending ends the stream with reason "stalled" (a "closed" event)
  local function until_stalled(s, events)
    local chunk = audio.tone(440, 40, "slin16", 4000)
    local t0, limit = ari.now(), ari.now() + 60000
    while s:state() ~= "closed" do
      assert(ari.now() < limit, "the stalled peer was never detected")
      local ok, why = s:write(chunk)
      assert(ok or why == "overflow" or (why == "closed" and s:state() == "closed"), tostring(why))
      ari.sleep(20)
    end
    local _, reason = s:state()
    assert.equals("stalled", reason)
    local kinds = {}
    for _, k in ipairs(events) do if k ~= "text" then kinds[#kinds + 1] = k end end -- MEDIA_START
    assert.same({ "open", "closed" }, kinds)
    assert.equals(0, s:stats().unsent_out)
    local ok, why = s:write(audio.silence(20, "slin16"))
    assert.is_false(ok)
    assert.equals("closed", why)
    return ari.now() - t0
  end

  it("AudioSocket: a peer that takes nothing for stall_ms ends the stream (reason \"stalled\")", function()
    with_loop(function(set_kill)
      local events = {}
      local s = assert(core.media_new({ transport = "audiosocket", format = "slin16", queue_ms = 200, uuid = UUID,
        stall_ms = 1000 }, function(kind) events[#events + 1] = kind end))
      set_kill(start_peer("TCP:127.0.0.1:" .. s:port() .. ",rcvbuf=4096", "audiosocket", UUID))
      util.poll(function() return s:state() == "open" end, "the AudioSocket connection", 20000)
      -- the stall counts from the last output the peer took: the kernel's
      -- buffers take the first ~2 s of audio, so it ends well after 1 s
      assert.is_true(until_stalled(s, events) > 1000)
    end)
  end)

  it("WebSocket (server type): the same", function()
    with_loop(function(set_kill)
      local port = free_port()
      set_kill(start_peer("TCP-LISTEN:" .. port .. ",bind=127.0.0.1,reuseaddr,rcvbuf=4096", "wsserver"))
      util.poll(function() return sh_ok("ss -ltn 'sport = :" .. port .. "' | grep -q LISTEN") end, "socat to listen", 10000)
      local events = {}
      local s = assert(core.media_new({ transport = "websocket", format = "slin16", queue_ms = 200, stall_ms = 1000 },
        function(kind) events[#events + 1] = kind end))
      s:ws_connect("127.0.0.1", port, "/media/slow", "")
      util.poll(function() return s:state() == "open" end, "the WebSocket handshake", 20000)
      assert.is_true(until_stalled(s, events) > 1000)
    end)
  end)

  -- The whole call: the simulator's AudioSocket far end (core.farmedia) is
  -- replaced by the socat peer, which connects to the stream's
  -- external_host with the stream's UUID as Asterisk would.
  it("a call's AudioSocket stream: the call's coroutine writes on, closes the stream, and ends", function()
    local testing = require "ari.testing"
    local real = core.farmedia
    local peer = {}
    core.farmedia = function(opts, cb)
      if opts.kind ~= "audiosocket" then return real(opts, cb) end
      local hex = opts.uuid:gsub(".", function(c) return string.format("%02x", c:byte()) end)
      local uuid = hex:sub(1, 8) .. "-" .. hex:sub(9, 12) .. "-" .. hex:sub(13, 16) .. "-" .. hex:sub(17, 20) .. "-" .. hex:sub(21)
      peer.kill, peer.pid = start_peer("TCP:" .. opts.host .. ":" .. opts.port .. ",rcvbuf=4096", "audiosocket", uuid)
      core.timer(0, function() cb("open") end)
      return {
        source = function() end, flow = function() end,
        close = function() peer.closed = true; peer.kill() end,
        stats = function()
          return { frames_out = 0, bytes_out = 0, digest_out = "", late_ticks = 0, frames_in = 0, bytes_in = 0,
            dropped_in = 0, rms_in = 0, peak_rms_in = 0, loud_frames_in = 0, digest_in = "" }
        end,
      }
    end
    local out = {}
    local ok, r = pcall(testing.run, {
      name = "slowpeer", speed = 1, timeout = 90000,
      scenario = { app = "slowpeer", calls = { { from = "1001", script = { { "wait_answer" }, { "sleep", 120000 } } } } },
      on_call = function(call)
        call:answer()
        local m = call:media { transport = "audiosocket", format = "slin16", queue_ms = 200, timeout = 20000,
          stall_timeout = 0 }
        out.stalled = { pcall(stall_checks, m) }
        m:close()
        local ok1, e1 = m:write(audio.silence(20, "slin16"))
        out.write_after = { ok1, e1 and e1.reason }
        out.read1 = { m:read() }   -- the peer's one audio message, still queued
        out.read2 = { m:read() }
        out.closed_reason = m.closed_reason
        out.ended = true            -- the coroutine got here; returning ends the call
      end,
    })
    core.farmedia = real
    if peer.kill then peer.kill() end
    assert(ok, tostring(r))
    assert.is_true(out.stalled[1], tostring(out.stalled[2]))
    assert.same({}, r.errors)
    assert.is_true(out.ended)
    assert.same({ nil, "closed" }, out.write_after)
    assert.equals(320, #out.read1[1])
    assert.same({ nil, "closed" }, out.read2)
    assert.equals("closed", out.closed_reason)
    assert.is_false(r.timed_out)
    -- the call and its media channel both started and ended, none in error
    assert.same({ started = 2, ended = 2, error = 0 }, { started = r.stats.started, ended = r.stats.ended, error = r.stats.error })
    -- the media channel was hung up, and the simulator (Asterisk) let go of the connection
    assert.is_true(peer.closed)
    local t0 = os.time()
    while running(peer.pid) and os.time() - t0 < 10 do os.execute("sleep 0.05") end
    assert.is_false(running(peer.pid))
  end)
end)
