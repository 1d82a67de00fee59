-- ari.resync: reconcile an app's calls after its events socket comes back.
--
-- While the socket is down Asterisk drops the app's events, so a call whose
-- caller hung up meanwhile would wait forever.  After a reconnect the app
-- asks Asterisk which channels still exist (channels.list) and whether the
-- application is still registered (applications.get); every call whose
-- channel is gone ends as a hang-up (its waits raise the Hangup error, its
-- on_hangup hooks run), and the others keep running.  A restarted Asterisk
-- (no channels at all) thus ends every call cleanly.
local log = require "ari.log"

local M = {}

--- Reconcile app's calls with Asterisk.  Returns the number of calls ended,
-- or nil and the error when Asterisk could not be asked (then nothing is
-- ended: a call is never dropped on a guess).
function M.run(app)
  local client = app.client
  -- only calls known before Asterisk is asked can have vanished: a call
  -- that starts (StasisStart on the new socket) while the list is on its
  -- way is not in that list and must not be ended
  local before = {}
  for _, call in pairs(app.calls) do before[call] = true end
  local ok, chans = pcall(client.channels.list, {})
  if not ok then
    log.warn("%s: resync after reconnect failed: %s", app.name, tostring(chans))
    return nil, chans
  end
  local live = {}
  for i = 1, #chans do live[chans[i].id] = true end
  local aok, info = pcall(client.applications.get, { applicationName = app.name })
  if not aok then
    log.warn("%s: application not visible after reconnect: %s", app.name, tostring(info))
  end
  local gone = {}
  for id, call in pairs(app.calls) do
    if before[call] and not live[id] and not live[call.id] and not call.hungup then gone[#gone + 1] = call end
  end
  for i = 1, #gone do
    local call = gone[i]
    call.log:info("channel vanished while the events socket was down: ending the call")
    call:_mark_hungup("resync")
  end
  app.resyncs = (app.resyncs or 0) + 1
  log.info("%s: resync after reconnect: %d live channel(s), %d call(s) ended", app.name, #chans, #gone)
  return #gone
end

return M
