-- The logger cannot be called (out of memory): the line goes to stderr
-- instead, nothing unwinds.
local ari = require "ari"
local core = require "ari.core"
local sched = require "ari.sched"
local server = require "ari.server"
local logged = {}
core.set_logger(function(level, msg) logged[#logged + 1] = level .. ": " .. msg end)
ari.run(function()
  local peer
  local s = assert(server.listen{ handler = function() return 404 end,
    on_websocket = function(req) peer = req:upgrade(nil, {}) end })
  local got = {}
  local conn = core.ws_connect({ url = ("ws://127.0.0.1:%d/ws"):format(s:port()), reconnect = false,
                                 max_message = 100 }, { on_message = function(m) got[#got + 1] = m end })
  while not peer or conn:state() ~= "open" do ari.sleep(5) end
  local long = string.rep("y", 200)
  -- the client drops the long message and logs that (a line longer than
  -- any interned string: pushing it allocates)
  sched.suspend(function(wake) memory_window(0, 2000, function() assert(peer:send(long)) end, wake) end)
  assert(peer:send("after"))
  while #got == 0 do ari.sleep(5) end
  print("got", got[1], "dropped", conn:stats().dropped)
  conn:close()
  s:close()
end)
print("logged", #logged)
