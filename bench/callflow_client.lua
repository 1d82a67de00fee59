-- bench/callflow_client.lua: the client side of the call-flow benchmark.
--   ari-lua --url URL --user U --password P --app bench bench/callflow_client.lua CALLS [mode] [sample_every]
-- mode "flow" (default): answer -> play -> PlaybackFinished -> one digit ->
-- hang up, for CALLS calls; prints one line of figures (key=value).
-- mode "park": answer, then park in get_digits; when CALLS calls are parked
-- the RSS is sampled, then the calls complete as in "flow".
-- sample_every: RSS sampled every that many calls; deadline: seconds after
-- the first call when the run ends with the calls done so far.
-- transport: "http" (REST through libcurl) or "websocket" (REST over the
-- events socket as RESTRequest messages, ari.wstransport); none: the
-- client's default (the events socket where the server offers it).
-- Figures come from the process itself: os.clock() (CPU time of the
-- process, user + system, as getrusage) and VmRSS from /proc/self/status.
local ari = require "ari"
local core = ari.core
-- ARI_BENCH_GC=gen|PAUSE: a different Lua GC setting, for comparisons
local gcmode = os.getenv("ARI_BENCH_GC")
if gcmode == "gen" then collectgarbage("generational")
elseif tonumber(gcmode) then collectgarbage("incremental", tonumber(gcmode), 200) end

local total = tonumber(arg[1]) or 100
local mode = arg[2] or "flow"
local sample_every = tonumber(arg[3]) or 0
local deadline_s = tonumber(arg[4])   -- stop counting after this many seconds
local transport = arg[5] -- nil: the client's own choice (the events socket where the server offers it)
if transport ~= nil and transport ~= "http" and transport ~= "websocket" then error("transport: http or websocket") end

local function rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a"); f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

local lat = {}
local done, failed, parked = 0, 0, 0
local cpu0, t0, rss0
local rss_parked, cpu_park, lua_parked, lua0
local mem0, mem_parked -- the C allocator's view (core.memory), where it can tell
local rss_samples = {}
local app = ari.app { app = "bench", transport = transport }

local function finish()
  local cpu = os.clock() - cpu0
  local wall = (core.hrtime() - t0) / 1e9
  table.sort(lat)
  local function pct(p) return lat[math.max(1, math.ceil(#lat * p))] or 0 end
  collectgarbage("collect")
  local out = {
    string.format("calls=%d failed=%d wall=%.3f cpu=%.3f cpu_per_call_us=%.1f calls_per_s=%.0f p50_ms=%.2f p99_ms=%.2f rss0_kb=%d rss_end_kb=%d",
      done, failed, wall, cpu, cpu / math.max(done, 1) * 1e6, done / wall, pct(0.5) / 1e6, pct(0.99) / 1e6, rss0, rss_kb()),
  }
  if rss_parked then
    out[#out + 1] = string.format("parked=%d rss_parked_kb=%d lua0_kb=%.0f lua_parked_kb=%.0f", parked, rss_parked, lua0, lua_parked)
    if mem0 and mem_parked then
      out[#out + 1] = string.format("heap_in_use0_kb=%.0f heap_in_use_parked_kb=%.0f heap_free0_kb=%.0f heap_free_parked_kb=%.0f",
        mem0.heap_in_use / 1024, mem_parked.heap_in_use / 1024, mem0.heap_free / 1024, mem_parked.heap_free / 1024)
    end
  end
  if #rss_samples > 0 then out[#out + 1] = "rss_samples=" .. table.concat(rss_samples, ",") end
  io.stdout:write(table.concat(out, " "), "\n")
  io.stdout:flush()
  os.exit(0)
end

-- The call script, as a user writes it: no pcall of its own (the app's
-- runner catches errors; on_end below counts the outcome).
local started = setmetatable({}, { __mode = "k" }) -- call -> hrtime at the start of its script
app:on_call(function(call)
  if not cpu0 then cpu0, t0 = os.clock(), core.hrtime() end
  started[call] = core.hrtime()
  call:answer()
  if mode == "park" then
    parked = parked + 1
    if parked == total then
      collectgarbage("collect")
      rss_parked = rss_kb()
      lua_parked = collectgarbage("count")
      mem_parked = core.memory()
      cpu_park = os.clock() - cpu0
    end
  else
    call:play("sound:beep")
  end
  local d = call:get_digits { max = 1, timeout = 600000 }
  if d ~= "1" then error("expected digit 1, got '" .. tostring(d) .. "'") end
  call:hangup()
end)

app.on_end = function(call, outcome, err)
  local start = started[call]
  started[call] = nil
  if outcome == "error" then
    failed = failed + 1
    if failed <= 3 then io.stderr:write("call failed: ", tostring(err), "\n") end
  end
  if sample_every == 0 and start then lat[#lat + 1] = core.hrtime() - start end
  done = done + 1
  if sample_every > 0 and done % sample_every == 0 then
    rss_samples[#rss_samples + 1] = done .. ":" .. rss_kb()
  end
  if done == total or (deadline_s and done % 100 == 0 and (core.hrtime() - t0) / 1e9 > deadline_s) then
    total = -1 -- once
    core.timer(0, finish)
  end
end
rss0 = rss_kb()
collectgarbage("collect")
lua0 = collectgarbage("count")
mem0 = core.memory()
