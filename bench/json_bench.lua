-- JSON decode/encode benchmark: ari.core (untyped and typed with the ARI
-- schema) against lua-cjson when installed.  Prints figures, asserts nothing.
--   lua5.4 bench/json_bench.lua [corpus.jsonl] [rounds]
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("ARI_CPATH") or "build/?.so") .. ";" .. package.cpath
local core = require "ari.core"
local clock = os.clock

local corpus = arg[1]
if corpus == nil then
  local shared = (os.getenv("ARI_SHARED") or "../shared") .. "/ari-samples/all-events.jsonl"
  local f = io.open(shared)
  if f then f:close(); corpus = shared else corpus = "bench/events.jsonl" end
end
local rounds = tonumber(arg[2]) or 30

local lines, bytes = {}, 0
for l in io.lines(corpus) do
  if l:match("%S") then lines[#lines + 1] = l; bytes = bytes + #l end
end

local function build_schema()
  local ok, schema = pcall(require, "ari.schema")
  if not ok then return nil end
  local reg = {}
  for name, m in pairs(schema.models) do
    local fields = {}
    for f, p in pairs(m.properties or {}) do fields[f] = p.type end
    reg[name] = { mt = { __name = name }, fields = fields }
  end
  return reg
end

local function run(label, decode)
  for i = 1, #lines do decode(lines[i]) end -- warm up
  collectgarbage("collect")
  local t0 = clock()
  for _ = 1, rounds do
    for i = 1, #lines do decode(lines[i]) end
  end
  local dt = clock() - t0
  local n = rounds * #lines
  print(string.format("%-28s %8.0f msgs/s %8.1f MB/s %7.2f us/msg",
    label, n / dt, rounds * bytes / dt / 1e6, dt / n * 1e6))
  return dt
end

print(string.format("corpus: %s (%d messages, %d bytes), %d rounds", corpus, #lines, bytes, rounds))
local has_cjson, cjson = pcall(require, "cjson")
local t_cjson
if has_cjson then t_cjson = run("cjson.decode", cjson.decode) end
core.json_schema(nil)
local t_plain = run("core.json_decode (untyped)", core.json_decode)
local reg = build_schema()
local t_typed
if reg then
  core.json_schema(reg)
  t_typed = run("core.json_decode (typed)", core.json_decode)
  core.json_schema(nil)
end
if t_cjson then
  print(string.format("untyped / cjson time ratio: %.2f", t_plain / t_cjson))
  if t_typed then print(string.format("typed / cjson time ratio:   %.2f", t_typed / t_cjson)) end
end

-- encoding
local values = {}
for i = 1, #lines do values[i] = core.json_decode(lines[i]) end
local function run_enc(label, encode)
  collectgarbage("collect")
  local t0 = clock()
  for _ = 1, rounds do
    for i = 1, #values do encode(values[i]) end
  end
  local dt = clock() - t0
  print(string.format("%-28s %8.0f msgs/s %7.2f us/msg", label, rounds * #values / dt, dt / (rounds * #values) * 1e6))
end
if has_cjson then
  local cv = {}
  for i = 1, #lines do cv[i] = cjson.decode(lines[i]) end
  local saved = values
  values = cv
  run_enc("cjson.encode", cjson.encode)
  values = saved
end
run_enc("core.json_encode", core.json_encode)
