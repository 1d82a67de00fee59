-- Graceful shutdown: on SIGTERM the app stops taking calls, lets running
-- calls finish within --shutdown-grace, hangs up the rest and exits 0.
local bin = os.getenv("ARI_LUA_BIN") or "./ari-lua"

local APP = [[
local ari = require "ari"
local app = ari.app "shut"
app:on_call(function(call)
  call:answer()
  call.log:info("answered")  -- the spec's ready line
  if call.channel.caller.number == "7001" then
    call:sleep(800)         -- finishes within the grace period
    call:play("sound:beep")
    call.log:info("7001 finished")
  else
    call:sleep(60000)       -- still running when the grace period ends
  end
end)
]]

local SCENARIO = [[
return { app = "shut", calls = {
  { from = "7001", script = { { "wait_hangup", timeout = 30000 } } },
  { from = "7002", script = { { "wait_hangup", timeout = 30000 } } },
  { from = "7003", at = 1000, script = { { "wait_hangup", timeout = 30000 } } },
} }
]]

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

describe("graceful shutdown", function()
  it("SIGTERM: new calls refused, running calls finish within the grace, the rest hung up, exit 0", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    write(dir .. "/app.lua", APP)
    write(dir .. "/scn.lua", SCENARIO)
    -- SIGTERM once both first calls are answered (their ready lines are in
    -- the output); the third call comes later and finds the app shutting down
    local cmd = string.format("%s --sim=%s/scn.lua --shutdown-grace 1500 %s/app.lua > %s/out 2>&1 & pid=$!; "
      .. "n=0; until [ \"$(grep -c '] answered$' %s/out)\" -ge 2 ]; do "
      .. "n=$((n+1)); if [ $n -gt 3000 ]; then echo 'no ready lines'; break; fi; sleep 0.01; done; "
      .. "kill -TERM $pid; wait $pid; echo \"rc=$?\"", bin, dir, dir, dir, dir)
    local p = io.popen(cmd)
    local res = p:read("a")
    p:close()
    local f = assert(io.open(dir .. "/out"))
    local out = f:read("a")
    f:close()
    os.execute("rm -rf " .. dir)
    assert.not_matches("no ready lines", res, nil, true, out)
    assert.equals("0", res:match("rc=(%d+)"), out)
    assert.matches("shutting down %(SIGTERM%)", out)
    assert.matches("7001 finished", out)
    assert.matches("not taking call [^ ]+ %(shutting down%)", out)
    assert.matches("grace period over, hanging up 1 call", out)
    -- every call's channel was hung up by the app
    for _, from in ipairs { "7001", "7002", "7003" } do
      local section = out:match("== call%-%d+ %(call from " .. from .. " .-\n(.-)\n==") or out:match("== call%-%d+ %(call from " .. from .. " .-\n(.*)$")
      assert.is_truthy(section, from)
      assert.matches("DELETE /ari/channels/[^ ]+ %-> 204", section, nil, false, from)
    end
  end)
end)
