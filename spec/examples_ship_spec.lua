-- The examples run under their scenarios: `ari-lua --sim=<scenario> <example>`
-- exits 0 and the transcript shows what the example is about.
local bin = os.getenv("ARI_LUA_BIN") or "./ari-lua"
local SPEED = 20

local function run(example, scenario, args)
  local tr = os.tmpname()
  local err = os.tmpname()
  local cmd = string.format("timeout -k 5 60 %s --sim=%s --sim-speed %d --transcript %s %s %s 2>%s; echo \"rc=$?\"",
    bin, scenario, SPEED, tr, example, args or "", err)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  local f = assert(io.open(err))
  local log = f:read("a")
  f:close()
  local entries = {}
  f = io.open(tr)
  if f then
    for line in f:lines() do
      entries[#entries + 1] = {
        kind = line:match('"kind":"(%a+)"'), type = line:match('"type":"([%w_]+)"'),
        method = line:match('"method":"(%u+)"'), path = line:match('"path":"([^"]*)"'),
        status = tonumber(line:match('"status":(%d+)')), summary = line:match('"summary":"(.-)"[,}]'),
        call = line:match('"call":"([^"]*)"'),
      }
    end
    f:close()
  end
  os.remove(tr)
  os.remove(err)
  return { out = out, log = log, rc = rc, entries = entries }
end

local function count(r, pred)
  local n = 0
  for _, e in ipairs(r.entries) do if pred(e) then n = n + 1 end end
  return n
end
local function rest(method, pattern)
  return function(e) return e.kind == "rest" and e.method == method and e.path and e.path:find(pattern) ~= nil end
end
local function event(t) return function(e) return e.kind == "event" and e.type == t end end

-- failures show the program's output
local function check(r, ok, what)
  assert(ok, what .. "\n--- stdout\n" .. r.out .. "\n--- stderr\n" .. r.log)
end

