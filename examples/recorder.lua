-- recorder.lua: leave a message.  Answers, asks for a message after the
-- beep, records until '#', 3 s of silence or 60 s, plays the recording
-- back, then offers 1 = keep, 2 = record again (up to 3 takes), and reads
-- out the length of the kept message.  The recording is deleted unless kept.
--
--   ari-lua --sim=examples/scenarios/recorder.lua examples/recorder.lua
--   ari-lua --url http://pbx:8088 --user u --password p examples/recorder.lua
--
-- Dialplan on a real Asterisk:  exten => 400,1,Stasis(recorder)
-- Recordings land in Asterisk's recordings directory (ARI stored recordings).
local ari = require "ari"

local app = ari.app "recorder"

app:on_call(function(call)
  call:answer()
  local name = "msg-" .. call.id:gsub("[^%w%-]", "-")
  local kept = false
  call:on_hangup(function()
    -- a caller who hangs up before choosing "keep" leaves nothing behind
    if not kept then pcall(call.client.recordings.deleteStored, { recordingName = name }) end
  end)
  for _ = 1, 3 do
    call:play("sound:vm-intro")                  -- "please leave your message after the tone"
    local rec = call:record { name = name, format = "wav", beep = true, max_duration = 60,
      max_silence = 3, terminate_on = "#", if_exists = "overwrite" }
    call.log:info("recorded %s: %s s (%s)", rec.name, tostring(rec.duration), tostring(rec.cause or rec.state))
    call:play("recording:" .. name)
    local choice = call:play_and_get_digits { media = "sound:vm-review", regexp = "[12]", tries = 2, timeout = 5000 }
    if choice == "1" then
      kept = true
      call:play("sound:vm-msgsaved")
      call:say_number(rec.duration or 0)
      call:play("sound:seconds")
      break
    elseif choice == nil then
      break
    end
  end
  call:play("sound:vm-goodbye")
  call:hangup()
end)
