-- bench/run.lua: every ari-lua benchmark, one after the other; writes
-- bench/results.md.  `make bench` runs it (lua5.4 bench/run.lua).
--
-- The client under test and the process feeding it (the simulated
-- Asterisk, or the event firehose) run as separate processes, pinned to
-- different cores with taskset when there are two.  Figures are printed
-- and recorded; nothing here asserts a speed.
--
-- Environment: BENCH_QUICK=1 runs every part at a small size (a smoke run);
-- BENCH_OUT=path writes the results elsewhere; BENCH_SEQ_SECONDS bounds the
-- long sequential memory run (default 150 s).
local QUICK = os.getenv("BENCH_QUICK") == "1"
local OUT = os.getenv("BENCH_OUT") or "bench/results.md"
local SEQ_SECONDS = tonumber(os.getenv("BENCH_SEQ_SECONDS")) or (QUICK and 5 or 150)
local SPEED = 1000 -- simulated durations run this many times faster
local BIN = "./ari-lua"
local TMP = os.tmpname()
os.remove(TMP)
os.execute("mkdir -p " .. TMP)

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  p:close()
  return out
end

local function trim(s) return ((s or ""):gsub("^%s+", ""):gsub("%s+$", "")) end

local function loadavg()
  local f = io.open("/proc/loadavg")
  if not f then return "?" end
  local s = f:read("l"); f:close()
  return s:match("^(%S+ %S+ %S+)")
end

local function kv(line)
  local t = {}
  for k, v in (line or ""):gmatch("([%w_]+)=(%S+)") do t[k] = tonumber(v) or v end
  return t
end

-- Cores: the client on CPU_CLIENT, the feeder on CPU_FEEDER.
local ncpu = tonumber(trim(sh("nproc"))) or 1
local has_taskset = trim(sh("command -v taskset")) ~= ""
local function pin(cpu, cmd)
  if has_taskset and ncpu >= 2 then return "taskset -c " .. cpu .. " " .. cmd end
  return cmd
end
local CLIENT, FEEDER = 0, 1

-- Start a background server; returns { pid, port, handle } once it has
-- printed its "listening on" line.
local function start_server(cmd)
  local h = io.popen("sh -c 'echo $$; exec " .. pin(FEEDER, cmd) .. " 2>" .. TMP .. "/server.err'", "r")
  local pid = tonumber(h:read("l"))
  local line = h:read("l") or ""
  local port = tonumber(line:match(":(%d+)%s*$") or line:match("on (%d+)"))
  if not port then
    h:close()
    error("server did not start: " .. line .. " " .. sh("cat " .. TMP .. "/server.err"))
  end
  return { pid = pid, port = port, handle = h }
end

local function stop_server(s)
  os.execute("kill " .. s.pid .. " 2>/dev/null")
  s.handle:close()
  local f = io.open(TMP .. "/server.err")
  local err = f and f:read("a") or ""
  if f then f:close() end
  return err
end

local results = {}
local function say(fmt, ...)
  local s = string.format(fmt, ...)
  io.stdout:write(s, "\n")
  io.stdout:flush()
end

