-- A response whose Lua values cannot be built (out of memory) is reported
-- and the request ends without its callback; later requests go on.
local ari = require "ari"
local core = require "ari.core"
local sched = require "ari.sched"
local server = require "ari.server"
local calls, reported = {}, {}
core.set_error_handler(function(m) reported[#reported + 1] = m; memory_window_close() end)
ari.run(function()
  local big = string.rep("x", 1024 * 1024)
  local s = assert(server.listen{ handler = function(req)
    if req.path == "/big" then return 200, { ["Content-Type"] = "text/plain" }, big end
    return 200, { ["Content-Type"] = "text/plain" }, "small"
  end })
  local base = ("http://127.0.0.1:%d"):format(s:port())
  local first
  -- the server's response is built before the window: only the client's
  -- results are built in it; the error handler ends the window
  sched.suspend(function(wake)
    memory_window(64 * 1024, 10000, function()
      first = core.http_request({ url = base .. "/big" }, function(st, body) calls[#calls + 1] = { st, #body } end)
    end, wake)
  end)
  print("first active", first:active())
  local done = sched.suspend(function(wake)
    core.http_request({ url = base .. "/small" }, function(st, body) wake(st .. " " .. body) end)
  end)
  print("second", done)
  s:close()
end)
print("calls", #calls)
print("reported", #reported, reported[1])
