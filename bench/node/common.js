// Shared by the Node baselines: figures in the same key=value lines as the
// Lua benchmarks (bench/callflow_client.lua, bench/dispatch_client.lua).
// CPU: process.cpuUsage() (user + system of the whole process, every
// thread: libuv's pool included), from the first call/event to the last.
'use strict';

function cpuSeconds() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function now() { return Number(process.hrtime.bigint()); } // ns

function rssKb() { return Math.round(process.memoryUsage().rss / 1024); }

// calls=... line (as bench/callflow_client.lua)
function flowLine(done, failed, t0, cpu0, lat, rss0) {
  const wall = (now() - t0) / 1e9;
  const cpu = cpuSeconds() - cpu0;
  lat.sort((a, b) => a - b);
  const pct = (p) => lat.length ? lat[Math.max(0, Math.ceil(lat.length * p) - 1)] : 0;
  return `calls=${done} failed=${failed} wall=${wall.toFixed(3)} cpu=${cpu.toFixed(3)} ` +
    `cpu_per_call_us=${(cpu / Math.max(done, 1) * 1e6).toFixed(1)} calls_per_s=${(done / wall).toFixed(0)} ` +
    `p50_ms=${(pct(0.5) / 1e6).toFixed(2)} p99_ms=${(pct(0.99) / 1e6).toFixed(2)} rss0_kb=${rss0} rss_end_kb=${rssKb()}`;
}

// dispatch events=... line (as bench/dispatch_client.lua: counted from the first event)
function dispatchLine(count, t0, cpu0) {
  const wall = (now() - t0) / 1e9;
  const cpu = cpuSeconds() - cpu0;
  const n = count - 1;
  return `dispatch events=${n} wall=${wall.toFixed(3)} cpu=${cpu.toFixed(3)} events_per_s=${(n / wall).toFixed(0)} ` +
    `events_per_cpu_s=${(n / cpu).toFixed(0)} us_per_event=${(cpu / n * 1e6).toFixed(2)}`;
}

module.exports = { cpuSeconds, now, rssKb, flowLine, dispatchLine };
