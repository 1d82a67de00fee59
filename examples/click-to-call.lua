-- click-to-call.lua: a dialer.  Calls the first number; when it answers,
-- calls the second; when that answers too, bridges the two and waits until
-- either side hangs up (then the other is hung up as well).  A leg that is
-- busy or does not answer is logged (warn).  Then it exits by itself.
--
--   ari-lua --sim=examples/scenarios/click-to-call.lua examples/click-to-call.lua PJSIP/alice PJSIP/bob
--   ARI_URL=http://127.0.0.1:8088 ARI_USER=asterisk ARI_PASSWORD=secret ari-lua examples/click-to-call.lua PJSIP/alice PJSIP/bob
--
-- Knobs: the two endpoints: the script's arguments, else $FIRST and
-- $SECOND, else PJSIP/alice and PJSIP/bob; on Asterisk they are whatever
-- your channel drivers dial (PJSIP/alice, PJSIP/bob@trunk,
-- Local/100@from-internal...).  How long each rings: $RING_SECONDS
-- (default 30).  The caller ID the first leg sees: $CALLER_ID.  The app
-- name ("click-to-call"; --app NAME or ARI_APP): both legs are originated
-- into it, no dialplan needed.  ari-lua's options go before the script.
local ari = require "ari"

local first, second = ...
first = first or os.getenv("FIRST") or "PJSIP/alice"
second = second or os.getenv("SECOND") or "PJSIP/bob"
local RING_SECONDS = tonumber(os.getenv("RING_SECONDS") or "") or 30
local CALLER_ID = os.getenv("CALLER_ID") or "Click to call <100>"

local app = ari.app "click-to-call"

ari.log.info("calling %s", first)
local ok, a = pcall(app.originate, app, { endpoint = first, timeout = RING_SECONDS, caller_id = CALLER_ID })
if not ok then
  ari.log.warn("%s not reached: %s", first, tostring(a))
  return
end
a:play("sound:pls-hold-while-try")   -- "please hold while I try to connect your call"
ari.log.info("calling %s", second)
local b, reason = a:dial(second, { timeout = RING_SECONDS, ringback = true })
if not b then
  ari.log.warn("%s not reached: %s", second, reason)
  a:play("sound:vm-goodbye")
  a:hangup()
  return
end
ari.log.info("%s and %s are talking", first, second)
a:wait_hangup()                     -- dial() hangs up the other side too
ari.log.info("call over")
