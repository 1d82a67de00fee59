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
--
-- Sections: `lua5.4 bench/run.lua [SECTION...]` runs only those, of json,
-- dispatch, flow, memory, real (a real Asterisk 22: bench/real_asterisk.lua),
-- node (the Node baselines: bench/node/), media (call audio streams:
-- bench/media_bench.lua) and profile, and replaces only their
-- parts of the results file (the others stay as they were).  No section: all.
local QUICK = os.getenv("BENCH_QUICK") == "1"
local OUT = os.getenv("BENCH_OUT") or "bench/results.md"
local SEQ_SECONDS = tonumber(os.getenv("BENCH_SEQ_SECONDS")) or (QUICK and 5 or 150)
local SPEED = 1000 -- simulated durations run this many times faster
local BIN = "./ari-lua"
local SECTIONS = { "json", "dispatch", "flow", "memory", "real", "node", "media", "profile" }
local chosen = {}
for _, a in ipairs(arg or {}) do
  local known = false
  for _, s in ipairs(SECTIONS) do if s == a then known = true end end
  if not known then
    io.stderr:write("bench/run.lua: unknown section '", a, "' (sections: ", table.concat(SECTIONS, ", "), ")\n")
    os.exit(2)
  end
  chosen[a] = true
end
local PARTIAL = next(chosen) ~= nil
local function want(section) return not PARTIAL or chosen[section] end
package.path = "bench/?.lua;" .. package.path
local TMP = os.tmpname()
os.remove(TMP)
os.execute("mkdir -p " .. TMP)

local util = require "util"
local sh, trim, loadavg, kv = util.sh, util.trim, util.loadavg, util.kv

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
  libs = trim(sh("for p in libuv libcurl openssl; do printf '%s %s, ' $p $(pkg-config --modversion $p); done")):gsub(",$", ""),
  cjson = trim(sh("dpkg-query -W -f='${Version}' lua-cjson 2>/dev/null")),
  version = trim(sh(BIN .. " --version")),
  commit = trim(sh("git rev-parse --short HEAD 2>/dev/null")),
  date = trim(sh("date -u '+%Y-%m-%d %H:%M UTC'")),
  pinned = has_taskset and ncpu >= 2,
  load_start = loadavg(),
}
say("machine: %s, %d cores, %s, load %s", machine.cpu, machine.cores, machine.kernel, machine.load_start)

