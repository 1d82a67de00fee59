-- recorder.lua: leave a message.  Answers, asks for a message after the
-- beep, records until '#', 3 s of silence or MAX_SECONDS, plays the
-- recording back, then offers 1 = keep, 2 = listen again, 3 = record
-- again (up to 3 takes), and reads out the length of the kept message.  The recording is deleted
-- unless kept.
--
--   ari-lua --sim=examples/scenarios/recorder.lua examples/recorder.lua
--   ARI_URL=http://127.0.0.1:8088 ARI_USER=asterisk ARI_PASSWORD=secret ari-lua examples/recorder.lua
--
-- Knobs: the recording format (first argument, else $RECORD_FORMAT, else
-- wav), the longest message in seconds ($MAX_SECONDS, default 60), the app
-- name ("recorder"; --app NAME or ARI_APP).  ari-lua's options go before
-- the script.
--
-- Dialplan on a real Asterisk:  exten => 400,1,Stasis(recorder)
-- Kept messages are ARI stored recordings named msg-<channel id>, in
-- Asterisk's recordings directory (/var/spool/asterisk/recording).
local ari = require "ari"

local FORMAT = (...) or os.getenv("RECORD_FORMAT") or "wav"
local MAX_SECONDS = tonumber(os.getenv("MAX_SECONDS") or "") or 60

local app = ari.app "recorder"

app:on_call(function(call)
  call:answer()
  local name = "msg-" .. call.id:gsub("[^%w%-]", "-")
  local kept = false
  call:on_hangup(function()
    -- a caller who hangs up before choosing "keep" leaves nothing behind
    if not kept and pcall(call.client.recordings.deleteStored, { recordingName = name }) then
      call.log:info("hung up before keeping it: deleted %s", name)
    end
  end)
  local takes, rec = 0, nil
  while true do
    if rec == nil then
      takes = takes + 1
      call:play("sound:vm-intro")                -- "please leave your message after the tone"
      call.log:info("recording %s (take %d)", name, takes)
      rec = call:record { name = name, format = FORMAT, beep = true, max_duration = MAX_SECONDS,
        max_silence = 3, terminate_on = "#", if_exists = "overwrite" }
      call.log:info("recorded %s: %s s (%s)", rec.name, tostring(rec.duration), tostring(rec.cause or rec.state))
    end
    call:play("recording:" .. name)
    -- "press 1 to accept this recording, 2 to listen to it, 3 to re-record your message"
    local choice = call:play_and_get_digits { media = "sound:vm-review", regexp = "[123]", tries = 2, timeout = 5000 }
    if choice == "1" then
      kept = true
      call.log:info("kept %s", name)
      call:play("sound:vm-msgsaved")             -- "message saved"
      call:say_number(rec.duration or 0)
      call:play("sound:seconds")
      break
    elseif choice == "3" and takes < 3 then
      rec = nil                                  -- record again
    elseif choice ~= "2" then
      break                                      -- no choice, or no takes left
    end
  end
  call:play("sound:vm-goodbye")
  call:hangup()
end)
