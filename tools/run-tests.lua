-- Runs every spec file in its own busted process (so a crash or a stuck
-- loop in one file cannot take the others with it), prints their output,
-- and ends with the line "N passed, N failed, N skipped".
--   lua5.4 tools/run-tests.lua [-j N] [--asterisk V [--only-asterisk] [--tags T]] [spec files...]
-- --asterisk V: also run the real-server specs (spec/asterisk/) against a
-- real Asterisk V started for them (tools/asterisk.sh, from ../shared/asterisk)
-- and stopped after; where the bundle is absent they report themselves
-- skipped.  --only-asterisk: only those.  --tags T: busted tags for them
-- (e.g. "core", the subset run against every version).
-- Environment: BUSTED (default "lua5.4 /usr/bin/busted"), SPEC_TIMEOUT (s).
local jobs, files = 2, {}
local asterisk, only_asterisk, tags
local i = 1
while i <= #arg do
  if arg[i] == "-j" then jobs = tonumber(arg[i + 1]); i = i + 2
  elseif arg[i] == "--asterisk" then asterisk = arg[i + 1]; i = i + 2
  elseif arg[i] == "--only-asterisk" then only_asterisk = true; i = i + 1
  elseif arg[i] == "--tags" then tags = arg[i + 1]; i = i + 2
  else files[#files + 1] = arg[i]; i = i + 1 end
end
local function list(cmd)
  local out = {}
  local p = io.popen(cmd)
  for f in p:lines() do out[#out + 1] = f end
  p:close()
  return out
end
local real = {} -- index in files -> true for the real-server specs
if #files == 0 then
  if not only_asterisk then
    files = list("find spec examples/spec -name '*_spec.lua' -not -path 'spec/asterisk/*' 2>/dev/null | sort")
  end
  if asterisk then
    for _, f in ipairs(list("find spec/asterisk -name '*_spec.lua' 2>/dev/null | sort")) do
      files[#files + 1] = f
      real[#files] = true
    end
  end
else
  for j, f in ipairs(files) do if f:find("^spec/asterisk/") then real[j] = true end end
end

local busted = os.getenv("BUSTED") or "lua5.4 /usr/bin/busted"
local timeout = os.getenv("SPEC_TIMEOUT") or "600"
local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)

-- the real Asterisk for spec/asterisk/ (its environment goes to those files only)
local real_env = ""
local ast_dir
local any_real = next(real) ~= nil
if any_real then
  local v = asterisk or os.getenv("ARI_TEST_ASTERISK_VERSION") or "22"
  local p = io.popen("bash tools/asterisk.sh start " .. v .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  if ok then
    local url, dir = out:match("(http://%S+)%s+(%S+)%s*$")
    ast_dir = dir
    real_env = string.format("ARI_TEST_URL=%s ARI_TEST_ASTERISK_VERSION=%s ARI_TEST_ASTERISK_DIR=%s ", url, v, dir)
    io.write("real Asterisk ", v, " at ", url, " (", dir, ")\n")
  elseif code == 3 then
    io.write("real-server specs: ../shared/asterisk is absent here; they report themselves skipped\n")
  else
    io.write("real-server specs: could not start Asterisk ", v, ":\n", out, "\n")
    real_env = "ARI_TEST_URL=unavailable ARI_TEST_ASTERISK_VERSION=" .. v .. " "
  end
end
local tag_opt = tags and (" --tags=" .. tags) or ""

-- run in batches of `jobs` files at once, each writing to its own log
local passed, failed, skipped = 0, 0, 0
local broken = {}
local failed_names = {} -- "file: test name", listed again before the summary
local idx = 1
while idx <= #files do
  local batch = {}
  for j = idx, math.min(idx + jobs - 1, #files) do batch[#batch + 1] = j end
  local cmd = {}
  for _, j in ipairs(batch) do
    cmd[#cmd + 1] = string.format(
      "(%stimeout -k 10 %s %s -o spec/support/counts.lua%s %s > %s/%d.log 2>&1; echo $? > %s/%d.rc) &",
      real[j] and real_env or "", timeout, busted, real[j] and tag_opt or "", files[j], tmp, j, tmp, j)
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
    for name in out:gmatch("ARI%-FAILED ([^\n]*)\n") do
      failed_names[#failed_names + 1] = files[j] .. ": " .. name
    end
    io.write("== ", files[j], "\n", (out:gsub("ARI%-COUNTS[^\n]*\n", ""):gsub("ARI%-FAILED[^\n]*\n", "")), "\n")
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
if ast_dir then os.execute("bash tools/asterisk.sh stop " .. ast_dir) end
for _, n in ipairs(failed_names) do io.write("failed: ", n, "\n") end
for _, b in ipairs(broken) do io.write("broken spec file: ", b, "\n") end
io.write(string.format("%d passed, %d failed, %d skipped\n", passed, failed, skipped))
os.exit(failed == 0 and 0 or 1)
