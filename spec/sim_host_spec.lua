-- `ari-lua --sim app.lua`: the in-process simulator host mode.
local function run(cmd)
  local p = io.popen(cmd .. " 2>/dev/null; echo \"rc=$?\"")
  local out = p:read("a")
  p:close()
  return out, tonumber(out:match("rc=(%d+)%s*$"))
end

local bin = os.getenv("ARI_LUA_BIN") or "./ari-lua"

describe("ari-lua --sim", function()
  it("runs examples/hello.lua: answer, play, hang up, transcript, exit 0", function()
    local tmp = os.tmpname()
    local out, rc = run(bin .. " --sim --sim-speed 20 --transcript " .. tmp .. " examples/hello.lua")
    assert.equals(0, rc)
    assert.matches("StasisStart", out)
    assert.matches("POST /ari/channels/[^ ]+/answer %-> 204", out)
    assert.matches("PlaybackFinished", out)
    assert.matches("ChannelDestroyed", out)
    local f = assert(io.open(tmp))
    local lines = 0
    for line in f:lines() do
      lines = lines + 1
      assert.matches("^{.*}$", line)
    end
    f:close()
    os.remove(tmp)
    assert.is_true(lines > 5)
  end)

  it("runs a scenario file and ends when its calls are over", function()
    local tmp = os.tmpname() .. ".lua"
    local f = assert(io.open(tmp, "w"))
    f:write([[return { calls = {
      { from = "42", script = { { "wait_answer" }, { "wait_playback" } } },
      { from = "43", at = 100, script = { { "sleep", 50 }, { "hangup" } } } } }]])
    f:close()
    local out, rc = run(bin .. " --sim=" .. tmp .. " --sim-speed 20 examples/hello.lua")
    os.remove(tmp)
    assert.equals(0, rc)
    assert.matches("call from 42", out)
    assert.matches("call from 43", out)
    assert.matches("all calls ended", out)
  end)
end)
