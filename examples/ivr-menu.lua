-- ivr-menu.lua: a classic IVR menu.  Answers, plays a menu and reads one
-- digit (type-ahead welcome: a caller who knows the menu can press before
-- it plays):
--   1  hear your caller number read back
--   2  talk to the operator: dials the endpoint given as the Stasis
--      argument, else $OPERATOR, else PJSIP/operator
--   0  hear the menu again
-- Anything else gets "invalid" and the menu again; three failed tries end
-- the call.
--
--   ari-lua --sim=examples/scenarios/ivr-menu.lua examples/ivr-menu.lua
--   ari-lua --url http://pbx:8088 --user u --password p examples/ivr-menu.lua
--
-- Dialplan on a real Asterisk:  exten => 200,1,Stasis(ivr-menu)
--                            or  exten => 201,1,Stasis(ivr-menu,PJSIP/alice)
local ari = require "ari"

local OPERATOR = os.getenv("OPERATOR") or "PJSIP/operator"
local app = ari.app "ivr-menu"

app:on_call(function(call, args)
  local operator = args[1] or OPERATOR
  call:answer()
  call:play("sound:silence/1")
  while true do
    local choice = call:play_and_get_digits {
      media = "sound:demo-instruct",   -- the menu prompt
      invalid = "sound:option-is-invalid",
      regexp = "[012]", tries = 3, timeout = 5000,
    }
    if choice == nil then
      call:play("sound:vm-goodbye")
      return                            -- the runner hangs up
    elseif choice == "1" then
      call:play("sound:vm-from")
      call:say_digits(call.channel.caller.number)
    elseif choice == "2" then
      call:play("sound:transfer")
      local peer, why = call:dial(operator, { timeout = 20 })
      if peer then
        call:wait_hangup()               -- talking; either side hanging up ends both
        return
      end
      call.log:info("operator not reached: %s", why)
      call:play("sound:vm-nobodyavail")
    end                                 -- "0": the menu again
  end
end)
