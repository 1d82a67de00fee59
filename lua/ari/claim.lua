-- ari.claim: call claiming (StasisBroadcast, Asterisk 20.20 / 22.10 / 23.4
-- and later).  The dialplan's StasisBroadcast() offers a channel to every
-- matching ARI app with a CallBroadcast event; the first app to POST
-- /events/claim (204) gets it (StasisStart, then on_call runs as usual);
-- the others get 409.  Several workers, each with its own app name (e.g.
-- "ivr-1", "ivr-2" on different machines), share the calls that way.
--
--   app:on_broadcast(function(ev) return ev.called == "555" end)  -- claim or not
--   app:on_broadcast(true)                                         -- claim everything
--
-- fn(ev) runs as its own coroutine (it may sleep or make requests); a true
-- result claims the channel for this app.  app.claims counts { offered,
-- claimed, lost, declined, failed }.
local log = require "ari.log"
local errors = require "ari.errors"

local M = {}

--- Try to claim ev.channel for app.  Returns true (ours), or false and
-- "lost" (409: someone else was first) / "gone" (404: broadcast over) /
-- "failed" (another error, which is logged).
function M.claim(app, channel_id)
  local ok, err = pcall(app.client.events.claimChannel, { channelId = channel_id, application = app.name })
  if ok then return true end
  if errors.is(err, 409) then return false, "lost" end
  if errors.not_found(err) then return false, "gone" end
  log.warn("%s: claiming %s failed: %s", app.name, tostring(channel_id), tostring(err))
  return false, "failed"
end

--- Install fn as app's broadcast decision (replaces an earlier one).
function M.on_broadcast(app, fn)
  if fn == true then fn = function() return true end end
  if type(fn) ~= "function" then error(errors.usage("on_broadcast: expects a function (or true)", 3), 0) end
  local counts = app.claims
  if not counts then
    counts = { offered = 0, claimed = 0, lost = 0, declined = 0, failed = 0 }
    app.claims = counts
  end
  if app._broadcast_handle then app.client:off("CallBroadcast", app._broadcast_handle) end
  app._broadcast_handle = app.client:on("CallBroadcast", function(ev)
    counts.offered = counts.offered + 1
    local ch = ev.channel
    if type(ch) ~= "table" or ch.id == nil then return end
    if app.accepting == false then counts.declined = counts.declined + 1; return end
    local ok, want = pcall(fn, ev)
    if not ok then
      log.error("%s: on_broadcast failed: %s", app.name, tostring(want))
      counts.failed = counts.failed + 1
      return
    end
    if not want then counts.declined = counts.declined + 1; return end
    local won, why = M.claim(app, ch.id)
    if won then counts.claimed = counts.claimed + 1
    elseif why == "failed" then counts.failed = counts.failed + 1
    else counts.lost = counts.lost + 1 end
  end)
  return app
end

return M
