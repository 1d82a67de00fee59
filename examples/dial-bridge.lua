-- dial-bridge.lua: call forwarding.  Each caller is connected to the
-- extension they dialled: the caller hears ringing while the far end is
-- called; once it answers both are bridged until either hangs up.  Busy,
-- no answer and failures get a matching announcement.
--
--   ari-lua --sim=examples/scenarios/dial-bridge.lua examples/dial-bridge.lua
--   ARI_URL=http://127.0.0.1:8088 ARI_USER=asterisk ARI_PASSWORD=secret ari-lua examples/dial-bridge.lua 'PJSIP/{exten}'
--
-- Knobs: the endpoint to dial: the call's Stasis argument, else the
-- script's first argument, else $DIAL_TARGET, else PJSIP/{exten}, where
-- {exten} is replaced by the extension the caller dialled (a target
-- without it, e.g. PJSIP/alice, forwards every call there).  How long it
-- rings: $DIAL_TIMEOUT seconds (default 20).  The app name
-- ("dial-bridge"; --app NAME or ARI_APP).  ari-lua's options go before the
-- script.
--
-- Dialplan on a real Asterisk:  exten => _1XXX,1,Stasis(dial-bridge)
--                            or  exten => 500,1,Stasis(dial-bridge,PJSIP/alice)
local ari = require "ari"

local TARGET = (...) or os.getenv("DIAL_TARGET") or "PJSIP/{exten}"
local TIMEOUT = tonumber(os.getenv("DIAL_TIMEOUT") or "") or 20

local app = ari.app "dial-bridge"

local ANNOUNCE = {
  busy = "sound:vm-isonphone",               -- "is on the phone"
  no_answer = "sound:vm-isunavail",          -- "is unavailable"
  congestion = "sound:all-circuits-busy-now", -- "all circuits are busy now"
}

app:on_call(function(call, args)
  local ch = call.channel
  local target = (args[1] or TARGET):gsub("{exten}", function() return ch.dialplan.exten end)
  call.log:info("%s -> %s", ch.caller.number, target)
  local peer, reason = call:dial(target, {
    timeout = TIMEOUT, ringback = true,
    caller_id = string.format('"%s" <%s>', ch.caller.name or "", ch.caller.number or ""),
  })
  if peer then
    call.log:info("connected to %s", peer.channel.name)
    call:wait_hangup()                       -- either side hanging up ends both
    return
  end
  call.log:info("%s: %s", target, reason)
  call:answer()
  call:play(ANNOUNCE[reason] or "sound:cannot-complete-as-dialed")
  call:hangup { reason = reason == "busy" and "busy" or "normal" }
end)
