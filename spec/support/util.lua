-- Small helpers shared by the spec files: reading files, polling on the
-- loop, and a simulated Asterisk for a test (over loopback, or in process
-- with an events session).  ari and ari.sim are loaded on first use only,
-- so specs that just read files do not load them.
local M = {}

--- Contents of a file, or nil when it cannot be opened.
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- Contents of a file; raises when it cannot be opened.
function M.read_all(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

--- Write text to a file (replacing it); raises when it cannot be opened.
function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- A wait_until(cond, ms, what) that polls cond every step ms (default 5)
-- on the loop and fails an assertion "timed out waiting for <what>" after
-- ms (default default_ms).  A failure guard, not a timing assertion.
function M.waiter(default_ms, step)
  local ari = require "ari"
  step = step or 5
  return function(cond, ms, what)
    local deadline = ari.now() + (ms or default_ms)
    while not cond() do
      assert(ari.now() < deadline, "timed out waiting for " .. (what or "condition"))
      ari.sleep(step)
    end
  end
end

--- Poll until cond() holds; raises "timed out waiting for <what>" (at the
-- caller's line) after limit_ms (default 30000).  A failure guard, not a
-- timing assertion.
function M.poll(cond, what, limit_ms)
  local ari = require "ari"
  local deadline = ari.now() + (limit_ms or 30000)
  while not cond() do
    if ari.now() > deadline then error("timed out waiting for " .. what, 2) end
    ari.sleep(5)
  end
end

--- Run fn(sim) on the loop with a simulator (speed 20) listening on an
-- ephemeral loopback port; the simulator is closed after fn, errors or not.
function M.with_sim(fn)
  local ari = require "ari"
  ari.run(function()
    local sim = require("ari.sim").new { speed = 20 }
    sim:listen { host = "127.0.0.1", port = 0 }
    local ok, err = pcall(fn, sim)
    sim:close()
    if not ok then error(err, 0) end
  end)
end

--- An in-process simulator (opts.speed default 50) with an events session
-- for opts.app (default "test-app"); returns sim and the list its decoded
-- events are appended to.
function M.new_sim(opts)
  local json = require "ari.sim.json"
  opts = opts or {}
  opts.speed = opts.speed or 50
  local sim = require("ari.sim").new(opts)
  local events = {}
  sim.session = sim:connect_events(opts.app or "test-app", opts.subscribe_all, function(text)
    events[#events + 1] = assert(json.decode(text))
  end)
  return sim, events
end

--- sim:request, the body decoded: status, value (nil without a body).
function M.req(sim, method, path, query, body)
  local status, text = sim:request(method, path, query, body)
  return status, text and require("ari.sim.json").decode(text)
end

--- The first event in events for which pred holds, waiting on the loop up
-- to ms (default 3000); raises "event did not arrive" at the caller's line.
function M.wait_for(events, pred, ms)
  local ari = require "ari"
  local deadline = ari.now() + (ms or 3000)
  while ari.now() < deadline do
    for _, e in ipairs(events) do if pred(e) then return e end end
    ari.sleep(2)
  end
  error("event did not arrive", 2)
end

--- A free loopback TCP port (listened on and closed again at once: the
-- caller binds it, or hands it to a process that does).
function M.free_port()
  local s = assert(require("ari.core").server_listen({ host = "127.0.0.1", port = 0 }, { on_request = function() end }))
  local p = s:port()
  s:close()
  return p
end

return M
