-- silence-recorder.lua: a message recorded from the call's audio stream
-- (call:media, docs/media.md), ended by the caller's silence: a beep
-- (written into the stream), then the caller's audio is kept until
-- SILENCE_MS of silence follows some speech (ari.audio.energy, in C) or
-- MAX_SECONDS; the message is written as a WAV file and the call ends.
--
--   ari-lua --sim=examples/scenarios/silence-recorder.lua examples/silence-recorder.lua
--   ARI_URL=http://127.0.0.1:8088 ARI_USER=asterisk ARI_PASSWORD=secret ari-lua examples/silence-recorder.lua
--
-- Knobs: $RECORD_DIR (where the WAV files go; default $TMPDIR or /tmp),
-- $SILENCE_MS (default 1500), $SILENCE_LEVEL (the RMS below which a chunk
-- is silence; default 300), $MAX_SECONDS (default 30), $MEDIA_TRANSPORT
-- (rtp, audiosocket, websocket; default rtp), $MEDIA_FORMAT (default slin16,
-- but slin over RTP, where Asterisk drops slin16 sent to it: the beep), the app name
-- ("silence-recorder"; --app NAME or ARI_APP).
--
-- Dialplan on a real Asterisk:  exten => 600,1,Stasis(silence-recorder)
local ari = require "ari"

local DIR = os.getenv("RECORD_DIR") or os.getenv("TMPDIR") or "/tmp"
local SILENCE_MS = tonumber(os.getenv("SILENCE_MS") or "") or 1500
local LEVEL = tonumber(os.getenv("SILENCE_LEVEL") or "") or 300
local MAX_SECONDS = tonumber(os.getenv("MAX_SECONDS") or "") or 30
local TRANSPORT = os.getenv("MEDIA_TRANSPORT") or "rtp"
local FORMAT = os.getenv("MEDIA_FORMAT") or (TRANSPORT == "rtp" and "slin" or "slin16")

local app = ari.app "silence-recorder"

-- A WAV file of 16-bit mono samples (ulaw/alaw are decoded first).
local function write_wav(path, data, rate)
  local f = assert(io.open(path, "wb"))
  f:write("RIFF", string.pack("<I4", 36 + #data), "WAVE",
    "fmt ", string.pack("<I4I2I2I4I4I2I2", 16, 1, 1, rate, rate * 2, 2, 16),
    "data", string.pack("<I4", #data), data)
  f:close()
end

app:on_call(function(call)
  call:answer()
  local m = call:media { format = FORMAT, transport = TRANSPORT }
  m:write(ari.audio.tone(1000, 250, m.format))        -- the beep: "speak now"
  m:drain(1000)
  local chunks, total_ms, speech_ms, quiet_ms = {}, 0, 0, 0
  local ended = "the time limit"
  while total_ms < MAX_SECONDS * 1000 do
    -- no audio at all for 200 ms (nothing in the bridge sends) is silence too
    local data, ms = m:read(200)
    if data == nil and ms == "closed" then ended = "the media channel closing"; break end
    if data then
      chunks[#chunks + 1] = data
      total_ms = total_ms + ms
    else
      ms = 200
    end
    if data and ari.audio.energy(data, m.format) >= LEVEL then
      if speech_ms < 1000 and speech_ms + ms >= 1000 then call.log:info("the caller has spoken for 1 s") end
      speech_ms, quiet_ms = speech_ms + ms, 0
    elseif speech_ms > 0 then
      quiet_ms = quiet_ms + ms
      if quiet_ms >= SILENCE_MS then ended = "silence"; break end
    end
  end
  m:close()
  local path = string.format("%s/message-%s.wav", DIR, call.id:gsub("[^%w%-]", "-"))
  write_wav(path, ari.audio.decode(table.concat(chunks), m.format), m.rate)
  call.log:info("recorded %.1f s (%.1f s of speech), ended by %s: %s", total_ms / 1000, speech_ms / 1000, ended, path)
  call:hangup()
end)
