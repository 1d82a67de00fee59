-- ivr-menu.lua: a classic IVR menu.  Answers, plays a menu and reads one
-- digit (type-ahead welcome: a caller who knows the menu can press before
-- it plays):
--   1  hear your caller number read back
--   2  talk to the operator (dialled, bridged until either side hangs up)
--   0  hear the menu again
-- Anything else gets "invalid option" and the menu again; three failed
-- tries end the call.
--
--   ari-lua --sim=examples/scenarios/ivr-menu.lua examples/ivr-menu.lua
--   ARI_URL=http://127.0.0.1:8088 ARI_USER=asterisk ARI_PASSWORD=secret ari-lua examples/ivr-menu.lua PJSIP/alice
--
-- Knobs: the operator's endpoint: the call's Stasis argument, else the
-- script's first argument, else $OPERATOR, else PJSIP/operator.  The app
-- name ("ivr-menu"; --app NAME or ARI_APP).  ari-lua's options go before
-- the script.
--
-- Dialplan on a real Asterisk:  exten => 200,1,Stasis(ivr-menu)
--                            or  exten => 201,1,Stasis(ivr-menu,PJSIP/alice)
local ari = require "ari"

local OPERATOR = (...) or os.getenv("OPERATOR") or "PJSIP/operator"
local app = ari.app "ivr-menu"

app:on_call(function(call, args)
  local operator = args[1] or OPERATOR
  call:answer()
  call:play("sound:silence/1")
  while true do
    local choice = call:play_and_get_digits {
      media = "sound:demo-instruct",   -- the menu prompt
      invalid = "sound:pm-invalid-option",  -- "you have entered an invalid option"
      regexp = "[012]", tries = 3, timeout = 5000,
    }
    if choice == nil then
      call:play("sound:vm-goodbye")
      return                            -- the runner hangs up
    elseif choice == "1" then
      local number = call.channel.caller.number or ""
      if number:match("^[%d*#]+$") then
        call:play("sound:vm-from")      -- "from"
        call:say_digits(number)
      else
        call:play("sound:vm-unknown-caller")
      end
    elseif choice == "2" then
      call:play("sound:transfer")       -- "please hold while I try that extension"
      local peer, why = call:dial(operator, { timeout = 20 })
      if peer then
        call.log:info("talking to the operator (%s)", peer.channel.name)
        call:wait_hangup()               -- either side hanging up ends both
        return
      end
      call.log:info("operator not reached: %s", why)
      call:play("sound:vm-nobodyavail")
    end                                  -- "0": the menu again
  end
end)
