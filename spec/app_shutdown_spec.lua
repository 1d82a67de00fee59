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

-- Whatever the script left open (spec/fixtures/shutdown/leftovers.lua: raw
-- core.ws_connect connections, open or reconnecting, listeners, a
-- core.timer, requests in flight), the host exits once its shutdown is
-- done, and at the latest when the grace period is over (lua/ari/cli.lua
-- "[shutdown]"), with its documented status: 1 after a script error, 0
-- on SIGTERM or when a one-shot script has returned.  A host that does not
-- exit by itself is killed after LIMIT s (and the test fails).
describe("the host exits whatever the script left open", function()
  local FIXTURE = "spec/fixtures/shutdown/leftovers.lua"
  local LIMIT = 30
  local GRACE = 1000 -- the loop is stopped 2 s after it at the latest

  -- Run the fixture (what, how); with `signal`, send it SIGTERM once it is
  -- ready.  Returns the exit status ("killed" when the limit was reached),
  -- the output, and the ms from the end of the script (or the signal) to
  -- the exit.
  local function run(mode, what, how, signal)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local cmd = string.format(
      "%s %s --shutdown-grace %d %s %s %s > %s/out 2>&1 & pid=$!; "
      .. "(n=0; while kill -0 $pid 2>/dev/null; do n=$((n+1)); if [ $n -gt %d ]; then kill -KILL $pid; "
      .. "echo killed > %s/killed; break; fi; sleep 0.1; done) </dev/null >/dev/null 2>&1 & "
      .. "n=0; until grep -q '^ready$' %s/out; do n=$((n+1)); if [ $n -gt 2000 ]; then break; fi; sleep 0.01; done; "
      .. "t0=$(date +%%s%%N); %s wait $pid; rc=$?; t1=$(date +%%s%%N); "
      .. "echo \"rc=$rc ms=$(( (t1 - t0) / 1000000 ))\"",
      bin, mode, GRACE, FIXTURE, what, how, dir, LIMIT * 10, dir, dir, signal and "kill -TERM $pid;" or "")
    local p = io.popen(cmd)
    local res = p:read("a")
    p:close()
    local f = assert(io.open(dir .. "/out"))
    local out = f:read("a")
    f:close()
    local killed = io.open(dir .. "/killed")
    if killed then killed:close() end
    os.execute("rm -rf " .. dir)
    assert.matches("\nready\n", "\n" .. out, nil, true, out)
    local rc = killed and "killed" or res:match("rc=(%d+)")
    return rc, out, tonumber(res:match("ms=(%d+)"))
  end

  -- The shutdown ended by itself: the grace period did not have to end it.
  local function by_itself(out)
    assert.not_matches("shutdown grace period over", out, nil, true, out)
    assert.not_matches("still referenced at shutdown", out, nil, true, out)
  end

  for _, mode in ipairs { "", "--sim" } do
    local label = mode == "" and "" or " (--sim)"
    for _, what in ipairs { "ws", "reconnect", "all" } do
      it("a script error with " .. what .. " left open: exit 1" .. label, function()
        local rc, out, ms = run(mode, what, "error")
        assert.equals("1", rc, out)
        assert.matches("leftovers: raised on purpose", out, nil, true)
        assert.matches("shutting down (script error)", out, nil, true)
        by_itself(out)
        assert.is_true(ms < LIMIT * 1000, out)
      end)

      it("SIGTERM with " .. what .. " left open: exit 0" .. label, function()
        local rc, out = run(mode, what, "wait", true)
        assert.equals("0", rc, out)
        assert.matches("shutting down (SIGTERM)", out, nil, true)
        by_itself(out)
      end)
    end

    it("a script error while a coroutine waits for a request: exit 1 when the grace is over" .. label, function()
      local rc, out, ms = run(mode, "inflight", "error")
      assert.equals("1", rc, out)
      assert.matches("shutdown grace period over; stopping", out, nil, true)
      assert.is_true(ms >= GRACE, out) -- the grace period was given
    end)

    it("SIGTERM while a coroutine waits for a request: exit 0 when the grace is over" .. label, function()
      local rc, out = run(mode, "inflight", "wait", true)
      assert.equals("0", rc, out)
      assert.matches("shutdown grace period over; stopping", out, nil, true)
    end)
  end

  -- a call reading its media stream (src/media.c) when the script fails or
  -- the signal comes: the app hangs it up when the grace is over
  for _, transport in ipairs { "rtp", "audiosocket", "websocket" } do
    local mode = "--sim=spec/fixtures/shutdown/media-scenario.lua"
    it("a script error while a call reads its " .. transport .. " media stream: exit 1", function()
      local rc, out = run(mode, "media-" .. transport, "error")
      assert.equals("1", rc, out)
      assert.matches("shutting down (script error)", out, nil, true)
      assert.matches("grace period over, hanging up", out, nil, true)
      by_itself(out)
    end)

    it("SIGTERM while a call reads its " .. transport .. " media stream: exit 0", function()
      local rc, out = run(mode, "media-" .. transport, "wait", true)
      assert.equals("0", rc, out)
      assert.matches("grace period over, hanging up", out, nil, true)
      by_itself(out)
    end)
  end

  -- [one-shot] only without --sim (it ends with its scenario)
  for _, what in ipairs { "ws", "reconnect", "all" } do
    it("a one-shot script that returns with " .. what .. " left open: exit 0", function()
      local rc, out = run("", what, "return")
      assert.equals("0", rc, out)
      assert.matches("shutting down (the script has finished", out, nil, true)
      by_itself(out)
    end)
  end
end)
