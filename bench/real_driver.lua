-- bench/real_driver.lua: the load generator of the real-Asterisk benchmark
-- (bench/real_asterisk.lua), a separate process from the app under test.
--   ari-lua --url URL --user U --password P bench/real_driver.lua APP CALLS CONCURRENCY FAR_END
-- Originates CALLS calls Local/APP@stasis-app (context caller, extension
-- FAR_END: s or dtmf; bench/asterisk/extensions.conf), keeping about
-- CONCURRENCY in flight: every POLL ms it reads the global BENCH_ENDED (the
-- calls ended so far, counted by bench/asterisk/extensions.conf) with
-- GET /asterisk/variable and tops up (calls in flight = started - ended).  REST only, no events socket and no
-- Stasis app of its own, so Asterisk spends on it only the originates and
-- the polls (about 1 small request per POLL ms).
-- Prints one line when every call has ended: calls, originate failures,
-- mean and peak of the calls in flight seen by the polls, wall time.
local ari = require "ari"
local core = ari.core

local app_name, total, conc, far = arg[1] or "bench", tonumber(arg[2]) or 10, tonumber(arg[3]) or 5, arg[4] or "s"
local POLL = 50

local function main()
  local client = ari.connect { events = false }
  local started, replied, failed = 0, 0, 0
  local samples, sum, peak = 0, 0, 0
  local t0 = core.hrtime()
  local function originate()
    started = started + 1
    ari.spawn(function()
      local ok, err = pcall(client.channels.originate, { endpoint = "Local/" .. app_name .. "@stasis-app",
        context = "caller", extension = far, priority = 1, formats = "ulaw" })
      replied = replied + 1
      if not ok then
        failed = failed + 1
        if failed <= 3 then io.stderr:write("originate failed: ", tostring(err), "\n") end
      end
    end)
  end
  local function ended()
    local v = client.asterisk.getGlobalVar { variable = "BENCH_ENDED" }
    return tonumber(v and v.value) or 0
  end
  local base = ended() -- calls of earlier runs against this Asterisk
  while true do
    local live = started - (ended() - base)
    if started > 0 then
      samples, sum = samples + 1, sum + live
      if live > peak then peak = live end
    end
    while started < total and live < conc do
      originate()
      live = live + 1
    end
    if started >= total and replied >= total and live <= 0 then break end
    ari.sleep(POLL)
  end
  io.stdout:write(string.format("real_driver calls=%d originate_failed=%d mean_in_flight=%.1f peak_in_flight=%d wall=%.3f\n",
    started, failed, samples > 0 and sum / samples or 0, peak, (core.hrtime() - t0) / 1e9))
  io.stdout:flush()
  client:close()
end

if coroutine.isyieldable() then main() else ari.run(main) end
