-- speech-bridge.lua: a voice bot's plumbing.  The caller's audio goes to a
-- speech service over a WebSocket (SPEECH_URL) as it arrives, and whatever
-- audio the service sends back is played to the caller (call:media,
-- docs/media.md; the core paces it at real time).
--
--   SPEECH_URL=ws://127.0.0.1:9000/bot ari-lua --sim=examples/scenarios/speech-bridge.lua examples/speech-bridge.lua
--   SPEECH_URL=wss://speech.example/v1 ARI_URL=http://127.0.0.1:8088 ARI_USER=asterisk ARI_PASSWORD=secret \
--     ari-lua examples/speech-bridge.lua
--
-- The service protocol, one JSON text message each way (a shape many
-- realtime speech APIs share; adapt `to_service` / `from_service`):
--   to the service:   {"type":"start","call":"<channel id>","format":"slin16","rate":16000}
--                     {"type":"audio","data":"<base64 of raw samples>"}   (every 20 ms)
--                     {"type":"stop"}
--   from the service: {"type":"audio","data":"<base64>"}  played to the caller
--                     {"type":"clear"}                    drop what is queued (the caller barged in)
--                     {"type":"text","text":"..."}        logged (a transcript line)
--                     {"type":"hangup"}                   end the call
--   A binary message from the service is raw audio, played too.
--
-- Knobs: $SPEECH_URL (required), $MEDIA_TRANSPORT (rtp, audiosocket,
-- websocket; default rtp), $MEDIA_FORMAT (slin16, slin, ulaw, alaw; default
-- slin16, but slin over RTP: Asterisk's RTP channel drops slin16 sent to it), the app name ("speech-bridge"; --app NAME or ARI_APP).
--
-- Dialplan on a real Asterisk:  exten => 700,1,Stasis(speech-bridge)
local ari = require "ari"
local ws = require "ari.ws"
local base64 = require "ari.base64"

local URL = os.getenv("SPEECH_URL")
local TRANSPORT = os.getenv("MEDIA_TRANSPORT") or "rtp"
local FORMAT = os.getenv("MEDIA_FORMAT") or (TRANSPORT == "rtp" and "slin" or "slin16")
if not URL or URL == "" then error("speech-bridge: set SPEECH_URL to the speech service's ws:// or wss:// URL", 0) end

local app = ari.app "speech-bridge"

local function to_service(conn, t) return conn:send(ari.json.encode(t)) end

app:on_call(function(call)
  call:answer()
  local m = call:media { format = FORMAT, transport = TRANSPORT }
  local sent_ms, played_ms, ending = 0, 0, nil
  local function play(data)
    local ok, err = m:write(data)
    if ok then played_ms = played_ms + ari.audio.ms(#data, m.format)
    else call.log:warn("audio from the service dropped: %s", tostring(err)) end
  end
  local conn = ws.connect {
    url = URL, reconnect = false,
    on_message = function(text, binary)
      if binary then play(text); return end
      local msg = ari.json.decode(text)
      if type(msg) ~= "table" then return end
      if msg.type == "audio" and type(msg.data) == "string" then play(base64.decode(msg.data))
      elseif msg.type == "clear" then m:flush()
      elseif msg.type == "text" then call.log:info("service: %s", tostring(msg.text))
      elseif msg.type == "hangup" then ending = "the service"; m:close() end
    end,
    on_close = function(code)
      if not ending then ending = "the service closing (" .. tostring(code) .. ")"; m:close() end
    end,
  }
  local ok, err = conn:wait_open(5000)
  if not ok then
    call.log:error("speech service %s: %s", URL, tostring(err))
    conn:close()
    m:close()
    call:hangup()
    return
  end
  call:on_hangup(function()
    pcall(to_service, conn, { type = "stop" })
    conn:close()
  end)
  to_service(conn, { type = "start", call = call.id, format = m.format, rate = m.rate })
  while true do
    local data, ms = m:read()
    if not data then break end                 -- closed: the service ended it
    to_service(conn, { type = "audio", data = base64.encode(data) })
    sent_ms = sent_ms + ms
  end
  call.log:info("sent %.1f s, played %.1f s; ended by %s", sent_ms / 1000, played_ms / 1000, tostring(ending))
  m:drain(5000)
  pcall(to_service, conn, { type = "stop" })
  conn:close()
  call:hangup()
end)
