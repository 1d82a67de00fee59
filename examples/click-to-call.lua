-- click-to-call.lua: a dialer.  Calls the first number; when it answers,
-- calls the second; when that answers too, bridges the two, and waits until
-- either side hangs up (then the other is hung up as well).
--
--   ari-lua --sim=examples/scenarios/click-to-call.lua examples/click-to-call.lua
--   ari-lua --url http://pbx:8088 --user u --password p examples/click-to-call.lua PJSIP/alice PJSIP/bob
--
-- Both legs are originated into the Stasis app "click-to-call" (no
-- dialplan needed); on Asterisk the endpoints are whatever your channel
-- drivers dial (PJSIP/alice, PJSIP/bob@trunk, Local/100@default...).
local ari = require "ari"

local first, second = ...
first = first or "PJSIP/alice"
second = second or "PJSIP/bob"

local app = ari.app "click-to-call"

-- Asterisk only sends an originated channel to an app whose events socket
-- is connected: wait until the app is registered.
local function wait_registered()
  for _ = 1, 100 do
    if pcall(app.client.applications.get, { applicationName = app.name }) then return end
    ari.sleep(100)
  end
  error("the app never registered (is the events WebSocket reachable?)")
end

wait_registered()
ari.log.info("calling %s", first)
local ok, a = pcall(app.originate, app, { endpoint = first, timeout = 30, caller_id = "Click to call <100>" })
if not ok then
  ari.log.warn("%s did not answer: %s", first, tostring(a))
  return
end
a:play("sound:pbx-transfer")        -- "please hold while I transfer you"
ari.log.info("calling %s", second)
local b, reason = a:dial(second, { timeout = 30, ringback = true })
if not b then
  ari.log.warn("%s: %s", second, reason)
  a:play("sound:vm-goodbye")
  a:hangup()
  return
end
ari.log.info("%s and %s are talking", first, second)
a:wait_hangup()                     -- dial() hangs up the other side too
ari.log.info("call over")
