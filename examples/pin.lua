-- pin.lua: a PIN check with play_and_get_digits.  The caller has three
-- tries to enter the PIN (ended by '#' or once it has the PIN's length); a
-- correct PIN plays "thank you", three failures play goodbye; then the call
-- is hung up.
--
--   ari-lua --sim=examples/scenarios/pin.lua examples/pin.lua
--   ARI_URL=http://127.0.0.1:8088 ARI_USER=asterisk ARI_PASSWORD=secret ari-lua examples/pin.lua 4321
--
-- Knobs: the PIN: the channel variable PIN if the dialplan sets it, else
-- the script's first argument, else $PIN, else 1234.  The app name ("pin";
-- --app NAME or ARI_APP).  ari-lua's options go before the script.
--
-- Dialplan on a real Asterisk:  exten => 300,1,Set(PIN=4321)
--                                same => n,Stasis(pin)
local ari = require "ari"

local DEFAULT_PIN = (...) or os.getenv("PIN") or "1234"

local app = ari.app "pin"

app:on_call(function(call)
  call:answer()
  local pin = call:get_var("PIN")
  if pin == nil or pin == "" then pin = DEFAULT_PIN end
  local entered = call:play_and_get_digits {
    media = "sound:agent-pass",        -- "please enter your password followed by the pound key"
    invalid = "sound:auth-incorrect",  -- "login incorrect"
    min = #pin, max = #pin, tries = 3,
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
