-- bench/util.lua: the small helpers bench/run.lua, bench/real_asterisk.lua
-- and bench/media_bench.lua share (shell, /proc, key=value lines).
local M = {}

--- Run a shell command; its stdout and stderr as one string.
function M.sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  p:close()
  return out
end

function M.trim(s) return ((s or ""):gsub("^%s+", ""):gsub("%s+$", "")) end

--- A whole file, or nil.
function M.readfile(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- "a=1 b=x" -> { a = 1, b = "x" }
function M.kv(line)
  local t = {}
  for k, v in (line or ""):gmatch("([%w_]+)=(%S+)") do t[k] = tonumber(v) or v end
  return t
end

--- The 1, 5 and 15 minute load averages, as one string.
function M.loadavg()
  local s = M.readfile("/proc/loadavg") or "?"
  return s:match("^(%S+ %S+ %S+)") or "?"
end

local clk_tck
--- CPU seconds (user + system) of a whole process, from /proc/PID/stat.
function M.proc_cpu(pid)
  local s = M.readfile("/proc/" .. pid .. "/stat")
  if not s then return nil end
  local rest = s:match("%) (.*)$")
  local f = {}
  for x in rest:gmatch("%S+") do f[#f + 1] = x end
  clk_tck = clk_tck or tonumber(M.trim(M.sh("getconf CLK_TCK"))) or 100
  -- after "pid (comm) ": state is field 3, utime 14, stime 15
  return (tonumber(f[12]) + tonumber(f[13])) / clk_tck
end

return M