-- 1. JSON decode -------------------------------------------------------------
if want("json") then
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
if want("dispatch") then
  local n = QUICK and 50000 or 1000000
  local s = start_server(BIN .. " bench/firehose.lua 0 " .. n)
  local out = sh(pin(CLIENT, string.format("%s --url http://127.0.0.1:%d --user asterisk --password asterisk --log-level warn bench/dispatch_client.lua %d",
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

local LEVELS = QUICK and { { 1, 50 }, { 100, 500 }, { 1000, 2000 }, { 10000, 10000 } }
  or { { 1, 3000 }, { 100, 10000 }, { 1000, 20000 }, { 10000, 30000 } }
-- REST through libcurl (http), then REST over the events WebSocket
-- (RESTRequest messages, ari.wstransport)
if want("flow") then
results.flow = {}
for _, tr in ipairs { "http", "websocket" } do
  for _, lv in ipairs(LEVELS) do
    local conc, calls = lv[1], lv[2]
    local t = callflow(calls, conc, "flow", nil, nil, "0 999999 " .. tr)
    t.transport = tr
    results.flow[#results.flow + 1] = t
    say("flow transport=%s concurrency=%d calls=%s failed=%s calls_per_s=%s p50_ms=%s p99_ms=%s client_cpu_per_call_us=%s sim_cpu_s=%s",
      tr, conc, t.calls, t.failed, t.calls_per_s, t.p50_ms, t.p99_ms, t.cpu_per_call_us, t.sim_cpu)
  end
end

end

-- 10,000 calls parked in get_digits: the far ends answer, then wait at a
-- gate until every call has answered (plus 2 s), then send the digit.
if want("memory") then
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
  local t = callflow(n, n, "park", script, prelude, "0 999999 http")
  results.park = t
  local tw = callflow(n, n, "park", script, prelude, "0 999999 websocket")
  results.park_ws = tw
  say("park transport=websocket calls=%s parked=%s rss0_kb=%s rss_parked_kb=%s", tw.calls, tw.parked, tw.rss0_kb, tw.rss_parked_kb)
  say("park calls=%s parked=%s rss0_kb=%s rss_parked_kb=%s per_call_kb=%.2f", t.calls, t.parked, t.rss0_kb,
    t.rss_parked_kb, ((t.rss_parked_kb or 0) - (t.rss0_kb or 0)) / n)
end

-- Sequential calls with RSS sampled along the way (bounded by SEQ_SECONDS).
if want("memory") then
  local n = 1000000
  local every = QUICK and 1000 or 20000
  local t = callflow(n, 100, "flow", nil, nil, string.format("%d %d", every, SEQ_SECONDS))
  results.seq = t
  say("sequential calls=%s wall=%s rss_samples=%s", t.calls, t.wall, t.rss_samples)
end

-- The Node baselines (bench/node/): the same simulated call flow and firehose
-- with ari-lua, a hand-written Node client and the official ari-client, one
-- after the other per size, so their ratios come from the same run.
local function node_missing()
  if trim(sh("command -v node")) == "" then return "node is not installed" end
  local function have()
    for _, m in ipairs { "ws", "ari-client" } do
      local f = io.open("bench/node/node_modules/" .. m .. "/package.json")
      if not f then return false end
      f:close()
    end
    return true
  end
  if not have() then
    if trim(sh("command -v npm")) == "" then return "npm is not installed (bench/node needs `npm ci`)" end
    say("node: npm ci in bench/node")
    sh("cd bench/node && timeout 300 npm ci --no-audit --no-fund --loglevel=error")
    if not have() then return "`npm ci` in bench/node did not install ws and ari-client" end
  end
  return nil
end

local NODE_CLIENTS = {
  { key = "lua", name = "ari-lua",
    flow = "%s --url http://127.0.0.1:%d --user asterisk --password asterisk --log-level warn bench/callflow_client.lua %d",
    fire = "%s --url http://127.0.0.1:%d --user asterisk --password asterisk --log-level warn bench/dispatch_client.lua %d" },
  { key = "node", name = "hand-written Node",
    flow = "%s bench/node/handwritten.js flow http://127.0.0.1:%d %d", fire = "%s bench/node/handwritten.js firehose http://127.0.0.1:%d %d" },
  { key = "ariclient", name = "Node ari-client",
    flow = "%s bench/node/ariclient.js flow http://127.0.0.1:%d %d", fire = "%s bench/node/ariclient.js firehose http://127.0.0.1:%d %d" },
}

local function NODE()
  local missing = node_missing()
  if missing then
    say("node: skipped: %s", missing)
    return { skipped = missing }
  end
  local res = { node = trim(sh("node --version")), flow = {}, fire = {},
    versions = trim(sh("cd bench/node && node -e \"console.log('ws ' + require('ws/package.json').version + ', ari-client ' + require('ari-client/package.json').version)\"")) }
  -- the far end waits for the hang-up without a limit: at speed 1000 the
  -- flow's 600,000 (600 ms real) ends calls that a slow client is still
  -- working on (the Node clients, at concurrency 10,000)
  local script = FLOW_SCRIPT:gsub("timeout = 600000", "timeout = 1e12")
  local levels = QUICK and { { 1, 50 }, { 100, 300 }, { 1000, 1000 }, { 10000, 10000 } }
    or { { 1, 2000 }, { 100, 5000 }, { 1000, 20000 }, { 10000, 20000 } }
  for _, lv in ipairs(levels) do
    local conc, calls = lv[1], lv[2]
    local row = { concurrency = conc, calls = calls }
    for _, c in ipairs(NODE_CLIENTS) do
      local scn = scenario(calls, conc, script)
      local srv = start_server(string.format("%s bench/simd.lua 0 %d %s", BIN, SPEED, scn))
      local out = sh(pin(CLIENT, "timeout 600 " .. string.format(c.flow, c.key == "lua" and BIN or "node", srv.port, calls)))
      stop_server(srv)
      local t = kv(out:match("calls=[^\n]+"))
      t.first_error = out:match("call failed:? ([^\n]+)")
      if not t.calls then t.error = trim(out):sub(1, 300) end
      t.load = loadavg()
      row[c.key] = t
      say("node flow client=%s concurrency=%d calls=%s failed=%s client_cpu_per_call_us=%s calls_per_s=%s%s", c.key, conc,
        tostring(t.calls), tostring(t.failed), tostring(t.cpu_per_call_us), tostring(t.calls_per_s), t.error and (" error: " .. t.error) or "")
    end
    res.flow[#res.flow + 1] = row
    local l = row.lua.cpu_per_call_us
    if type(l) == "number" and l > 0 then
      say("node ratio concurrency=%d node_over_ari_lua=%s ariclient_over_ari_lua=%s (goals: 3, 10)", conc,
        type(row.node.cpu_per_call_us) == "number" and string.format("%.2f", row.node.cpu_per_call_us / l) or "-",
        type(row.ariclient.cpu_per_call_us) == "number" and string.format("%.2f", row.ariclient.cpu_per_call_us / l) or "-")
    end
  end
  local n = QUICK and 20000 or 200000
  res.events = n
  for _, c in ipairs(NODE_CLIENTS) do
    local srv = start_server(BIN .. " bench/firehose.lua 0 " .. n)
    local out = sh(pin(CLIENT, "timeout 600 " .. string.format(c.fire, c.key == "lua" and BIN or "node", srv.port, n)))
    stop_server(srv)
    local t = kv(out:match("dispatch [^\n]+"))
    if not t.events then t.error = trim(out):sub(1, 300) end
    t.load = loadavg()
    res.fire[c.key] = t
    say("node firehose client=%s events=%s events_per_s=%s events_per_cpu_s=%s us_per_event=%s", c.key, tostring(t.events),
      tostring(t.events_per_s), tostring(t.events_per_cpu_s), tostring(t.us_per_event))
  end
  local lf, nf = res.fire.lua, res.fire.node
  if type(lf.events_per_s) == "number" and type(nf.events_per_s) == "number" then
    say("node firehose ratio ari_lua_over_node=%.2f (goal 3) ari_lua_events_per_cpu_s=%s (goal 500000)",
      lf.events_per_s / nf.events_per_s, tostring(lf.events_per_cpu_s))
  end
  return res
end

-- 5. A real Asterisk 22 ------------------------------------------------------------
if want("real") then
  results.real = require("real_asterisk").run { quick = QUICK, say = function(s) say("%s", s) end }
  if results.real.skipped then say("real: skipped: %s", results.real.skipped) end
  if results.real.error then say("real: error: %s", results.real.error) end
  results.real.load = loadavg()
end

-- 6. Node baselines ------------------------------------------------------------------
if want("node") then
  results.node = NODE()
end

-- Call audio: concurrent media streams (bench/media_bench.lua) ---------------------
if want("media") then
  results.media = require("media_bench").run { quick = QUICK, say = say, pin = pin, client_cpu = CLIENT,
    feeder_cpu = FEEDER, bin = BIN, tmp = TMP, loadavg = loadavg }
end

-- 7. Profile (perf when it works) -----------------------------------------------
if want("profile") then
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

if results.json then
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

end

if results.dispatch then
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

end

if results.flow then
w("## 3. Call flow")
w("")
w("answer -> play `sound:beep` -> wait PlaybackFinished -> read one digit -> hang up. The simulated Asterisk")
w("(`bench/simd.lua`: `ari.sim` served over HTTP/WS, transcript off) runs as a separate process at speed %d", SPEED)
w("(the 250 ms beep lasts 0.25 ms), its load generator keeping N calls in flight. Latency: from the call's")
w("StasisStart reaching the app's call coroutine to the hang-up reply. Client CPU: the client's own")
w("user+system CPU time (os.clock, i.e. its rusage) from the first call to the last, divided by the calls.")
w("")
w("REST transport (forced per row): `http` is libcurl, `websocket` sends REST as RESTRequest messages over")
w("the events socket (the default where the server offers it, as the simulated Asterisk 22 does; the simulator answers them).")
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

end

if results.park or results.seq then
w("## 4. Memory")
w("")
local p = results.park or {}
local per = p.rss_parked_kb and p.rss0_kb and (p.rss_parked_kb - p.rss0_kb) / (p.parked or 1) or nil
w("**Parked calls.** %s calls answered and parked in `get_digits` at once (the simulator holds every", num(p.parked))
w("digit until all have answered). Client RSS before the first call: %s KB; with all parked (after a full GC): %s KB;", num(p.rss0_kb), num(p.rss_parked_kb))
w("**%s KB per parked call** with REST over HTTP (libcurl, forced). Load: %s.", num(per, "%.2f"), p.load)
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
  w("With REST over the events WebSocket (the default where the server offers it; no libcurl): RSS %s KB -> %s KB, **%s KB per parked call**; per call: %s.",
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

end

if results.real then
w("## 5. A real Asterisk 22")
w("")
require("real_asterisk").markdown(results.real, w, num)
end

if results.node then
w("## 6. Node baselines")
w("")
local nd = results.node
if nd.skipped then
  w("**Skipped:** %s (`make bench` runs this part where node is installed; `npm ci` in bench/node fetches", nd.skipped)
  w("`ws` and `ari-client` from package-lock.json).")
  w("")
else
  w("The same simulated call flow as part 3 (answer -> play `sound:beep` -> PlaybackFinished -> one digit ->")
  w("hang up; `bench/simd.lua` at speed %d, a separate process on the other core) and the same firehose as part 2,", SPEED)
  w("taken one client after the other at each size in this run: ari-lua (`bench/callflow_client.lua`, REST over")
  w("the events WebSocket, its default against the simulated Asterisk 22; `bench/dispatch_client.lua`), a hand-written Node client (`bench/node/handwritten.js`: `ws` for")
  w("events, `http` with a keep-alive agent of 32 sockets per host for REST, JSON.parse, a switch on the event")
  w("type; firehose: JSON.parse and an EventEmitter handler per event) and the official `ari-client`")
  w("(`bench/node/ariclient.js`, as its documentation shows: `channel.answer()`, `client.Playback()`,")
  w("`channel.play()`, `channel.on('ChannelDtmfReceived')`; firehose: a `client.on('*')` handler). %s, %s.", nd.node or "node", nd.versions or "")
  w("Client CPU: the whole process's user+system time from the first call (event) to the last (os.clock in")
  w("Lua, `process.cpuUsage()` in Node: V8's and libuv's threads included).")
  w("")
  w("| concurrency | calls | ari-lua CPU us/call | hand-written Node us/call | ari-client us/call | Node / ari-lua | ari-client / ari-lua | calls/s (ari-lua, Node, ari-client) | failed | load |")
  w("|---:|---:|---:|---:|---:|---:|---:|---|---|---|")
  local function ratio(a, b) if type(a) ~= "number" or type(b) ~= "number" or b == 0 then return "-" end return string.format("%.2fx", a / b) end
  for _, row in ipairs(nd.flow) do
    local l, n, a = row.lua or {}, row.node or {}, row.ariclient or {}
    w("| %s | %s | %s | %s | %s | **%s** | **%s** | %s, %s, %s | %s, %s, %s | %s |", num(row.concurrency), num(row.calls),
      num(l.cpu_per_call_us, "%.1f"), num(n.cpu_per_call_us, "%.1f"), num(a.cpu_per_call_us, "%.1f"),
      ratio(n.cpu_per_call_us, l.cpu_per_call_us), ratio(a.cpu_per_call_us, l.cpu_per_call_us),
      num(l.calls_per_s), num(n.calls_per_s), num(a.calls_per_s), num(l.failed), num(n.failed), num(a.failed), a.load or n.load or "")
  end
  w("")
  for _, row in ipairs(nd.flow) do
    for _, k in ipairs { "lua", "node", "ariclient" } do
      local t = row[k] or {}
      if t.error then w("Run failed (%s, concurrency %s): `%s`", k, num(row.concurrency), t.error) end
      if t.first_error then w("First failure (%s, concurrency %s): `%s`", k, num(row.concurrency), t.first_error) end
    end
  end
  w("The machine was shared with other jobs during these runs (see the load column and the note at the top):")
  w("%s", "the figures are indicative, within 10-20 %; every figure is CPU time (user + system), not wall time.")
  w("")
  w("Goals (issue #16): client CPU per call at least 3x lower than the hand-written Node client (the column")
  w("Node / ari-lua at least 3x) and 10x lower than ari-client (ari-client / ari-lua at least 10x). Node's")
  w("figures include V8's JIT warm-up (its first calls run interpreted), which weighs most at the small sizes.")
  w("")
  w("**Firehose**, %s events:", num(nd.events))
  w("")
  w("| client | events/s (wall) | events per CPU second | us CPU/event | ari-lua / client (events/s) | load |")
  w("|---|---:|---:|---:|---:|---|")
  local lf = nd.fire.lua or {}
  for _, c in ipairs(NODE_CLIENTS) do
    local t = nd.fire[c.key] or {}
    w("| %s | %s | %s | %s | %s | %s |", c.name, num(t.events_per_s), num(t.events_per_cpu_s), num(t.us_per_event, "%.2f"),
      c.key == "lua" and "-" or ratio(lf.events_per_s, t.events_per_s), t.load or "")
    if t.error then w("") w("Run failed (%s): `%s`", c.key, t.error) end
  end
  w("")
  w("Goals (issue #16): ari-lua at least 3x the hand-written Node client's events/s, and at least 500,000 events")
  w("per CPU second.")
  w("")
end
end

if results.media then require("media_bench").write(w, results.media, num) end

if results.profile then
w("## 7. Profile")
w("")
w("%s; top entries (self time by shared object and symbol):", results.profile.tool)
w("")
w("```")
w("%s", trim(results.profile.text))
w("```")
w("")
local nf = io.open("bench/profile-notes.md")
if nf then w("%s", trim(nf:read("a"))); nf:close(); w("") end
end

-- A partial run (sections named) replaces only its parts of the existing
-- file: parts are the blocks that start with "## ", matched by their title
-- without the number; new parts go before the profile (or at the end).
local function chunks(lines)
  local list, cur = {}, { title = "", lines = {} }
  for _, l in ipairs(lines) do
    if l:match("^## ") then
      list[#list + 1] = cur
      cur = { title = l:gsub("^## [%d%.]*%s*", ""), lines = {} }
    end
    cur.lines[#cur.lines + 1] = l
  end
  list[#list + 1] = cur
  return list
end
if PARTIAL then
  local old = io.open(OUT)
  local text = old and old:read("a") or ""
  if old then old:close() end
  local oldlines = {}
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do oldlines[#oldlines + 1] = l end
  local have, new = chunks(oldlines), chunks(md)
  for i = 2, #new do -- new[1] is the title and the machine
    local c, placed = new[i], false
    if c.title ~= "Machine" then
      for j = 2, #have do
        if have[j].title == c.title then have[j] = c; placed = true; break end
      end
      if not placed then
        local at = #have + 1
        for j = 2, #have do if have[j].title == "Profile" then at = j; break end end
        table.insert(have, at, c)
      end
    end
  end
  local names = {}
  for k in pairs(chosen) do names[#names + 1] = k end
  table.sort(names)
  local note = string.format("Re-run in part (`lua5.4 bench/run.lua %s`) on %s, commit %s, %s (%d cores, kernel %s): load %s at start, %s at end (the Machine section is the full run's).",
    table.concat(names, " "), machine.date, machine.commit, machine.cpu, machine.cores, machine.kernel, machine.load_start, machine.load_end)
  local head = have[1].lines
  local found = false
  for i, l in ipairs(head) do
    if l:match("^Re%-run in part") and l:find("run.lua " .. table.concat(names, " ") .. "`", 1, true) then head[i] = note; found = true end
  end
  if not found then
    local at = #head + 1
    for i, l in ipairs(head) do if l:match("^Written by") or l:match("^Re%-run in part") then at = i + 1 end end
    table.insert(head, at, note)
  end
  md = {}
  for _, c in ipairs(have) do for _, l in ipairs(c.lines) do md[#md + 1] = l end end
  while md[#md] == "" do md[#md] = nil end
end

local f = assert(io.open(OUT, "w"))
f:write(table.concat(md, "\n"), "\n")
f:close()
os.execute("rm -rf " .. TMP)
say("wrote %s", OUT)
