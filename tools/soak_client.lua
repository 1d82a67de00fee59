-- tools/soak_client.lua: the client side of the sequential soak run
-- (tools/soak.sh).
--   ari-lua --url URL --user U --password P --app soak tools/soak_client.lua CALLS SECONDS SAMPLE_S [WATCHDOG_MS]
-- Every call: answer, read one digit (must be "1"), hang up.  Checked per
-- call: the digit, the outcome, and the channel's events StasisStart,
-- StasisEnd, ChannelDestroyed in that order.  RSS is printed every
-- SAMPLE_S seconds (after a full GC).  Ends when CALLS calls are done, or
-- after SECONDS once no call is active and no event came for 3 s; prints
--   soak_client calls=N normal=N digits=N complete=N bad=N events=N objs=N wall=S cpu=S calls_per_s=N rss0_kb=N rss_end_kb=N
local ari = require "ari"
local core = ari.core

local total = tonumber(arg[1]) or 1000
local seconds = tonumber(arg[2]) or 60
local sample_s = tonumber(arg[3]) or 60
local watchdog_ms = tonumber(arg[4]) -- app option watchdog_ms (for its overhead figure)

local function rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a"); f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

local app = ari.app { app = "soak", watchdog_ms = watchdog_ms }
local events, digits, complete, bad = 0, 0, 0, 0
local last_event = core.now()
local seq = {} -- channel id -> number of its lifecycle events seen so far
local ORDER = { StasisStart = 1, StasisEnd = 2, ChannelDestroyed = 3 }
app.client:on("*", function(ev)
  events = events + 1
  last_event = core.now()
  local ch = ev.channel
  local k = ORDER[ev.type]
  if k and type(ch) == "table" and ch.id then
    local n = (seq[ch.id] or 0) + 1
    if n ~= k then bad = bad + 1 end
    if k == 3 then
      seq[ch.id] = nil
      if n == 3 then complete = complete + 1 end
    else
      seq[ch.id] = n
    end
  end
end)

app:on_call(function(call)
  call:answer()
  if call:get_digits { max = 1, timeout = 20000 } == "1" then digits = digits + 1 end
  call:hangup()
end)

collectgarbage("collect")
local rss0 = rss_kb()
local t0, cpu0 = core.now(), os.clock()
io.stdout:write(string.format("sample t=0 calls=0 rss_kb=%d\n", rss0))
io.stdout:flush()
local next_sample = sample_s * 1000
local last_ended, t_last = 0, t0 -- calls/s counts up to the last call's end
while true do
  ari.sleep(200)
  local st = app:stats()
  local el = core.now() - t0
  if st.ended ~= last_ended then last_ended, t_last = st.ended, core.now() end
  if el >= next_sample then
    collectgarbage("collect")
    io.stdout:write(string.format("sample t=%d calls=%d rss_kb=%d\n", el // 1000, st.ended, rss_kb()))
    io.stdout:flush()
    next_sample = next_sample + sample_s * 1000
  end
  if st.ended >= total and st.active == 0 then break end
  if el >= seconds * 1000 and st.active == 0 and core.now() - last_event > 3000 then break end
end
ari.sleep(500) -- late events of the last call
local st = app:stats()
local wall, cpu = (t_last - t0) / 1000, os.clock() - cpu0
local objs = 0
for _, reg in pairs(app.client._objs) do for _ in pairs(reg) do objs = objs + 1 end end
local left = 0
for _ in pairs(seq) do left = left + 1 end
collectgarbage("collect")
io.stdout:write(string.format(
  "soak_client calls=%d normal=%d digits=%d complete=%d bad=%d left=%d events=%d objs=%d wall=%.1f cpu=%.1f calls_per_s=%.0f rss0_kb=%d rss_end_kb=%d\n",
  st.ended, st.normal, digits, complete, bad, left, events, objs, wall, cpu, st.ended / math.max(wall, 0.001), rss0, rss_kb()))
io.stdout:flush()
ari.shutdown("soak done")
