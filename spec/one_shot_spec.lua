-- When the ari-lua host exits by itself (lua/ari/cli.lua, "[one-shot]";
-- docs/getting-started.md): once the script's main chunk has returned and
-- nothing waits for Asterisk any more (no app with on_call, no call, no
-- client:on / obj:on handler, no live coroutine, no pending ari.timer),
-- even though the events socket is still open.  The scripts run against
-- the simulated Asterisk served by a separate `ari-lua sim --listen`
-- process, as against a real one (no --sim: it has its own end rule).
local BIN = os.getenv("ARI_LUA_BIN") or "./ari-lua"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local util = require "spec.support.util"
local write = util.write
local function read(path) return util.read(path) or "" end

-- A simulated Asterisk in its own process, serving `scenario`; fn(url).
local function with_sim(scenario, fn)
  local scen = os.tmpname()
  write(scen, scenario)
  local out = os.tmpname()
  local pidf = os.tmpname()
  os.execute(string.format("(%s sim --listen 127.0.0.1:0 %s >%s 2>&1 & echo $! >%s) ", BIN, q(scen), q(out), q(pidf)))
  local url
  for _ = 1, 500 do -- until it has printed its URL (at most ~10 s)
    url = read(out):match("listening on (http://%S+)")
    if url then break end
    os.execute("sleep 0.02")
  end
  local pid = read(pidf):match("%d+")
  local ok, err = pcall(function()
    assert(url, "the simulator did not start: " .. read(out))
    fn(url)
  end)
  if pid then os.execute("kill -TERM " .. pid .. " 2>/dev/null") end
  os.remove(scen); os.remove(out); os.remove(pidf)
  if not ok then error(err, 0) end
end

-- Run a script against url; a host that does not exit within 30 s is
-- killed (exit status 124: "did not exit by itself").
local function run(url, script, args)
  local path = os.tmpname()
  write(path, script)
  local out = os.tmpname()
  local ok, how, code = os.execute(string.format(
    "timeout -k 5 30 %s --url %s --user asterisk --password asterisk %s %s >%s 2>&1",
    BIN, q(url), path, args or "", q(out)))
  local text = read(out)
  os.remove(path); os.remove(out)
  return (how == "exit" and code or -1), text, ok
end

local SCENARIO = [[
return {
  app = %q,
  calls = {
    { from = "1001", at = 0, script = { { "wait_answer" }, { "sleep", 200 }, { "hangup" } } },
    { from = "1002", at = 1500, script = { { "wait_answer" }, { "sleep", 200 }, { "hangup" } } },
  },
  endpoints = { ["PJSIP/ok"] = { answer_after = 200, script = { { "sleep", 300 }, { "hangup" } } } },
}
]]

-- the script's own pid, to send itself SIGTERM
local SELF = 'io.open("/proc/self/stat"):read("n")'

describe("the host exits by itself when the script is done", function()
  it("an app without on_call: after its originated call is over, exit 0", function()
    with_sim(SCENARIO:format("nobody"), function(url)
      local rc, out = run(url, [[
        local ari = require "ari"
        local app = ari.app "dialer"
        for _ = 1, 200 do
          if pcall(app.client.applications.get, { applicationName = "dialer" }) then break end
          ari.sleep(20)
        end
        local call = app:originate { endpoint = "PJSIP/ok", timeout = 10 }
        print("answered")
        call:wait_hangup()
        print("call over")
      ]])
      assert.equals(0, rc, out)
      assert.matches("answered.*call over", out)
      assert.matches("shutting down %(the script has finished", out)
    end)
  end)

  it("an app with on_call keeps running between calls (until SIGTERM)", function()
    with_sim(SCENARIO:format("keep"), function(url)
      local rc, out = run(url, [[
        local ari = require "ari"
        local n = 0
        ari.app("keep"):on_call(function(call)
          n = n + 1
          call:answer()
          print("call " .. n)
          call:wait_hangup()
          if n == 2 then os.execute("kill -TERM " .. ]] .. SELF .. [[) end
        end)
      ]])
      assert.equals(0, rc, out)
      assert.matches("call 1.*call 2", out)
      assert.matches("shutting down %(SIGTERM%)", out)
    end)
  end)

  it("a client:on handler keeps it running; removing it lets it exit", function()
    with_sim(SCENARIO:format("watch"), function(url)
      local rc, out = run(url, [[
        local ari = require "ari"
        local c = ari.connect { app = "watch" }
        local n = 0
        local h
        h = c:on("StasisStart", function(ev)
          n = n + 1
          print("seen " .. n)
          if n == 2 then c:off("StasisStart", h) end
        end)
      ]])
      assert.equals(0, rc, out)
      assert.matches("seen 1.*seen 2", out)
      assert.matches("shutting down %(the script has finished", out)
    end)
  end)

  it("a pending ari.timer keeps it running until it has fired", function()
    with_sim(SCENARIO:format("nobody"), function(url)
      local rc, out = run(url, [[
        local ari = require "ari"
        ari.app "ticker"
        ari.timer(300, function() ari.sleep(100); print("timer fired") end)
      ]])
      assert.equals(0, rc, out)
      assert.matches("timer fired.*shutting down %(the script has finished", out)
    end)
  end)

  -- a script that serves (ari.server, a simulator of its own, a media
  -- listener) waits for whoever connects: the listener keeps it running.
  -- The core.timer (which keeps nothing alive) closes it well after several
  -- idle checks (100 ms each); only then may the host exit.
  for _, case in ipairs {
    { "an ari.server listener", [[local srv = assert(require("ari.server").listen { port = 0, handler = function() return 200 end })]] },
    { "an ari.media.listen listener", [[local srv = ari.media.listen { port = 0 }]] },
  } do
    it(case[1] .. " keeps it running until it is closed", function()
      with_sim(SCENARIO:format("nobody"), function(url)
        local rc, out = run(url, [[
          local ari = require "ari"
          local core = require "ari.core"
          ari.app "serving"
          ]] .. case[2] .. [[

          print("listening on " .. srv:port())
          local t = core.timer(800, function() print("closing"); srv:close() end)
        ]])
        assert.equals(0, rc, out)
        assert.matches("listening on %d+.*closing.*shutting down %(the script has finished", out)
      end)
    end)
  end

  it("the host's own --metrics server does not keep it running", function()
    with_sim(SCENARIO:format("nobody"), function(url)
      local rc, out = run(url, [[
        local ari = require "ari"
        local core = require "ari.core"
        ari.app "metered"
        local t = core.timer(5000, function() print("still running") end)
      ]], "--metrics 127.0.0.1:0")
      assert.equals(0, rc, out)
      assert.matches("shutting down %(the script has finished", out)
      assert.not_matches("still running", out)
    end)
  end)

  it("a script whose main chunk raises still exits 1", function()
    with_sim(SCENARIO:format("nobody"), function(url)
      local rc, out = run(url, [[
        local ari = require "ari"
        ari.app "broken"
        error("kaput")
      ]])
      assert.equals(1, rc, out)
      assert.matches("kaput", out)
    end)
  end)
end)
