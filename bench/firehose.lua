-- bench/firehose.lua: a stand-in for Asterisk's events socket that sends
-- pre-encoded ARI events (bench/corpus.lua) as fast as the socket takes
-- them.  Run with ari-lua:
--   ari-lua bench/firehose.lua PORT EVENTS
-- Every WebSocket that connects (any path) receives EVENTS messages, the
-- corpus repeated, keeping at most HIGH bytes queued in the server; then
-- the connection stays open.  Serves until SIGTERM/SIGINT.
-- GET /ari/api-docs/*.json serves the swagger documents (as the simulator
-- does), which the Node ari-client baseline (bench/node) reads on connect.
package.path = "bench/?.lua;" .. package.path
local core = require "ari.core"
local corpus = require("corpus").load(os.getenv("ARI_BENCH_CORPUS"))

local port, total = tonumber(arg[1]) or 0, tonumber(arg[2]) or 1000000
local lines, n = corpus.lines, #corpus.lines
local HIGH = 4 * 1024 * 1024
local transport, sjson = require "ari.sim.transport", require "ari.sim.json"
local base

-- an ari.server (its listener keeps the ari-lua host running; the host
-- exits by itself once nothing listens or waits)
local srv = assert(require("ari.server").listen {
  host = "127.0.0.1", port = port, max_message = 1 << 20,
  handler = function(req)
    local doc = (req.path or ""):match("^/ari/api%-docs/(.+)%.json$")
    local d = doc and (doc == "resources" and transport.resources_doc(base) or transport.resource_doc(doc, base))
    if d then return 200, { ["content-type"] = "application/json" }, sjson.encode(d) end
    return 404, {}, ""
  end,
  on_websocket = function(req)
    local ws = req:upgrade(nil, { on_message = function() end, on_close = function() end })
    if not ws then return end
    local sent, i = 0, 0
    local t
    local function pump()
      if not ws:is_open() then t:stop(); return end
      while sent < total and ws:buffered() < HIGH do
        i = i + 1
        if i > n then i = 1 end
        ws:send(lines[i])
        sent = sent + 1
      end
      if sent >= total then t:stop() end
    end
    t = core.timer(0, pump, 1)
  end,
})
base = "http://127.0.0.1:" .. srv:port() .. "/ari"
io.stdout:write("firehose listening on ", srv:port(), "\n")
io.stdout:flush()
local sigs = {}
local function stop()
  srv:close()
  for _, s in ipairs(sigs) do s:close() end
  core.stop()
end
sigs[1] = core.signal("SIGINT", stop)
sigs[2] = core.signal("SIGTERM", stop)
