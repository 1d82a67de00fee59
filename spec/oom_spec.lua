-- Out of memory inside libuv callbacks: spec/oom/oom_host.c runs a script in
-- a Lua state whose allocator fails on demand (memory_window); what C
-- builds for Lua there (a handler's arguments, a response, a log line) must
-- fail as a reported error, never unwind through uv_run.
local host = os.getenv("ARI_OOM_HOST") or "build/test/oom_host"

local function run(script)
  local p = assert(io.popen(host .. " spec/oom/" .. script .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

local function built()
  local f = io.open(host)
  if f then f:close() end
  return f ~= nil
end

describe("out of memory in a libuv callback", function()
  it("ws client: a message whose on_message argument cannot be built is reported and dropped", function()
    if not built() then return pending(host .. " is not built (make " .. host .. ")") end
    local ok, out = run("ws_message.lua")
    assert.is_true(ok, out)
    assert.matches("reported\t[1-9]%d*\t[^\n]*not enough memory", out)
    assert.matches("state\topen", out)
    assert.matches("got\t1\tafter", out) -- the big message dropped, the next one delivered
  end)

  it("http client: a response whose values cannot be built ends the request, reported", function()
    if not built() then return pending(host .. " is not built (make " .. host .. ")") end
    local ok, out = run("http_response.lua")
    assert.is_true(ok, out)
    assert.matches("reported\t[1-9]%d*\t[^\n]*not enough memory", out)
    assert.matches("first active\tfalse", out)
    assert.matches("calls\t0", out)
    assert.matches("second\t200 small", out)
  end)

  it("logger: a line the logger cannot be given goes to stderr", function()
    if not built() then return pending(host .. " is not built (make " .. host .. ")") end
    local ok, out = run("log.lua")
    assert.is_true(ok, out)
    assert.matches("%[error%] ws 127%.0%.0%.1: message larger than max_message %(100 bytes%) dropped", out)
    assert.matches("logged\t0", out)
    assert.matches("got\tafter\tdropped\t1", out)
  end)
end)
