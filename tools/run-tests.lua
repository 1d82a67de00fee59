-- Runs every spec file in its own busted process (so a crash or a stuck
-- loop in one file cannot take the others with it), prints their output,
-- and ends with the line "N passed, N failed, N skipped".
--   lua5.4 tools/run-tests.lua [-j N] [spec files...]
-- Environment: BUSTED (default "lua5.4 /usr/bin/busted"), SPEC_TIMEOUT (s).
local jobs, files = 2, {}
local i = 1
while i <= #arg do
  if arg[i] == "-j" then jobs = tonumber(arg[i + 1]); i = i + 2
  else files[#files + 1] = arg[i]; i = i + 1 end
end
if #files == 0 then
  local p = io.popen("find spec examples/spec -name '*_spec.lua' 2>/dev/null | sort")
  for f in p:lines() do files[#files + 1] = f end
  p:close()
end

local busted = os.getenv("BUSTED") or "lua5.4 /usr/bin/busted"
local timeout = os.getenv("SPEC_TIMEOUT") or "600"
local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)

-- run in batches of `jobs` files at once, each writing to its own log
local passed, failed, skipped = 0, 0, 0
local broken = {}
local idx = 1
while idx <= #files do
  local batch = {}
  for j = idx, math.min(idx + jobs - 1, #files) do batch[#batch + 1] = j end
  local cmd = {}
  for _, j in ipairs(batch) do
    cmd[#cmd + 1] = string.format(
      "(timeout -k 10 %s %s -o spec/support/counts.lua %s > %s/%d.log 2>&1; echo $? > %s/%d.rc) &",
      timeout, busted, files[j], tmp, j, tmp, j)
  end
  cmd[#cmd + 1] = "wait"
  os.execute(table.concat(cmd, " "))
  for _, j in ipairs(batch) do
    local f = io.open(tmp .. "/" .. j .. ".log")
    local out = f and f:read("a") or ""
    if f then f:close() end
    local rcf = io.open(tmp .. "/" .. j .. ".rc")
    local rc = rcf and tonumber(rcf:read("l")) or -1
    if rcf then rcf:close() end
    io.write("== ", files[j], "\n", (out:gsub("ARI%-COUNTS[^\n]*\n", "")), "\n")
    local s, fl, e, p = out:match("ARI%-COUNTS (%d+) (%d+) (%d+) (%d+)")
    if s then
      passed = passed + tonumber(s)
      failed = failed + tonumber(fl) + tonumber(e)
      skipped = skipped + tonumber(p)
      if rc ~= 0 and tonumber(fl) + tonumber(e) == 0 then
        failed = failed + 1
        broken[#broken + 1] = files[j] .. " (exit " .. rc .. ")"
      end
    else
      failed = failed + 1
      broken[#broken + 1] = files[j] .. " (no summary; exit " .. rc .. ")"
    end
  end
  idx = idx + jobs
end
os.execute("rm -rf " .. tmp)
for _, b in ipairs(broken) do io.write("broken spec file: ", b, "\n") end
io.write(string.format("%d passed, %d failed, %d skipped\n", passed, failed, skipped))
os.exit(failed == 0 and 0 or 1)
