-- bench/media_bench.lua: the "media" section of bench/run.lua (call audio,
-- issue #17).  Concurrent 20 ms-frame streams in both directions: every
-- call gets a call:media stream (RTP, ulaw) and echoes it
-- (bench/media_client.lua), so each stream carries 50 frames a second each
-- way.
--
-- - Simulator: bench/simd.lua (ari.sim, separate process, its own core when
--   there are two) places STREAMS calls whose callers send a tone; the
--   client (one process, one core) echoes for SECONDS once all are up.
-- - Real Asterisk 22 (tools/asterisk.sh, from ../shared/asterisk; skipped
--   with a note where that is absent): the client originates STREAMS
--   Local/moh@caller calls into itself (music on hold is the caller's
--   audio) and echoes them; Asterisk's own CPU is read from /proc.
--
-- Figures: client CPU over the steady stretch per stream-second, its share
-- of one core, output ticks that ran more than a frame late (late_ticks,
-- summed over the streams), frames in and out.  Nothing asserts a speed.
local M = {}

local util = require "util"
local sh, trim, kv, readfile, proc_cpu = util.sh, util.trim, util.kv, util.readfile, util.proc_cpu

--- opts: { quick, say, pin = fn(cpu, cmd), client_cpu, feeder_cpu, bin, tmp, loadavg }
function M.run(opts)
  local say, pin, BIN, TMP = opts.say, opts.pin, opts.bin, opts.tmp
  local seconds = opts.quick and 3 or 10
  local res = { seconds = seconds, sim = {}, real = {} }

  -- 1. against the simulator
  local levels = opts.quick and { 50, 200 } or { 100, 250, 500, 750, 1000 }
  for _, n in ipairs(levels) do
    local scn = string.format("%s/media-%d.lua", TMP, n)
    local f = assert(io.open(scn, "w"))
    f:write(string.format([[return { app = "bench", load = { { calls = %d, concurrency = %d, audio = { tone = 440 },
      script = { { "wait_answer" }, { "wait_hangup", timeout = 600000 } } } } }]], n, n))
    f:close()
    local h = io.popen("sh -c 'echo $$; exec " .. pin(opts.feeder_cpu, BIN .. " bench/simd.lua 0 1 " .. scn) .. " 2>" .. TMP .. "/msim.err'", "r")
    local pid = tonumber(h:read("l"))
    local line = h:read("l") or ""
    local port = tonumber(line:match(":(%d+)%s*$"))
    local t
    if port then
      local sim_cpu0 = proc_cpu(pid)
      local out = sh(pin(opts.client_cpu, string.format("timeout %d %s --url http://127.0.0.1:%d --user asterisk --password asterisk --log-level warn bench/media_client.lua %d %d rtp ulaw",
        seconds + 120, BIN, port, n, seconds)))
      local sim_cpu1 = proc_cpu(pid)
      t = kv(out:match("media [^\n]+"))
      t.first_error = out:match("first failure: ([^\n]+)")
      if not t.streams then t.error = trim(out):sub(1, 300) end
      -- the simulator's CPU over the client's whole run (ramp included)
      if sim_cpu0 and sim_cpu1 then t.sim_cpu_s = sim_cpu1 - sim_cpu0 end
    else
      t = { error = "simd did not start: " .. line }
    end
    os.execute("kill " .. tostring(pid) .. " 2>/dev/null")
    h:close()
    local serr = readfile(TMP .. "/msim.err") or ""
    local sm = kv(serr:match("simd media [^\n]+"))
    t.sim_late_ticks, t.sim_frames_out = sm.late_ticks, sm.frames_out
    t.target = n
    t.load = opts.loadavg()
    res.sim[#res.sim + 1] = t
    say("media sim streams=%s/%d seconds=%s cpu_share=%s cpu_per_stream_s_us=%s late_ticks=%s frames_in=%s frames_out=%s sim_cpu_s=%s sim_late_ticks=%s%s",
      tostring(t.streams), n, tostring(t.seconds), tostring(t.cpu_share), tostring(t.cpu_per_stream_s_us),
      tostring(t.late_ticks), tostring(t.frames_in), tostring(t.frames_out), tostring(t.sim_cpu_s), tostring(t.sim_late_ticks),
      t.error and (" error=" .. t.error) or "")
  end

  -- 2. against a real Asterisk 22
  if not os.execute("bash tools/asterisk.sh dir >/dev/null 2>&1") then
    res.real.skipped = "../shared/asterisk is absent: no real Asterisk here"
    say("media real: skipped: %s", res.real.skipped)
    return res
  end
  local started = trim(sh("bash tools/asterisk.sh start 22"))
  local url, dir = started:match("^(http://%S+) (%S+)$")
  if not url then
    res.real.skipped = "Asterisk 22 did not start: " .. started
    return res
  end
  local apid = tonumber(trim(readfile(dir .. "/var/run/asterisk/asterisk.pid") or ""))
  res.real.version = sh(string.format("curl -s -u asterisk:asterisk %s/ari/asterisk/info", url)):match('"version":"([^"]+)"')
  local rlevels = opts.quick and { 10 } or { 25, 50, 100, 200 }
  for _, n in ipairs(rlevels) do
    local a0 = apid and proc_cpu(apid)
    local out = sh(pin(opts.client_cpu, string.format("timeout %d %s --url %s --user asterisk --password asterisk --log-level warn bench/media_client.lua %d %d rtp ulaw Local/moh@caller",
      seconds + 120, BIN, url, n, seconds)))
    local a1 = apid and proc_cpu(apid)
    local t = kv(out:match("media [^\n]+"))
    t.first_error = out:match("first failure: ([^\n]+)")
    if not t.streams then t.error = trim(out):sub(1, 300) end
    if a0 and a1 then t.ast_cpu_s = a1 - a0 end
    t.target = n
    t.load = opts.loadavg()
    res.real.rows = res.real.rows or {}
    res.real.rows[#res.real.rows + 1] = t
    say("media real streams=%s/%d seconds=%s cpu_share=%s cpu_per_stream_s_us=%s late_ticks=%s frames_in=%s frames_out=%s asterisk_cpu_s=%s%s",
      tostring(t.streams), n, tostring(t.seconds), tostring(t.cpu_share), tostring(t.cpu_per_stream_s_us),
      tostring(t.late_ticks), tostring(t.frames_in), tostring(t.frames_out), tostring(t.ast_cpu_s),
      t.error and (" error=" .. t.error) or "")
    -- let Asterisk tear the calls down before the next level
    os.execute("sleep 2")
  end
  os.execute("bash tools/asterisk.sh stop " .. dir .. " >/dev/null 2>&1")
  return res
end

--- The results.md part.
function M.write(w, res, num)
  w("## Call audio (media streams)")
  w("")
  w("Concurrent `call:media` streams (RTP over UDP, ulaw, 20 ms frames) that echo: each stream carries 50 frames a")
  w("second each way (`bench/media_client.lua`, one process; `bench/media_bench.lua`). Once every stream is up, they")
  w("run %d s; client CPU is its user+system time over that stretch (os.clock), per stream-second and as a share of", res.seconds)
  w("one core; late ticks: output ticks of the core's shared 20 ms tick that ran more than one frame late, summed over")
  w("the streams (a stream has 50 ticks a second).")
  w("")
  w("**Simulator** (`bench/simd.lua`, a separate process on the other core; its callers send a tone; its CPU is over")
  w("the client's whole run, ramp included; sim late ticks: its own output ticks more than a frame late, over")
  w("each stream's whole life):")
  w("")
  w("| streams | up | client CPU share | client CPU us per stream-second | late ticks | late % | frames in | frames out | sim CPU s | sim late ticks | load |")
  w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
  for _, t in ipairs(res.sim) do
    local ticks = (t.streams or 0) * (t.seconds or 0) * 50
    w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", num(t.target), num(t.streams), num(t.cpu_share, "%.2f"),
      num(t.cpu_per_stream_s_us, "%.0f"), num(t.late_ticks), ticks > 0 and num((t.late_ticks or 0) / ticks * 100, "%.2f") or "-",
      num(t.frames_in), num(t.frames_out), num(t.sim_cpu_s, "%.2f"), num(t.sim_late_ticks), t.load or "")
  end
  for _, t in ipairs(res.sim) do
    if t.error then w("Run of %s streams failed: `%s`", num(t.target), t.error) end
    if t.first_error then w("First failure at %s streams: `%s`", num(t.target), t.first_error) end
  end
  w("")
  w("**Real Asterisk** (Local/moh@caller calls originated by the client into itself: music on hold is the caller):")
  w("")
  if res.real.skipped then
    w("**Skipped:** %s.", res.real.skipped)
  else
    w("Asterisk %s. Asterisk CPU is its user+system time over the client's whole run.", tostring(res.real.version))
    w("")
    w("| streams | up | client CPU share | client CPU us per stream-second | late ticks | frames in | frames out | Asterisk CPU s | load |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for _, t in ipairs(res.real.rows or {}) do
      w("| %s | %s | %s | %s | %s | %s | %s | %s | %s |", num(t.target), num(t.streams), num(t.cpu_share, "%.2f"),
        num(t.cpu_per_stream_s_us, "%.0f"), num(t.late_ticks), num(t.frames_in), num(t.frames_out), num(t.ast_cpu_s, "%.2f"), t.load or "")
    end
    for _, t in ipairs(res.real.rows or {}) do
      if t.error then w("Run of %s streams failed: `%s`", num(t.target), t.error) end
      if t.first_error then w("First failure at %s streams: `%s`", num(t.target), t.first_error) end
    end
  end
  w("")
end

return M
