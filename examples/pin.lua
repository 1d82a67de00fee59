-- pin.lua: a PIN check with play_and_get_digits.  The caller has three
-- tries to enter the 4-digit PIN (ended by '#' or after 4 digits); a
-- correct PIN plays a welcome, three failures play goodbye and hang up.
-- The PIN comes from the channel variable PIN (set it in the dialplan) or
-- the environment (PIN, default 1234).
--
--   ari-lua --sim=examples/scenarios/pin.lua examples/pin.lua
--   ari-lua --url http://pbx:8088 --user u --password p examples/pin.lua
--
-- Dialplan on a real Asterisk:  exten => 300,1,Set(PIN=4321)
--                                same => n,Stasis(pin)
local ari = require "ari"

local app = ari.app "pin"

app:on_call(function(call)
  call:answer()
  local pin = call:get_var("PIN") or os.getenv("PIN") or "1234"
  local entered = call:play_and_get_digits {
    media = "sound:agent-pass",        -- "please enter your password followed by the pound key"
    invalid = "sound:auth-incorrect",
    min = 4, max = 4, tries = 3,
    timeout = 5000, interdigit_timeout = 3000, terminators = "#",
    regexp = pin:gsub("%p", "%%%0"),   -- only the right PIN is valid input
  }
  if entered then
    call.log:info("PIN accepted")
    call:play("sound:auth-thankyou")
  else
    call.log:info("PIN rejected after 3 tries")
    call:play("sound:vm-goodbye")
  end
  call:hangup()
end)
