-- bench/dispatch_client.lua: events per second from WebSocket frame to a
-- Lua `on` handler.  Connects an ari.client to bench/firehose.lua and counts
-- the events its `client:on("*")` handler receives.
--   ari-lua --url URL --user U --password P bench/dispatch_client.lua EVENTS
-- Prints one key=value line: events, wall time and the process's CPU time
-- (os.clock: user + system) from the first event to the last.
local ari = require "ari"
local core = ari.core

local total = tonumber(arg[1]) or 100000
local count, t0, cpu0 = 0, nil, nil
local client = ari.connect { app = "fire" }
client:on("*", function(ev)
  if count == 0 then t0, cpu0 = core.hrtime(), os.clock() end
  count = count + 1
  if count == total then
    local wall = (core.hrtime() - t0) / 1e9
    local cpu = os.clock() - cpu0
    io.stdout:write(string.format("dispatch events=%d wall=%.3f cpu=%.3f events_per_s=%.0f events_per_cpu_s=%.0f us_per_event=%.2f\n",
      count - 1, wall, cpu, (count - 1) / wall, (count - 1) / cpu, cpu / (count - 1) * 1e6))
    io.stdout:flush()
    os.exit(0)
  end
  return ev
end)
