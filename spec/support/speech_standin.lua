-- A stand-in speech service for examples/speech-bridge.lua's specs: an
-- ari.server WebSocket that answers every chunk of caller audio with as
-- much of a 660 Hz tone (amplitude 3000) when the chunk is speech (RMS at
-- least 300), and silence otherwise, says {"type":"text"} on start, and
-- ends the call ({"type":"hangup"}) after `hangup_after_ms` of audio.
--
--   local standin = require "spec.support.speech_standin"
--   local svc = standin.start{ hangup_after_ms = 3000 }  -- svc.url, svc.stats, svc:close()
--
-- Run as a script (ari-lua spec/support/speech_standin.lua PORTFILE
-- [HANGUP_AFTER_MS]) it writes its URL to PORTFILE and serves until its
-- first session ends.
local ari = require "ari"
local server = require "ari.server"
local base64 = require "ari.base64"

local M = {}

function M.start(opts)
  opts = opts or {}
  local svc = { stats = { sessions = 0, chunks = 0, speech_chunks = 0, bytes = 0, starts = {}, stops = 0 } }
  local srv = assert(server.listen {
    host = "127.0.0.1", port = 0,
    handler = function() return 404, {}, "" end,
    on_websocket = function(req)
      local st = svc.stats
      st.sessions = st.sessions + 1
      local format, heard_ms, done = "slin16", 0, false
      local ws
      ws = req:upgrade(nil, {
        on_message = function(_, text, binary)
          if binary or done then return end
          local msg = ari.json.decode(text)
          if type(msg) ~= "table" then return end
          if msg.type == "start" then
            format = msg.format or format
            st.starts[#st.starts + 1] = msg
            ws:send(ari.json.encode { type = "text", text = "hello from the stand-in (" .. format .. ")" })
          elseif msg.type == "audio" then
            local data = base64.decode(msg.data)
            st.chunks = st.chunks + 1
            st.bytes = st.bytes + #data
            local ms = ari.audio.ms(#data, format)
            heard_ms = heard_ms + ms
            local reply
            if ari.audio.energy(data, format) >= 300 then
              st.speech_chunks = st.speech_chunks + 1
              reply = ari.audio.tone(660, math.floor(ms + 0.5), format, 3000)
            else
              reply = ari.audio.silence(math.floor(ms + 0.5), format)
            end
            ws:send(ari.json.encode { type = "audio", data = base64.encode(reply) })
            if opts.hangup_after_ms and heard_ms >= opts.hangup_after_ms then
              done = true
              ws:send(ari.json.encode { type = "hangup" })
            end
          elseif msg.type == "stop" then
            st.stops = st.stops + 1
          end
        end,
        on_close = function()
          if svc.on_session_end then svc.on_session_end() end
        end,
      })
    end,
  })
  svc.url = string.format("ws://127.0.0.1:%d/bot", srv:port())
  function svc.close() srv:close() end
  return svc
end

-- as a script
if arg and arg[0] and arg[0]:match("speech_standin%.lua$") then
  local svc = M.start { hangup_after_ms = tonumber(arg[2] or "") }
  local f = assert(io.open(arg[1], "w"))
  f:write(svc.url, "\n")
  f:close()
  local finished = false
  svc.on_session_end = function() finished = true end
  while not finished do ari.sleep(50) end
  ari.sleep(200)
  svc.close()
end

return M
