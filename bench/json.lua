-- bench/json.lua: JSON decode throughput on the ARI event corpus
-- (bench/corpus.lua): ari-lua's typed C decoder against cjson.decode
-- (untyped) and cjson.decode followed by the Lua typing pass
-- (ari.models.cast(v, "Message")).  Prints one `key=value` line per decoder.
--   lua5.4 bench/json.lua [seconds_per_decoder]
package.path = "bench/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("ARI_CPATH") or "build/?.so") .. ";" .. package.cpath
local core = require "ari.core"
local models = require "ari.models" -- registers the schema with the C decoder
local corpus = require("corpus").load(os.getenv("ARI_BENCH_CORPUS"))
local clock = os.clock
local budget = tonumber(arg[1]) or 2

local lines, bytes = corpus.lines, corpus.bytes
local n = #lines

local function run(label, decode)
  for i = 1, n do assert(decode(lines[i]), label) end -- warm up, and check it decodes
  collectgarbage("collect")
  local rounds, t0 = 0, clock()
  local dt
  repeat
    for i = 1, n do decode(lines[i]) end
    rounds = rounds + 1
    dt = clock() - t0
  until dt >= budget
  print(string.format("json decoder=%s msgs=%d mb_per_s=%.1f events_per_s=%.0f us_per_event=%.2f",
    label, rounds * n, rounds * bytes / dt / 1e6, rounds * n / dt, dt / (rounds * n) * 1e6))
end

print(string.format("json corpus=%s messages=%d bytes=%d types=%d synthesized=%s", corpus.path, n, bytes,
  corpus.ntypes, #corpus.synthesized > 0 and table.concat(corpus.synthesized, ",") or "none"))

-- sanity: the typed decoder gives events their model
local probe = core.json_decode(lines[1])
assert(models.model_of(probe), "the C decoder did not type the first event")

run("ari_typed", core.json_decode)
local has_cjson, cjson = pcall(require, "cjson")
if has_cjson then
  run("cjson", cjson.decode)
  local cast = models.cast
  run("cjson_lua_typing", function(s) return cast(cjson.decode(s), "Message") end)
  assert(models.model_of(cast(cjson.decode(lines[1]), "Message")), "the Lua typing pass did not type")
else
  print("json decoder=cjson missing=1")
end
