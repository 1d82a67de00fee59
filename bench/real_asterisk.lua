-- bench/real_asterisk.lua: ari-lua against a real Asterisk 22.
--
-- A private Asterisk 22 (tools/asterisk.sh, from ../shared/asterisk; the
-- part is skipped with a note where that is absent) with the dialplan of
-- bench/asterisk/extensions.conf.  Three processes: Asterisk, the app under
-- test (./ari-lua bench/real_app.lua) and the load generator
-- (./ari-lua bench/real_driver.lua, REST only), which originates
-- Local/bench@stasis-app calls into the app keeping N in flight.
-- Over the driver's run (first originate to last call ended) this reads,
-- from /proc, the CPU time (utime + stime of /proc/PID/stat, every thread)
-- of the app and of Asterisk, and the app's context switches
-- (/proc/PID/task/*/status), and counts the app's system calls with
-- `perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_epoll_wait -p PID`
-- (kernel tracepoint counters: no ptrace, so the app runs at full speed).
-- libuv enters epoll_wait once per loop iteration, so epoll_wait calls are
-- the loop's wake-ups.
--
-- Flows (bench/real_app.lua): "play" answer -> play 1 s -> hang up; "ivr"
-- answer -> play 1 s -> read digits (the far end sends 123# 2 s after the
-- answer) -> record 1 s -> hang up.
--
--   lua5.4 bench/real_asterisk.lua          (or: lua5.4 bench/run.lua real)
-- Environment: BENCH_QUICK=1 small sizes; BENCH_REAL_RUNS="play:50:1000,ivr:500:1500"
-- chooses the runs (flow:concurrency:calls).
local M = {}

local BIN = "./ari-lua"

local util = require "util"
local sh, trim, readfile, kv, loadavg, cpu_s = util.sh, util.trim, util.readfile, util.kv, util.loadavg, util.proc_cpu

local function ctx_switches(pid)
  local vol, invol = 0, 0
  for tid in sh("ls /proc/" .. pid .. "/task"):gmatch("%d+") do
    local s = readfile("/proc/" .. pid .. "/task/" .. tid .. "/status") or ""
    vol = vol + (tonumber(s:match("\nvoluntary_ctxt_switches:%s*(%d+)")) or 0)
    invol = invol + (tonumber(s:match("nonvoluntary_ctxt_switches:%s*(%d+)")) or 0)
  end
  return vol, invol
end

-- the system calls counted one by one (besides the total)
local KINDS = { "epoll_wait", "epoll_ctl", "recvfrom", "sendto", "poll", "read", "write", "writev", "recvmsg", "sendmsg" }
local EVENTS = "raw_syscalls:sys_enter"
for _, k in ipairs(KINDS) do EVENTS = EVENTS .. ",syscalls:sys_enter_" .. k end

local function perf_ok()
  if trim(sh("command -v perf")) == "" then return false end
  return sh("perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_epoll_wait true"):match("raw_syscalls") ~= nil
end

local function runs(quick)
  local spec = os.getenv("BENCH_REAL_RUNS")
  if not spec then
    spec = quick and "play:50:100,play:500:500,ivr:50:50,ivr:500:500"
      or "play:50:1000,play:500:2000,ivr:50:500,ivr:500:1500"
  end
  local t = {}
  for flow, conc, calls in spec:gmatch("(%a+):(%d+):(%d+)") do
    t[#t + 1] = { flow = flow, concurrency = tonumber(conc), calls = tonumber(calls) }
  end
  return t
end

local function one(ast, r, tmp, with_perf)
  local auth = string.format("--url %s --user asterisk --password asterisk --log-level warn", ast.url)
  local h = io.popen(string.format("sh -c 'echo $$; exec %s %s bench/real_app.lua %s %d 2>%s/app.err'",
    BIN, auth, r.flow, r.calls, tmp), "r")
  local pid = tonumber(h:read("l"))
  local ready = h:read("l")
  if ready ~= "ready" then
    h:close()
    error("bench app did not start: " .. tostring(ready) .. " " .. (readfile(tmp .. "/app.err") or ""))
  end
  local perf_pid
  if with_perf then
    local ph = io.popen(string.format("sh -c 'echo $$; exec perf stat -x, -o %s/perf.txt -e %s -p %d >/dev/null 2>&1' &",
      tmp, EVENTS, pid))
    perf_pid = tonumber(ph:read("l"))
    ph:close()
    sh("sleep 0.3") -- perf attaches
  end
  local a0, s0 = cpu_s(pid), cpu_s(ast.pid)
  local v0, i0 = ctx_switches(pid)
  local load0 = loadavg()
  local out = sh(string.format("%s %s bench/real_driver.lua bench %d %d %s", BIN, auth, r.calls, r.concurrency,
    r.flow == "ivr" and "dtmf" or "s"))
  local a1, s1 = cpu_s(pid), cpu_s(ast.pid)
  local v1, i1 = ctx_switches(pid)
  local res = kv(out:match("real_driver [^\n]+"))
  if perf_pid then
    os.execute("kill -INT " .. perf_pid .. " 2>/dev/null")
    for _ = 1, 50 do
      local p = readfile(tmp .. "/perf.txt") or ""
      if p:match("sys_enter_epoll_wait") then break end
      sh("sleep 0.1")
    end
    local p = readfile(tmp .. "/perf.txt") or ""
    res.syscalls = tonumber(p:match("(%d+),[^,]*,raw_syscalls:sys_enter"))
    res.epoll_waits = tonumber(p:match("(%d+),[^,]*,syscalls:sys_enter_epoll_wait,"))
    res.kinds = {}
    for _, k in ipairs(KINDS) do res.kinds[k] = tonumber(p:match("(%d+),[^,]*,syscalls:sys_enter_" .. k .. ",")) end
  end
  os.execute("kill " .. pid .. " 2>/dev/null")
  local rest = h:read("a")
  h:close()
  local app = kv(rest:match("real_app [^\n]+"))
  res.flow, res.concurrency = r.flow, r.concurrency
  res.app_failed, res.bad_digits, res.app_calls, res.events = app.failed, app.bad_digits, app.calls, app.events
  res.app_cpu, res.ast_cpu = a1 - a0, s1 - s0
  res.voluntary, res.involuntary = v1 - v0, i1 - i0
  res.load_start, res.load = load0, loadavg()
  res.first_error = (readfile(tmp .. "/app.err") or ""):match("call failed: ([^\n]+)") or out:match("originate failed: ([^\n]+)")
  if not res.calls then res.error = trim(out) end
  return res
end

--- Runs the real-Asterisk part.  Returns { skipped = reason } or
-- { version, rows = { ... }, syscall_tool }.
function M.run(opts)
  opts = opts or {}
  local say = opts.say or print
  if not os.execute("bash tools/asterisk.sh dir >/dev/null 2>&1") then
    return { skipped = "../shared/asterisk is absent: no real Asterisk here" }
  end
  local conf = trim(sh("pwd")) .. "/bench/asterisk"
  local started = trim(sh("bash tools/asterisk.sh start 22 " .. conf))
  local url, dir = started:match("^(http://%S+) (%S+)$")
  if not url then return { skipped = "Asterisk 22 did not start: " .. started } end
  local ast = { url = url, dir = dir, pid = tonumber(trim(readfile(dir .. "/var/run/asterisk/asterisk.pid"))) }
  local result = { rows = {} }
  local ok, err = pcall(function()
    local info = sh(string.format("curl -s -u asterisk:asterisk %s/ari/asterisk/info", url))
    result.version = info:match('"version":"([^"]+)"')
    local tmp = os.tmpname()
    os.remove(tmp)
    os.execute("mkdir -p " .. tmp)
    local with_perf = perf_ok()
    result.syscall_tool = with_perf and "perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_epoll_wait,... -p PID"
      or "none (perf tracepoints unavailable)"
    for _, r in ipairs(runs(opts.quick)) do
      local t = one(ast, r, tmp, with_perf)
      result.rows[#result.rows + 1] = t
      local n = t.calls or 0
      local function per(x) return x and n > 0 and x / n or nil end
      say(string.format("real flow=%s concurrency=%d calls=%s failed=%s mean_in_flight=%s wall_s=%s ari_lua_cpu_us_per_call=%.0f asterisk_cpu_us_per_call=%.0f ratio_pct=%.1f events_per_call=%s syscalls_per_call=%s epoll_waits_per_call=%s",
        t.flow, t.concurrency, tostring(t.calls), tostring((t.app_failed or 0) + (t.originate_failed or 0)),
        tostring(t.mean_in_flight), tostring(t.wall), (per(t.app_cpu) or 0) * 1e6, (per(t.ast_cpu) or 0) * 1e6,
        t.ast_cpu and t.ast_cpu > 0 and t.app_cpu / t.ast_cpu * 100 or 0,
        t.events and t.app_calls and t.app_calls > 0 and string.format("%.1f", t.events / t.app_calls) or "-",
        t.syscalls and string.format("%.1f", t.syscalls / n) or "-",
        t.epoll_waits and string.format("%.1f", t.epoll_waits / n) or "-"))
      if t.kinds and n > 0 then -- per call by kind, for comparisons between runs
        local parts = {}
        for _, k in ipairs(KINDS) do parts[#parts + 1] = string.format("%s=%.1f", k, (t.kinds[k] or 0) / n) end
        say("real syscalls_by_kind " .. table.concat(parts, " "))
      end
      if t.error then say("real run failed: " .. t.error) end
    end
    os.execute("rm -rf " .. tmp)
  end)
  os.execute("bash tools/asterisk.sh stop " .. dir .. " >/dev/null 2>&1")
  if not ok then result.error = tostring(err) end
  return result
end

--- Markdown lines for results.md.
function M.markdown(res, w, num)
  w("Asterisk %s (../shared/asterisk, started by tools/asterisk.sh with bench/asterisk/extensions.conf), the app",
    res.version or "22")
  w("under test (`./ari-lua bench/real_app.lua`, REST over the events WebSocket: the client's default on 22) and the load generator")
  w("(`./ari-lua bench/real_driver.lua`: originates `Local/bench@stasis-app`, context `caller`, REST only; it")
  w("polls a dialplan counter of ended calls every 50 ms to keep N calls in flight) are three processes,")
  w("not pinned (Asterisk is multi-threaded). Flows: **play** = answer -> play a 1 s sound -> hang up;")
  w("**ivr** = answer -> play 1 s -> read digits (the far end sends `123#` 2 s after the answer) -> record")
  w("1 s (wav) -> hang up. Over the driver's run (first originate to last call ended): CPU = utime+stime")
  w("from `/proc/PID/stat` (all threads) of the app and of Asterisk; Asterisk's figure includes the")
  w("driver's originates and polls, as a real PBX would spend on its incoming calls. Syscalls counted with")
  w("`%s` (kernel tracepoint counters, no ptrace) in the same run;", res.syscall_tool or "-")
  w("libuv calls `epoll_wait` once per loop iteration, so those are the loop's wake-ups. Voluntary context")
  w("switches (`/proc/PID/task/*/status`): the times the app went to sleep waiting for the network. Events:")
  w("counted by a client router in the app (every event that reached it, per call it handled).")
  w("")
  if res.skipped then w("**Skipped:** %s.", res.skipped); w(""); return end
  if res.error then w("**Error:** `%s`", res.error); w("") end
  w("| flow | concurrency | calls | failed | mean in flight | wall s | ari-lua CPU us/call | Asterisk CPU us/call | ari-lua / Asterisk | events/call | syscalls/call | loop wake-ups (epoll_wait)/call | voluntary ctx sw/call | load |")
  w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
  for _, t in ipairs(res.rows) do
    local n = t.calls or 0
    local function per(x, f, k) if not x or n == 0 then return "-" end return num(x / n * (k or 1), f) end
    w("| %s | %s | %s | %s | %s | %s | %s | %s | **%s %%** | %s | %s | %s | %s | %s |", t.flow, num(t.concurrency), num(t.calls),
      num((t.app_failed or 0) + (t.originate_failed or 0)), num(t.mean_in_flight, "%.0f"), num(t.wall, "%.1f"),
      per(t.app_cpu, "%.0f", 1e6), per(t.ast_cpu, "%.0f", 1e6),
      t.ast_cpu and t.ast_cpu > 0 and num(t.app_cpu / t.ast_cpu * 100, "%.1f") or "-",
      t.events and t.app_calls and t.app_calls > 0 and num(t.events / t.app_calls, "%.1f") or "-",
      per(t.syscalls, "%.1f"), per(t.epoll_waits, "%.1f"), per(t.voluntary, "%.1f"), t.load)
  end
  w("")
  w("System calls per call by kind (same counters):")
  w("")
  w("| flow | concurrency | %s | other |", table.concat(KINDS, " | "))
  w("|---|---:|%s---:|", string.rep("---:|", #KINDS))
  for _, t in ipairs(res.rows) do
    local n, cells, known = t.calls or 0, {}, 0
    for _, k in ipairs(KINDS) do
      local c = t.kinds and t.kinds[k]
      cells[#cells + 1] = c and n > 0 and num(c / n, "%.1f") or "-"
      known = known + (c or 0)
    end
    w("| %s | %s | %s | %s |", t.flow, num(t.concurrency), table.concat(cells, " | "),
      t.syscalls and n > 0 and num((t.syscalls - known) / n, "%.1f") or "-")
  end
  for _, t in ipairs(res.rows) do
    if t.first_error then w("First failure (%s, concurrency %s): `%s`", t.flow, num(t.concurrency), t.first_error) end
    if t.bad_digits and t.bad_digits > 0 then w("%s calls (%s, concurrency %s) read other digits than 123.", num(t.bad_digits), t.flow, num(t.concurrency)) end
    if t.error then w("Run failed (%s, concurrency %s): `%s`", t.flow, num(t.concurrency), t.error) end
  end
  w("")
  w("%s", "The machine was shared with other jobs during these runs (see the load column and the note at the top):")
  w("%s", "the figures are indicative, within 10-20 %; every figure is CPU time (user + system), not wall time.")
  w("")
  w("Goal (issue #16): ari-lua's CPU per call at most 5 % of Asterisk's for the same calls.")
  w("")
end

if arg and arg[0] and arg[0]:match("real_asterisk%.lua$") then
  local res = M.run { quick = os.getenv("BENCH_QUICK") == "1" }
  if res.skipped then print("real: skipped: " .. res.skipped) end
  if res.error then print("real: error: " .. res.error) end
end

return M
