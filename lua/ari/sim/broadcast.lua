-- ari.sim.broadcast: the simulator's StasisBroadcast().
--
--   require("ari.sim.broadcast").place_call(sim, {
--     from = "1001", to = "555",            -- caller / called
--     timeout = 500,                        -- ms to wait for a claim (simulated)
--     app_filter = "^ivr%-",                -- Lua pattern on app names (nil: every app)
--     args = "a:b",                         -- colon-delimited StasisStart args of the winner
--     notify_claimed = true,                -- CallClaimed to the offered apps
--     script = { ... },                     -- the caller's script once claimed (ari.sim.scenario steps)
--   }, on_end) -> channel
--
-- CallBroadcast goes to every registered app matching the filter; the
-- claim itself is answered by the events.claimChannel handler (ari.sim.misc:
-- 204 for the first, 409 after).  Unclaimed within `timeout`: STASISSTATUS
-- = TIMEOUT and the simulated dialplan hangs up.  on_end(ch) runs when the
-- channel is destroyed.
local sched = require "ari.sched"
local scenario = require "ari.sim.scenario"

local M = {}

local DEFAULT_SCRIPT = { { "wait_hangup", timeout = 60000 }, { "hangup" } }

--- Registered apps matching the filter, in registration order.
function M.targets(sim, filter)
  local out = {}
  for _, name in ipairs(sim.app_order) do
    if sim:app_active(name) and (filter == nil or name:find(filter)) then out[#out + 1] = name end
  end
  return out
end

function M.place_call(sim, c, on_end)
  c = c or {}
  local from, to = tostring(c.from or "1000"), tostring(c.to or "555")
  local n = sim:seq("chan")
  local ch = sim:new_channel {
    id = c.channel_id, name = string.format("PJSIP/%s-%08x", from, n), state = "Ring",
    caller = { name = c.caller_name or "", number = from }, connected = { name = "", number = "" },
    context = c.context or "broadcast", exten = to, priority = 2,
    app_name = "StasisBroadcast",
    app_data = string.format("%d,%s,%s,%s", c.timeout or 500, c.app_filter or "", c.args or "",
      c.notify_claimed and "yes" or "no"),
    call = sim:new_call(c.label or ("broadcast from " .. from .. " to " .. to)),
  }
  ch.scripted = true
  local targets = M.targets(sim, c.app_filter)
  ch.broadcast = targets
  ch.broadcast_args = c.args and c.args:gsub(":", ",") or nil
  for _, a in ipairs(targets) do ch.subs[a] = true end
  ch.on_destroyed = function() if on_end then on_end(ch) end end
  sim:note(ch.call, "broadcast %s from %s to %s offered to %s", ch.id, from, to, table.concat(targets, ","))
  sim:deliver("CallBroadcast", { "channel", sim:snapshot(ch), "caller", from, "called", to }, targets, ch.call)
  -- the offered apps only saw the offer: the winner is subscribed by StasisStart
  for _, a in ipairs(targets) do ch.subs[a] = nil end
  local timeout = c.timeout or 500
  sim:after(timeout, function()
    if ch.alive and not ch.claimed_by then
      sim:note(ch.call, "broadcast %s not claimed within %d ms", ch.id, timeout)
      sim:set_var(ch, "STASISSTATUS", "TIMEOUT", true)
      ch.broadcast = nil
      sim:hangup(ch, 16)
    end
  end)
  local steps = { { "wait_stasis", timeout = timeout + 1000 } }
  for _, s in ipairs(c.script or DEFAULT_SCRIPT) do steps[#steps + 1] = s end
  sched.spawn(function()
    local ok, err = pcall(scenario.run_steps, sim, ch, steps)
    if not ok and err ~= scenario.HANGUP then sim:log("error", "broadcast script: %s", tostring(err)) end
  end)
  return ch
end

return M
