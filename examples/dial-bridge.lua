-- dial-bridge.lua: call forwarding.  Each caller is connected to the
-- extension they dialled (PJSIP/<extension>, or the endpoint given as the
-- Stasis argument): the caller hears ringing while the far end is called;
-- once it answers both are bridged until either hangs up.  Busy, no answer
-- and failures get a matching announcement.
--
--   ari-lua --sim=examples/scenarios/dial-bridge.lua examples/dial-bridge.lua
--   ari-lua --url http://pbx:8088 --user u --password p examples/dial-bridge.lua
--
-- Dialplan on a real Asterisk:  exten => _1XXX,1,Stasis(dial-bridge)
--                            or  exten => 500,1,Stasis(dial-bridge,PJSIP/alice)
local ari = require "ari"

local app = ari.app "dial-bridge"

local ANNOUNCE = {
  busy = "sound:vm-isonphone",          -- "is on the phone"
  no_answer = "sound:vm-isunavail",     -- "is unavailable"
}

app:on_call(function(call, args)
  local ch = call.channel
  local target = args[1] or ("PJSIP/" .. ch.dialplan.exten)
  call.log:info("%s -> %s", ch.caller.number, target)
  local peer, reason = call:dial(target, {
    timeout = 20, ringback = true,
    caller_id = string.format('"%s" <%s>', ch.caller.name or "", ch.caller.number or ""),
  })
  if peer then
    call.log:info("connected to %s", peer.channel.name)
    call:wait_hangup()                  -- either side hanging up ends both
    return
  end
  call.log:info("%s: %s", target, reason)
  call:answer()
  call:play(ANNOUNCE[reason] or "sound:cannot-complete-temp-error")
  call:hangup { reason = reason == "busy" and "busy" or "normal" }
end)
