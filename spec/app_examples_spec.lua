-- Every Call-layer example runs under `ari-lua --sim=<its scenario>`: exit
-- 0, and its transcript (JSON lines) shows what the example is about.
local json_decode = require("ari.core").json_decode
local bin = os.getenv("ARI_LUA_BIN") or "./ari-lua"

local function run_example(name)
  local tmp = os.tmpname()
  local p = io.popen(string.format("%s --sim=examples/scenarios/%s.lua --sim-speed 20 --transcript %s examples/%s.lua 2>&1; echo \"rc=$?\"",
    bin, name, tmp, name))
  local out = p:read("a")
  p:close()
  local entries = {}
  local f = io.open(tmp)
  if f then
    for line in f:lines() do entries[#entries + 1] = assert(json_decode(line)) end
    f:close()
  end
  os.remove(tmp)
  return tonumber(out:match("rc=(%d+)%s*$")), out, entries
end

-- entries of the call whose label mentions `from`
local function of_call(out, entries, from)
  local id = out:match("== (call%-%d+) %(call from " .. from .. " ")
  local t = {}
  for _, e in ipairs(entries) do if e.call == id then t[#t + 1] = e end end
  return t
end

local function count(entries, pat)
  local n = 0
  for _, e in ipairs(entries) do if e.summary:find(pat) then n = n + 1 end end
  return n
end

describe("examples under --sim", function()
  it("ivr-menu: number read back, operator bridged, invalid x3, busy operator", function()
    local rc, out, tr = run_example("ivr-menu")
    assert.equals(0, rc, out)
    assert.is_nil(out:find("script error", 1, true), out)
    assert.matches("all calls ended", out)
    assert.equals(0, count(tr, "script error"))
    local c1 = of_call(out, tr, "1001")
    assert.equals(1, count(c1, "digit=1"))
    assert.is_true(count(c1, "PlaybackFinished") >= 4)
    local c2 = of_call(out, tr, "1002")
    assert.equals(1, count(c2, "ChannelEnteredBridge"))
    local c3 = of_call(out, tr, "1003")
    assert.equals(1, count(c3, "DELETE /ari/channels/")) -- the app hung up after three invalid tries
    assert.matches("operator not reached: busy", out)
  end)

  it("pin: right on the second try, typed ahead, three failures", function()
    local rc, out, tr = run_example("pin")
    assert.equals(0, rc, out)
    assert.is_nil(out:find("script error", 1, true), out)
    assert.matches("2001[^\n]*PIN accepted", out)
    assert.matches("2002[^\n]*PIN accepted", out)
    assert.matches("2003[^\n]*PIN rejected after 3 tries", out)
    -- 2002 typed the PIN ahead: the prompt was skipped or stopped at the first digit
    assert.is_true(count(of_call(out, tr, "2002"), "PlaybackFinished") <= 2)
  end)

  it("recorder: records, plays back, keeps / re-records; hang-up while recording deletes", function()
    local rc, out, tr = run_example("recorder")
    assert.equals(0, rc, out)
    assert.is_nil(out:find("script error", 1, true), out)
    assert.equals(1, count(of_call(out, tr, "3001"), "^POST /ari/channels/[^/]+/record"))
    assert.equals(2, count(of_call(out, tr, "3002"), "^POST /ari/channels/[^/]+/record"))
    assert.equals(1, count(tr, "^DELETE /ari/recordings/stored/"))
    assert.matches("recorded msg%-", out)
  end)

  it("dial-bridge: answer + bridge, busy, no answer, caller gone while ringing", function()
    local rc, out, tr = run_example("dial-bridge")
    assert.equals(0, rc, out)
    assert.is_nil(out:find("script error", 1, true), out)
    assert.equals(1, count(of_call(out, tr, "1001"), "ChannelEnteredBridge"))
    assert.matches("PJSIP/2002: busy", out)
    assert.matches("PJSIP/2003: no_answer", out)
    assert.equals(4, count(tr, "^POST /ari/channels %-> 200"))
    assert.equals(1, count(tr, "BridgeDestroyed"))
  end)

  it("conference: three join one bridge, mute toggles, room closes", function()
    local rc, out, tr = run_example("conference")
    assert.equals(0, rc, out)
    assert.is_nil(out:find("script error", 1, true), out)
    assert.equals(3, count(tr, "^POST /ari/bridges/[^/]+/addChannel"))
    assert.equals(1, count(tr, "^POST /ari/bridges/[^/]+ %-> 200"))
    assert.equals(1, count(tr, "^POST /ari/channels/[^/]+/mute"))
    assert.equals(1, count(tr, "^DELETE /ari/channels/[^/]+/mute"))
    assert.equals(1, count(tr, "BridgeDestroyed"))
  end)
end)

-- The headers: each example shows command lines that work (ari-lua's
-- options before the script), documents every knob it reads, and its
-- --sim command line runs green as written.
describe("the examples' headers", function()
  local function header(path)
    local f = assert(io.open(path))
    local lines = {}
    for line in f:lines() do
      if not line:match("^%-%-") then break end
      lines[#lines + 1] = line
    end
    f:close()
    return lines
  end

  local examples = {}
  local p = io.popen("ls examples/*.lua")
  for path in p:lines() do examples[#examples + 1] = path end
  p:close()

  for _, path in ipairs(examples) do
    local lines = header(path)
    local cmds = {}
    for _, line in ipairs(lines) do
      local cmd = line:match("^%-%-%s%s+(.-)%s*$") -- an indented line: a command
      if cmd and (cmd:find("^ari%-lua%s") or cmd:find("^[%u_]+=%S+.-%sari%-lua%s")) then
        cmds[#cmds + 1] = (cmd:gsub("%s+#.*$", ""))
      end
    end

    it(path .. ": command lines with ari-lua's options before the script", function()
      assert.is_true(#cmds >= 1, "no command line in the header")
      for _, cmd in ipairs(cmds) do
        local after = cmd:match("examples/[%w%-]+%.lua(.*)$")
        assert.is_not_nil(after, cmd)
        assert.is_nil(after:match("%s%-%-[%a%-]+"), "an option after the script: " .. cmd)
      end
    end)

    it(path .. ": every environment variable it reads is in its header", function()
      local f = assert(io.open(path))
      local src = f:read("a")
      f:close()
      local text = table.concat(lines, "\n")
      for var in src:gmatch('os%.getenv%("([%w_]+)"%)') do
        assert.truthy(text:find("$" .. var, 1, true) or text:find(var .. "=", 1, true),
          var .. " is read but not documented in the header of " .. path)
      end
      if src:find('ari%.app "') or src:find("app = \"") then
        assert.truthy(text:find("--app", 1, true), "the header does not say how to rename the app")
      end
    end)

    for _, cmd in ipairs(cmds) do
      if cmd:find("^ari%-lua %-%-sim") then
        it(path .. ": '" .. cmd .. "' exits 0", function()
          local run = cmd:gsub("^ari%-lua ", bin .. " --sim-speed 20 ")
          local h = io.popen("timeout -k 5 120 " .. run .. " 2>&1; echo \"rc=$?\"")
          local out = h:read("a")
          h:close()
          assert.equals("0", out:match("rc=(%d+)%s*$"), out)
          assert.is_nil(out:find("script error", 1, true), out)
          assert.matches("simulation over", out)
        end)
      end
    end
  end
end)
