-- The workload of the valgrind check (tools/valgrind-check.sh): exercises
-- timers, coroutines and every core module that is built.
local ari = require "ari"
local n = 0
for i = 1, 50 do
  ari.spawn(function() ari.sleep(i % 7); n = n + 1 end)
end
local t = ari.core.timer(1, function() end, 1)
ari.sleep(30)
t:stop()
assert(n == 50, "all coroutines ran")

-- media (src/media.c, audio.c, rtp.c): two RTP streams over loopback, a
-- foreign sender, queues, a closed stream, an AudioSocket listener nobody
-- connects to, a media listener, the codec checks
do
  local core = ari.core
  local audio = ari.audio
  local a = assert(core.media_new({ transport = "rtp", format = "slin" }, function() end))
  local b = assert(core.media_new({ transport = "rtp", format = "slin", in_queue_ms = 60 }, function() end))
  local x = assert(core.media_new({ transport = "rtp", format = "slin" }, function() end))
  a:set_peer("127.0.0.1", b:port()); b:set_peer("127.0.0.1", a:port()); x:set_peer("127.0.0.1", b:port())
  assert(a:write(audio.tone(440, 130, "slin", 8000)))
  assert(x:write(audio.tone(440, 40, "slin", 8000)))
  local as = assert(core.media_new({ transport = "audiosocket", format = "slin",
    uuid = "6f1c2b7e-9a51-4f0e-8d5c-3b2a1f0e9d8c" }, function() end))
  local l = assert(core.media_listen("127.0.0.1", 0))
  local w = assert(core.media_new({ transport = "websocket", format = "slin16" }, function() end))
  l:expect("some-channel", w)
  ari.sleep(250)
  local got = 0
  while b:read() do got = got + 1 end
  assert(got >= 1 and b:stats().dropped_foreign >= 1, "media: loopback frames and a foreign sender")
  assert(audio.energy(audio.decode(audio.tone(300, 20, "ulaw"), "ulaw"), "slin") > 0)
  core.media_rtp_window({ 1, 3, 2, 9, 4 }, true)
  core.media_as_parse("\16\0\2ab\0\0\0")
  a:close(); x:close(); as:close(); l:close()
  -- b and w are left to the garbage collector and the shutdown
end
