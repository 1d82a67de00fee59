-- echo-bot.lua: the caller hears themself, ECHO_DELAY_MS later.  The
-- call's audio comes to the app as a stream (call:media, docs/media.md):
-- every chunk read is written back, after a first stretch of silence as
-- long as the delay (the core plays what is written at real time, so the
-- echo stays that far behind).
--
--   ari-lua --sim=examples/scenarios/echo-bot.lua examples/echo-bot.lua
--   ARI_URL=http://127.0.0.1:8088 ARI_USER=asterisk ARI_PASSWORD=secret ari-lua examples/echo-bot.lua
--
-- Knobs: $ECHO_DELAY_MS (default 500), $MEDIA_TRANSPORT (rtp, audiosocket
-- or websocket; default rtp), $MEDIA_FORMAT (default slin16, but slin over
-- RTP: Asterisk's RTP channel drops slin16 sent to it; AudioSocket needs slin
-- on Asterisk 18), $ECHO_SECONDS (hang up after that long; default:
-- when the caller hangs up), the app name ("echo-bot"; --app NAME or ARI_APP).
--
-- Dialplan on a real Asterisk:  exten => 500,1,Stasis(echo-bot)
local ari = require "ari"

local DELAY_MS = tonumber(os.getenv("ECHO_DELAY_MS") or "") or 500
local TRANSPORT = os.getenv("MEDIA_TRANSPORT") or "rtp"
local FORMAT = os.getenv("MEDIA_FORMAT") or (TRANSPORT == "rtp" and "slin" or "slin16")
local SECONDS = tonumber(os.getenv("ECHO_SECONDS") or "")

local app = ari.app "echo-bot"

app:on_call(function(call)
  call:answer()
  local m = call:media { format = FORMAT, transport = TRANSPORT }
  call.log:info("echoing over %s (%s), %d ms behind", m.transport, m.format, DELAY_MS)
  m:write(ari.audio.silence(DELAY_MS, m.format))
  local heard_ms, loud_ms, until_ms = 0, 0, SECONDS and SECONDS * 1000
  while not until_ms or heard_ms < until_ms do
    local data, ms = m:read()
    if not data then break end                -- the media channel went away
    heard_ms = heard_ms + ms
    if ari.audio.energy(data, m.format) >= 300 then loud_ms = loud_ms + ms end
    local ok, err = m:write(data)
    if not ok then call.log:warn("echo dropped: %s", tostring(err)) end
  end
  call.log:info("echoed %.1f s (%.1f s of it louder than silence)", heard_ms / 1000, loud_ms / 1000)
  m:drain(DELAY_MS + 1000)
  call:hangup()
end)
