-- bench/dispatch_micro.lua: in-process cost of the client's event path
-- without a socket: C decode (typed) + client:dispatch, per event, for a
-- client with one `client:on("*")` handler and for an ari.app (router, no
-- handlers).  Prints key=value lines.  lua5.4 bench/dispatch_micro.lua [seconds]
package.path = "bench/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("ARI_CPATH") or "build/?.so") .. ";" .. package.cpath
local ari = require "ari"
local core = ari.core
local corpus = require("corpus").load(os.getenv("ARI_BENCH_CORPUS"))
local budget = tonumber(arg[1]) or 1
local lines, n = corpus.lines, #corpus.lines
local clock = os.clock

local function measure(label, per_event)
  collectgarbage("collect")
  local count, t0, dt = 0, clock(), 0
  repeat
    for i = 1, n do per_event(lines[i]) end
    count = count + n
    dt = clock() - t0
  until dt >= budget
  print(string.format("micro case=%s events=%d us_per_event=%.2f events_per_s=%.0f", label, count, dt / count * 1e6, count / dt))
end

local decode = core.json_decode
measure("decode_only", function(s) return decode(s) end)

ari.log.set_level("error")
ari.run(function()
  local c = ari.connect { url = "http://127.0.0.1:1", user = "u", password = "p", app = "x", events = false,
    transport = function() return 204, "", {} end }
  local seen = 0
  c:on("*", function() seen = seen + 1 end)
  measure("client_on_star", function(s) c:dispatch(decode(s)) end)
  assert(seen > 0)
  local c2 = ari.connect { url = "http://127.0.0.1:1", user = "u", password = "p", app = "y", events = false,
    transport = function() return 204, "", {} end }
  local _ = ari.app { app = "y", client = c2 }
  measure("app_router", function(s) c2:dispatch(decode(s)) end)
end)
