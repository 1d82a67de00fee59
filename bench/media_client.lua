-- bench/media_client.lua: the client side of the media benchmark.
--   ari-lua --url URL --user U --password P --app bench bench/media_client.lua STREAMS SECONDS [transport] [format] [originate]
-- STREAMS calls each get a call:media stream (transport rtp by default,
-- format ulaw by default) and echo it: every 20 ms frame read is written
-- back, so audio flows both ways.  Once every stream is up, the streams run
-- SECONDS more; the client then prints one line of figures (key=value):
-- its CPU time over that steady stretch per stream-second, the output
-- ticks that ran more than one frame late (the core's late_ticks) and the
-- frames in and out, summed over the streams for the steady stretch.
-- originate: an endpoint (e.g. Local/moh@caller) the client calls STREAMS
-- times into its own app (a real Asterisk); without it the calls come
-- from the simulator's scenario.
local ari = require "ari"

local N = tonumber(arg[1]) or 100
local SECONDS = tonumber(arg[2]) or 10
local TRANSPORT = arg[3] or "rtp"
local FORMAT = arg[4] or "ulaw"
local ORIGINATE = arg[5]

local app = ari.app "bench"
local up, finished, failed = 0, 0, 0
local steady_t0, steady_cpu0, steady_t1, steady_cpu1
local sum = { frames_in = 0, frames_out = 0, late_ticks = 0, lost = 0, dropped_in = 0, underruns = 0 }
local first_error

local function report()
  local wall = (steady_t1 - steady_t0) / 1000
  local cpu = steady_cpu1 - steady_cpu0
  io.stdout:write(string.format(
    "media streams=%d failed=%d transport=%s format=%s seconds=%.2f cpu_s=%.3f cpu_share=%.3f cpu_per_stream_s_us=%.1f late_ticks=%d frames_in=%d frames_out=%d lost=%d dropped_in=%d underruns=%d\n",
    up, failed, TRANSPORT, FORMAT, wall, cpu, cpu / wall, up > 0 and cpu / (up * wall) * 1e6 or 0, sum.late_ticks,
    sum.frames_in, sum.frames_out, sum.lost, sum.dropped_in, sum.underruns))
  if first_error then io.stdout:write("first failure: ", first_error, "\n") end
  io.stdout:flush()
  ari.shutdown("benchmark over")
end

local function one_done()
  finished = finished + 1
  if finished == N then
    if not steady_t1 then steady_t1, steady_cpu1 = ari.now(), os.clock() end
    report()
  end
end

app:on_call(function(call)
  call:answer()
  local ok, m = pcall(call.media, call, { format = FORMAT, transport = TRANSPORT, timeout = 20000 })
  if not ok then
    failed = failed + 1
    first_error = first_error or tostring(m)
    one_done()
    call:hangup()
    return
  end
  up = up + 1
  if up + failed == N then steady_t0, steady_cpu0 = ari.now(), os.clock() end
  local base
  while true do
    local data = m:read(2000)
    if not data then break end
    m:write(data)
    if steady_t0 then
      if not base then base = m:stats() end
      if ari.now() - steady_t0 >= SECONDS * 1000 then break end
    end
  end
  if not steady_t1 then steady_t1, steady_cpu1 = ari.now(), os.clock() end
  local s = m:stats()
  base = base or s
  for k in pairs(sum) do sum[k] = sum[k] + ((s[k] or 0) - (base[k] or 0)) end
  m:close()
  one_done()
  call:hangup()
end)

if ORIGINATE then
  app:wait_registered("bench")
  for _ = 1, N do
    ari.spawn(function()
      local ok, err = pcall(app.client.channels.originate, { endpoint = ORIGINATE, app = "bench", formats = "ulaw" })
      if not ok then failed = failed + 1; first_error = first_error or tostring(err); one_done() end
    end)
    ari.sleep(5)
  end
end
