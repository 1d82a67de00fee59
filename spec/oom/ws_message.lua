-- A message whose on_message argument cannot be built (out of memory) is
-- reported and dropped; the connection and the loop go on.
local ari = require "ari"
local core = require "ari.core"
local sched = require "ari.sched"
local server = require "ari.server"
local got, reported = {}, {}
core.set_error_handler(function(m) reported[#reported + 1] = m; memory_window_close() end)
ari.run(function()
  local peer
  local s = assert(server.listen{ handler = function() return 404 end,
    on_websocket = function(req) peer = req:upgrade(nil, {}) end })
  local conn = core.ws_connect({ url = ("ws://127.0.0.1:%d/ws"):format(s:port()), reconnect = false }, {
    on_message = function(msg) got[#got + 1] = msg end,
    on_error = function(e) print("on_error", e) end,
  })
  while not peer or conn:state() ~= "open" do ari.sleep(5) end
  local big = string.rep("x", 1024 * 1024)
  sched.suspend(function(wake) memory_window(64 * 1024, 10000, function() assert(peer:send(big)) end, wake) end)
  assert(peer:send("after"))
  while #got == 0 do ari.sleep(5) end
  print("state", conn:state())
  conn:close()
  s:close()
end)
print("got", #got, got[1])
print("reported", #reported, reported[1])
