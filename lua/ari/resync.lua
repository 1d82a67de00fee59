-- ari.resync: reconcile an app's calls after its events socket comes back.
--
-- While the socket is down Asterisk drops the app's events, so a call whose
-- caller hung up meanwhile would wait forever.  After a reconnect the app
-- asks Asterisk which channels still exist (channels.list) and whether the
-- application is still registered (applications.get); every call whose
-- channel is gone ends as a hang-up (its waits raise the Hangup error, its
-- on_hangup hooks run), and the others keep running.  A restarted Asterisk
-- (no channels at all) thus ends every call cleanly.
--
-- A restarted Asterisk may take the connection before it has finished
-- booting (an outbound persistent connection does: ARI then answers 503
-- "Asterisk not booted"): a failed question is asked again, with a growing
-- pause (M.retry_ms, doubling up to M.retry_max_ms), for up to
-- M.retry_total_ms; a later reconnect's resync takes over from an earlier
-- one still retrying.
local log = require "ari.log"
local errors = require "ari.errors"
local core = require "ari.core"
local sched = require "ari.sched"

local M = {}
M.retry_ms, M.retry_max_ms, M.retry_total_ms = 200, 3000, 120000

-- Worth asking again: Asterisk busy or booting (5xx, 408, 429) or the
-- request did not get through (transport).  Not: 4xx, bad parameters.
local function retryable(err)
  if not errors.is(err) then return false end
  if errors.is(err, "transport") then return true end
  local st = err.status
  return st ~= nil and (st >= 500 or st == 408 or st == 429)
end

--- Reconcile app's calls with Asterisk.  Returns the number of calls ended,
-- or nil and the error when Asterisk could not be asked (then nothing is
-- ended: a call is never dropped on a guess).
function M.run(app)
  local client = app.client
  app._resync_gen = (app._resync_gen or 0) + 1
  local gen = app._resync_gen
  local deadline = core.now() + M.retry_total_ms
  local pause = M.retry_ms
  local before, ok, chans
  while true do
    -- only calls known before Asterisk is asked can have vanished: a call
    -- that starts (StasisStart on the new socket) while the list is on its
    -- way is not in that list and must not be ended
    before = {}
    for _, call in pairs(app.calls) do before[call] = true end
    ok, chans = pcall(client.channels.list, {})
    if ok then break end
    if client._closed or not retryable(chans) or core.now() + pause > deadline then
      log.warn("%s: resync after reconnect failed: %s", app.name, tostring(chans))
      return nil, chans
    end
    log.info("%s: resync after reconnect: %s; asking again in %d ms", app.name, tostring(chans), pause)
    sched.sleep(pause)
    pause = math.min(pause * 2, M.retry_max_ms)
    if app._resync_gen ~= gen or client._closed then return nil, "superseded" end
  end
  if app._resync_gen ~= gen then return nil, "superseded" end
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