describe("examples/queue.lua", function()
  local r
  setup(function() r = run("examples/queue.lua", "examples/scenarios/queue.lua") end)

  it("exits 0 without script errors", function()
    check(r, r.rc == 0, "exit code " .. tostring(r.rc))
    check(r, not r.log:find("script error", 1, true), "a script error was logged")
  end)

  it("keeps callers in a holding bridge with music on hold", function()
    check(r, count(r, function(e) return e.kind == "rest" and e.method == "POST" and e.path:find("^/ari/bridges/[^/?]+%?")
      and e.path:find("type=holding") end) == 1, "one holding bridge")
    check(r, count(r, rest("POST", "^/ari/bridges/[^/]+/moh")) == 1, "MOH started on it")
    check(r, r.log:find("PJSIP/1001%-%x+%] waiting in the queue") ~= nil, "1001 waited")
    check(r, r.log:find("PJSIP/1002%-%x+%] waiting in the queue") ~= nil, "1002 waited")
  end)

  it("rings the agents in turn and skips the busy and silent ones", function()
    local order = {}
    for line in r.log:gmatch("PJSIP/1001%-%x+%] ringing (PJSIP/%w+)") do order[#order + 1] = line end
    check(r, #order >= 3, "1001 rang at least 3 agents")
    check(r, order[#order] == "PJSIP/agent3", "1001 ends with agent3")
    check(r, r.log:find("agent1: no_answer", 1, true) ~= nil, "agent1 did not answer")
    check(r, r.log:find("agent2: busy", 1, true) ~= nil, "agent2 was busy")
    check(r, r.log:find("PJSIP/1001%-%x+%] PJSIP/agent3 answered") ~= nil, "agent3 answered 1001")
  end)

  it("bridges the caller with the agent who answered; the caller who gave up is gone", function()
    check(r, count(r, function(e) return e.kind == "rest" and e.method == "POST" and e.path:find("^/ari/bridges/[^/?]+%?")
      and e.path:find("type=mixing") end) >= 1, "a mixing bridge")
    check(r, count(r, event("ChannelEnteredBridge")) >= 4, "caller and agent entered bridges")
    check(r, count(r, event("ChannelDestroyed")) >= 4, "the channels ended")
    check(r, r.out:find("simulation over (all calls ended)", 1, true) ~= nil, "every call ended")
    check(r, not r.log:find("PJSIP/1002%-%x+%] PJSIP/agent3 answered"), "1002 hung up before an agent answered")
  end)
end)

describe("examples/click-to-call.lua", function()
  it("originates both legs, bridges them, and ends when one hangs up", function()
    local r = run("examples/click-to-call.lua", "examples/scenarios/click-to-call.lua", "PJSIP/alice PJSIP/bob")
    check(r, r.rc == 0, "exit code " .. tostring(r.rc))
    check(r, count(r, function(e) return e.kind == "rest" and e.method == "POST" and e.path:find("^/ari/channels%?")
      and e.path:find("endpoint=PJSIP%%2Falice") end) == 1, "alice originated")
    check(r, count(r, function(e) return e.kind == "rest" and e.method == "POST" and e.path:find("^/ari/channels%?")
      and e.path:find("endpoint=PJSIP%%2Fbob") end) == 1, "bob originated")
    check(r, count(r, rest("POST", "^/ari/bridges/[^/]+/addChannel")) == 2, "both legs added to a bridge")
    check(r, count(r, event("ChannelDestroyed")) == 2, "both legs ended")
    check(r, r.log:find("PJSIP/alice and PJSIP/bob are talking", 1, true) ~= nil, "talking logged")
    check(r, r.out:find("all calls ended", 1, true) ~= nil, "the run ended after the call")
  end)

  it("says goodbye to the first leg when the second does not answer", function()
    local r = run("examples/click-to-call.lua", "examples/scenarios/click-to-call.lua", "PJSIP/alice PJSIP/busy-line")
    check(r, r.rc == 0, "exit code " .. tostring(r.rc))
    check(r, r.log:find("PJSIP/busy-line not reached: busy", 1, true) ~= nil, "busy reported")
    check(r, count(r, rest("POST", "^/ari/bridges/[^/]+/addChannel")) == 0, "nothing bridged")
    check(r, r.out:find("PlaybackFinished", 1, true) ~= nil, "goodbye played")
  end)
end)

describe("examples/dashboard.lua", function()
  it("prints endpoints, channels and bridges from the API while calls come and go", function()
    local r = run("examples/dashboard.lua", "examples/scenarios/dashboard.lua", "100")
    check(r, r.rc == 0, "exit code " .. tostring(r.rc))
    for _, p in ipairs { "^/ari/asterisk/info", "^/ari/endpoints$", "^/ari/channels$", "^/ari/bridges$" } do
      check(r, count(r, rest("GET", p)) >= 1, "GET " .. p)
    end
    check(r, r.out:find("==== snapshot 1:", 1, true) ~= nil, "a snapshot")
    check(r, r.out:find("endpoints: 3 (online=3)", 1, true) ~= nil, "the scenario's endpoints")
    check(r, r.out:find("PJSIP/carol", 1, true) ~= nil, "carol listed")
    check(r, r.out:find("1001 Alice", 1, true) ~= nil, "a caller listed")
    check(r, r.out:find("events: %d+ %(.*StasisStart=%d") ~= nil, "event counts")
  end)
end)

-- Every other example that has a scenario of the same name runs green too.
describe("every example with a scenario", function()
  -- the media examples run in real time with their own checks (spec/media_examples_spec.lua)
  local mine = { queue = true, ["click-to-call"] = true, dashboard = true, ["echo-bot"] = true,
    ["silence-recorder"] = true, ["speech-bridge"] = true }
  local p = io.popen("ls examples/*.lua 2>/dev/null")
  for path in p:lines() do
    local name = path:match("examples/(.+)%.lua$")
    local scen = "examples/scenarios/" .. name .. ".lua"
    local f = io.open(scen)
    if f then
      f:close()
      if not mine[name] then
        it(name .. " exits 0 and every call ends", function()
          local r = run(path, scen)
          check(r, r.rc == 0, "exit code " .. tostring(r.rc))
          check(r, not r.log:find("script error", 1, true), "a script error was logged")
          check(r, r.out:find("simulation over", 1, true) ~= nil, "the simulation ended")
        end)
      end
    end
  end
  p:close()
end)