-- Machine -------------------------------------------------------------------
local machine = {
  cpu = trim(sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")),
  cores = ncpu,
  kernel = trim(sh("uname -sr")),
  os = trim(sh(". /etc/os-release 2>/dev/null && echo \"$PRETTY_NAME\"")),
  lua = trim(sh("lua5.4 -v")),
  cc = trim(sh("cc --version | head -1")),
  libs = trim(sh("for p in libuv libwebsockets libcurl; do printf '%s %s, ' $p $(pkg-config --modversion $p); done")):gsub(",$", ""),
  cjson = trim(sh("dpkg-query -W -f='${Version}' lua-cjson 2>/dev/null")),
  version = trim(sh(BIN .. " --version")),
  commit = trim(sh("git rev-parse --short HEAD 2>/dev/null")),
  date = trim(sh("date -u '+%Y-%m-%d %H:%M UTC'")),
  pinned = has_taskset and ncpu >= 2,
  load_start = loadavg(),
}
say("machine: %s, %d cores, %s, load %s", machine.cpu, machine.cores, machine.kernel, machine.load_start)

-- 1. JSON decode -------------------------------------------------------------
do
  local out = sh(pin(CLIENT, "lua5.4 bench/json.lua " .. (QUICK and "0.3" or "3")))
  io.stdout:write(out)
  results.json = { load = loadavg(), rows = {} }
  for line in out:gmatch("[^\n]+") do
    if line:match("^json corpus=") then results.json.corpus = kv(line)
    elseif line:match("^json decoder=") then
      local t = kv(line)
      results.json.rows[#results.json.rows + 1] = t
    end
  end
end

-- 2. Event dispatch -----------------------------------------------------------
do
  local n = QUICK and 50000 or 1000000
  local s = start_server(BIN .. " bench/firehose.lua 0 " .. n)
  local out = sh(pin(CLIENT, string.format("%s --url http://127.0.0.1:%d --user u --password p --log-level warn bench/dispatch_client.lua %d",
    BIN, s.port, n)))
  stop_server(s)
  io.stdout:write(out)
  results.dispatch = kv(out:match("dispatch [^\n]+"))
  results.dispatch.load = loadavg()
end

-- 3. Call flow, 4. memory ------------------------------------------------------
local FLOW_SCRIPT = [[{ { "wait_answer" }, { "wait_playback" }, { "dtmf", "1", gap = 0, duration = 10 },
    { "wait_hangup", timeout = 600000 } }]]

local function scenario(calls, conc, script, prelude)
  local path = string.format("%s/scn-%d-%d.lua", TMP, calls, conc)
  local f = assert(io.open(path, "w"))
  f:write(prelude or "", "\nreturn { app = \"bench\", load = { calls = ", calls, ", concurrency = ", conc,
    ", script = ", script, " } }\n")
  f:close()
  return path
end

local function callflow(calls, conc, mode, script, prelude, extra_args)
  local scn = scenario(calls, conc, script or FLOW_SCRIPT, prelude)
  local s = start_server(string.format("%s bench/simd.lua 0 %d %s", BIN, SPEED, scn))
  local out = sh(pin(CLIENT, string.format("%s --url http://127.0.0.1:%d --user asterisk --password asterisk --log-level warn bench/callflow_client.lua %d %s %s",
    BIN, s.port, calls, mode or "flow", extra_args or "")))
  local err = stop_server(s)
  local t = kv(out:match("calls=[^\n]+"))
  t.sim_cpu = tonumber(err:match("simd cpu ([%d%.]+)"))
  t.load = loadavg()
  t.concurrency = conc
  t.first_error = out:match("call failed: ([^\n]+)")
  if not t.calls then io.stderr:write("call flow run failed:\n", out, err, "\n") end
  return t
end

results.flow = {}
local LEVELS = QUICK and { { 1, 50 }, { 100, 500 }, { 1000, 2000 }, { 10000, 10000 } }
  or { { 1, 3000 }, { 100, 10000 }, { 1000, 20000 }, { 10000, 30000 } }
-- REST through libcurl (http), then REST over the events WebSocket
-- (RESTRequest messages, ari.wstransport)
for _, tr in ipairs { "http", "websocket" } do
  for _, lv in ipairs(LEVELS) do
    local conc, calls = lv[1], lv[2]
    local t = callflow(calls, conc, "flow", nil, nil, tr == "http" and "" or "0 999999 websocket")
    t.transport = tr
    results.flow[#results.flow + 1] = t
    say("flow transport=%s concurrency=%d calls=%s failed=%s calls_per_s=%s p50_ms=%s p99_ms=%s client_cpu_per_call_us=%s sim_cpu_s=%s",
      tr, conc, t.calls, t.failed, t.calls_per_s, t.p50_ms, t.p99_ms, t.cpu_per_call_us, t.sim_cpu)
  end
end

-- 10,000 calls parked in get_digits: the far ends answer, then wait at a
-- gate until every call has answered (plus 2 s), then send the digit.
do
  local n = QUICK and 1000 or 10000
  local prelude = string.format([[
local sched = require "ari.sched"
local N, answered, waiting = %d, 0, {}
local function gate(sim)
  answered = answered + 1
  if answered == N then
    sim:after(2000 * sim.speed, function() local w = waiting; waiting = nil; for i = 1, #w do w[i]() end end)
  end
  if waiting then sched.suspend(function(wake) waiting[#waiting + 1] = wake end) end
end]], n)
  local script = [[{ { "wait_answer" }, { "call", gate }, { "dtmf", "1", gap = 0, duration = 10 },
    { "wait_hangup", timeout = 600000 } }]]
  local t = callflow(n, n, "park", script, prelude)
  results.park = t
  local tw = callflow(n, n, "park", script, prelude, "0 999999 websocket")
  results.park_ws = tw
  say("park transport=websocket calls=%s parked=%s rss0_kb=%s rss_parked_kb=%s", tw.calls, tw.parked, tw.rss0_kb, tw.rss_parked_kb)
  say("park calls=%s parked=%s rss0_kb=%s rss_parked_kb=%s per_call_kb=%.2f", t.calls, t.parked, t.rss0_kb,
    t.rss_parked_kb, ((t.rss_parked_kb or 0) - (t.rss0_kb or 0)) / n)
end

-- Sequential calls with RSS sampled along the way (bounded by SEQ_SECONDS).
do
  local n = 1000000
  local every = QUICK and 1000 or 20000
  local t = callflow(n, 100, "flow", nil, nil, string.format("%d %d", every, SEQ_SECONDS))
  results.seq = t
  say("sequential calls=%s wall=%s rss_samples=%s", t.calls, t.wall, t.rss_samples)
end

-- 5. Profile (perf when it works) -----------------------------------------------
do
  local perf_ok = trim(sh("command -v perf")) ~= "" and
    sh("perf record -e cpu-clock -o " .. TMP .. "/probe.data true"):match("Captured") ~= nil
  if perf_ok then
    local calls = QUICK and 1000 or 20000
    local scn = scenario(calls, 100, FLOW_SCRIPT)
    local s = start_server(string.format("%s bench/simd.lua 0 %d %s", BIN, SPEED, scn))
    sh(pin(CLIENT, string.format("perf record -e cpu-clock -F 2000 -o %s/perf.data %s --url http://127.0.0.1:%d --user asterisk --password asterisk --log-level warn bench/callflow_client.lua %d",
      TMP, BIN, s.port, calls)))
    stop_server(s)
    local rep = sh("perf report -i " .. TMP .. "/perf.data --stdio --no-children --sort dso,symbol 2>/dev/null | grep -v '^#' | grep '%' | head -25")
    results.profile = { tool = "perf record -e cpu-clock (call flow, concurrency 100, " .. calls .. " calls)", text = rep }
  else
    results.profile = { tool = "perf not usable here", text = "" }
  end
end

machine.load_end = loadavg()

-- results.md ----------------------------------------------------------------------
local md = {}
local function w(fmt, ...) md[#md + 1] = select("#", ...) > 0 and string.format(fmt, ...) or fmt end
local function num(x, f) if type(x) ~= "number" then return tostring(x or "-") end return string.format(f or "%.0f", x) end

w("# ari-lua benchmarks")
w("")
w("Written by `make bench` (bench/run.lua)%s on %s, commit %s.", QUICK and " in QUICK mode (small sizes)" or "",
  machine.date, machine.commit)
w("")
w("## Machine")
w("")
w("- CPU: %s, %d cores%s", machine.cpu, machine.cores,
  machine.pinned and " (client pinned to CPU 0, simulator/firehose to CPU 1 with taskset)" or " (not pinned)")
w("- %s, kernel %s", machine.os, machine.kernel)
w("- %s; %s; %s; lua-cjson %s", machine.lua, machine.cc, machine.libs, machine.cjson ~= "" and machine.cjson or "not installed")
w("- %s", machine.version)
w("- Load average (1, 5, 15 min) at start: %s; at end: %s.", machine.load_start, machine.load_end)
w("")
w("**Noise:** these figures were taken on a machine shared with other jobs (see the load")
w("averages, also given per part); treat them as indicative, within tens of per cent.")
w("")

w("## 1. JSON decode")
w("")
local c = results.json.corpus or {}
w("Corpus: `%s`, %s messages, %s bytes, %s event types (every ARI event type). Real Asterisk 22",
  tostring(c.corpus), num(c.messages), num(c.bytes), num(c.types))
w("messages, Channel events (Channel*, StasisStart/End, Dial) weighted x3 as in live traffic; the types the")
w("real run never produced are synthesized from the schema (%s). Load at the end: %s.", tostring(c.synthesized), results.json.load)
w("")
w("| decoder | MB/s | events/s | us/event |")
w("|---|---:|---:|---:|")
local NAMES = { ari_typed = "ari-lua typed C decoder (`core.json_decode`, schema registered)",
  cjson = "`cjson.decode` (untyped)", cjson_lua_typing = "`cjson.decode` + Lua typing pass (`models.cast`)" }
for _, r in ipairs(results.json.rows) do
  w("| %s | %s | %s | %s |", NAMES[r.decoder] or r.decoder, num(r.mb_per_s, "%.1f"), num(r.events_per_s), num(r.us_per_event, "%.2f"))
end
w("")

w("## 2. Event dispatch")
w("")
local d = results.dispatch
w("`bench/firehose.lua` (an `ari.core` server, separate process) sends the corpus's pre-encoded events over")
w("one WebSocket as fast as the socket takes them; an `ari.connect` client counts them in a `client:on(\"*\")`")
w("handler (frame -> C JSON decode with types -> dispatch -> handler coroutine). Load at the end: %s.", d.load)
w("")
w("| events | wall s | client CPU s | events/s (wall) | events per CPU second | us CPU/event |")
w("|---:|---:|---:|---:|---:|---:|")
w("| %s | %s | %s | %s | %s | %s |", num(d.events), num(d.wall, "%.2f"), num(d.cpu, "%.2f"), num(d.events_per_s),
  num(d.events_per_cpu_s), num(d.us_per_event, "%.2f"))
w("")

w("## 3. Call flow")
w("")
w("answer -> play `sound:beep` -> wait PlaybackFinished -> read one digit -> hang up. The simulated Asterisk")
w("(`bench/simd.lua`: `ari.sim` served over HTTP/WS, transcript off) runs as a separate process at speed %d", SPEED)
w("(the 250 ms beep lasts 0.25 ms), its load generator keeping N calls in flight. Latency: from the call's")
w("StasisStart reaching the app's call coroutine to the hang-up reply. Client CPU: the client's own")
w("user+system CPU time (os.clock, i.e. its rusage) from the first call to the last, divided by the calls.")
w("")
w("REST transport: `http` is libcurl (the default), `websocket` sends REST as RESTRequest messages over")
w("the events socket (`ari.app{ transport = \"websocket\" }`, Asterisk 22's feature; the simulator answers them).")
w("")
w("| REST | concurrency | calls | failed | calls/s | p50 ms | p99 ms | client CPU us/call | sim CPU us/call | load |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for _, t in ipairs(results.flow) do
  w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", t.transport or "http", num(t.concurrency), num(t.calls), num(t.failed), num(t.calls_per_s),
    num(t.p50_ms, "%.2f"), num(t.p99_ms, "%.2f"), num(t.cpu_per_call_us, "%.1f"),
    t.sim_cpu and t.calls and num(t.sim_cpu / t.calls * 1e6, "%.1f") or "-", t.load)
end
for _, t in ipairs(results.flow) do
  if t.first_error then w("First failure (%s) at concurrency %s: `%s`", t.transport or "http", num(t.concurrency), t.first_error) end
end
w("")

w("## 4. Memory")
w("")
local p = results.park or {}
local per = p.rss_parked_kb and p.rss0_kb and (p.rss_parked_kb - p.rss0_kb) / (p.parked or 1) or nil
w("**Parked calls.** %s calls answered and parked in `get_digits` at once (the simulator holds every", num(p.parked))
w("digit until all have answered). Client RSS before the first call: %s KB; with all parked (after a full GC): %s KB;", num(p.rss0_kb), num(p.rss_parked_kb))
w("**%s KB per parked call**. Load: %s.", num(per, "%.2f"), p.load)
-- where the RSS per call goes: Lua heap, the C heap in use (Lua's objects
-- with malloc's per-chunk overhead, and C state), and memory freed during
-- the ramp that malloc keeps (free chunks between live ones)
local function split(t)
  local n = t.parked or 1
  local parts = {}
  if t.lua_parked_kb and t.lua0_kb then
    parts[#parts + 1] = string.format("Lua heap (collectgarbage(\"count\")) %s KB", num((t.lua_parked_kb - t.lua0_kb) / n, "%.2f"))
  end
  if t.heap_in_use_parked_kb and t.heap_in_use0_kb then
    parts[#parts + 1] = string.format("C heap in use (core.memory(): Lua's objects plus malloc's per-chunk overhead, and C state) %s KB",
      num((t.heap_in_use_parked_kb - t.heap_in_use0_kb) / n, "%.2f"))
    parts[#parts + 1] = string.format("freed during the ramp but kept by malloc (free chunks between live ones) %s KB",
      num((t.heap_free_parked_kb - t.heap_free0_kb) / n, "%.2f"))
  end
  return table.concat(parts, "; ")
end
if p.lua_parked_kb then w("Per call: %s.", split(p)) end
local pw = results.park_ws or {}
if pw.rss_parked_kb and pw.rss0_kb then
  w("With REST over the WebSocket (no libcurl): RSS %s KB -> %s KB, **%s KB per parked call**; per call: %s.",
    num(pw.rss0_kb), num(pw.rss_parked_kb), num((pw.rss_parked_kb - pw.rss0_kb) / (pw.parked or 1), "%.2f"), split(pw))
end
w("")
local q = results.seq or {}
w("**Sequential calls.** Call flow at concurrency 100, RSS sampled every few thousand calls, run bounded to %d s:", SEQ_SECONDS)
w("%s calls in %s s (%s calls/s).", num(q.calls), num(q.wall, "%.1f"), num(q.calls_per_s))
w("")
w("| calls done | RSS KB |")
w("|---:|---:|")
local first, last
for pair in tostring(q.rss_samples or ""):gmatch("[^,]+") do
  local n, r = pair:match("(%d+):(%d+)")
  if n then
    w("| %s | %s |", n, r)
    first = first or tonumber(r); last = tonumber(r)
  end
end
if first and last then
  w("")
  w("RSS from the first sample to the last: %+d KB over %s calls.", last - first, num(q.calls))
  if (q.calls or 0) < 1000000 and (q.calls_per_s or 0) > 0 then
    w("A million calls did not fit in the time budget: at this rate they would take %.0f s. The extrapolation to", 1e6 / q.calls_per_s)
    w("1,000,000 rests on the samples above being flat (no trend), not on a measured million.")
  end
end
w("")

w("## 5. Profile")
w("")
w("%s; top entries (self time by shared object and symbol):", results.profile.tool)
w("")
w("```")
w("%s", trim(results.profile.text))
w("```")
w("")
local nf = io.open("bench/profile-notes.md")
if nf then w("%s", trim(nf:read("a"))); nf:close(); w("") end

local f = assert(io.open(OUT, "w"))
f:write(table.concat(md, "\n"))
f:close()
os.execute("rm -rf " .. TMP)
say("wrote %s", OUT)
