-- Real Asterisk: every example in examples/ runs unchanged, as a user runs
-- it: the built ./ari-lua as a subprocess with ARI_URL / ARI_USER /
-- ARI_PASSWORD, its knobs given on the command line or in the environment
-- as its header says.  Calls are driven into it from here: this spec's own
-- app ("the phones") originates Local/<app>@stasis-app, whose ;1 half is
-- the phone (it sends DTMF, hangs up) and whose ;2 half enters the
-- example's app; far ends are the [caller] dialplan (Local/s@caller
-- answers, Local/busy@caller is busy, ...).  Assertions are on what can be
-- observed: the example's log lines, channels and bridges via REST,
-- stored recordings, exit codes.  Every wait is for a line, an event or a
-- state, never a fixed time.
local ast = require "spec.support.asterisk"
local ari = require "ari"

local BIN = os.getenv("ARI_LUA_BIN") or "./ari-lua"
local q = ast.sh_quote

-- Every sound an example plays exists on the server -------------------------

local EXAMPLES = {}
do
  local p = io.popen("ls examples/*.lua")
  for path in p:lines() do EXAMPLES[#EXAMPLES + 1] = path end
  p:close()
end

local read = require("spec.support.util").read

-- Subprocesses ----------------------------------------------------------------

local Proc = {}
Proc.__index = Proc
local procs = {}

--- Start `ari-lua <args>` against inst, with extra environment `env`
-- (a string of NAME=value words).  Its stdout and stderr go to files.
local function spawn(inst, args, env)
  local base = os.tmpname()
  local cmd = string.format("(%s %s %s %s >%s 2>%s </dev/null & echo $! >%s; wait $!; echo $? >%s) >/dev/null 2>&1 &",
    ast.env(inst), env or "", BIN, args, q(base .. ".out"), q(base .. ".err"), q(base .. ".pid"), q(base .. ".rc"))
  os.execute(cmd)
  local p = setmetatable({ base = base, args = args }, Proc)
  procs[#procs + 1] = p
  return p
end

function Proc:pid()
  if not self._pid then self._pid = tonumber(read(self.base .. ".pid") or "") end
  return self._pid
end

--- stdout and stderr so far.
function Proc:out() return read(self.base .. ".out") or "" end
function Proc:err() return read(self.base .. ".err") or "" end
function Proc:text() return self:out() .. self:err() end

--- Exit status, or nil while running.
function Proc:rc() return tonumber(read(self.base .. ".rc") or "") end

function Proc:dump()
  return ("\n--- ari-lua %s\n--- stdout\n%s--- stderr\n%s"):format(self.args, self:out(), self:err())
end

--- Wait (on the loop) until the output has a line matching pattern;
-- returns the capture(s) or the line.
function Proc:wait_line(pattern, what, limit_ms)
  local deadline = ari.now() + (limit_ms or 30000)
  while true do
    local text = self:text()
    for line in text:gmatch("[^\n]+") do
      local c = table.pack(line:match(pattern))
      if c[1] ~= nil then return table.unpack(c, 1, c.n) end
    end
    if self:rc() then error(("ari-lua exited (%d) before %s%s"):format(self:rc(), what, self:dump()), 2) end
    if ari.now() > deadline then error("timed out waiting for " .. what .. self:dump(), 2) end
    ari.sleep(20)
  end
end

--- Count of output lines matching pattern.
function Proc:count(pattern)
  local n = 0
  for line in self:text():gmatch("[^\n]+") do if line:find(pattern) then n = n + 1 end end
  return n
end

--- Wait until the process has exited by itself; its exit status.
function Proc:wait_exit(what, limit_ms)
  local deadline = ari.now() + (limit_ms or 30000)
  while not self:rc() do
    if ari.now() > deadline then error("ari-lua did not exit by itself " .. (what or "") .. self:dump(), 2) end
    ari.sleep(20)
  end
  return self:rc()
end

--- SIGTERM, then wait for the exit; its exit status.
function Proc:term(limit_ms)
  ast.poll(function() return self:pid() ~= nil end, "the pid of ari-lua")
  os.execute("kill -TERM " .. self:pid() .. " 2>/dev/null")
  return self:wait_exit("after SIGTERM", limit_ms or 20000)
end

function Proc:cleanup()
  if self:pid() and not self:rc() then os.execute("kill -KILL " .. self:pid() .. " 2>/dev/null") end
  for _, ext in ipairs { ".out", ".err", ".pid", ".rc", "" } do os.remove(self.base .. ext) end
end

-- Phones: calls into the example's app -----------------------------------------

local Phones = {}
Phones.__index = Phones

-- the channel id an event is about (its channel, or its playback's or
-- recording's target)
local function about(ev)
  local ch = ev.channel
  if type(ch) == "table" and ch.id then return ch.id end
  local obj = ev.playback or ev.recording
  local uri = type(obj) == "table" and obj.target_uri
  return type(uri) == "string" and uri:match("^channel:(.+)$") or nil
end

--- A client with its own app: every channel it originates is a phone.
local function phones(inst)
  local name = ast.app_name("phone")
  local client = ari.connect { url = inst.url, user = inst.user, password = inst.password, app = name }
  local self = setmetatable({ client = client, app = name, events = {}, calls = {} }, Phones)
  client:on("*", function(ev)
    local id = about(ev)
    if id then
      local list = self.events[id]
      if not list then list = {}; self.events[id] = list end
      list[#list + 1] = ev
    end
  end)
  ast.poll(function() return client.stats.connects > 0 end, "the phones' events socket")
  return self
end

--- Events of channel id of type t (and matching fn), in order.
function Phones:all(id, t, fn)
  local out = {}
  for _, ev in ipairs(self.events[id] or {}) do
    if ev.type == t and (fn == nil or fn(ev)) then out[#out + 1] = ev end
  end
  return out
end

function Phones:seen(id, t, fn) return self:all(id, t, fn)[1] end

--- Wait for the n-th (default first) event of type t on channel id.
function Phones:wait(id, t, what, opts)
  opts = opts or {}
  local n = opts.n or 1
  local list
  ast.poll(function() list = self:all(id, t, opts.filter); return #list >= n end, what, opts.limit)
  return list[n]
end

--- Call the example's app `app` (Local/<app>@stasis-app).  Returns the
-- phone (the ;1 half, in our app once the example answers) and the ;2 half
-- (the channel in the example's app), whose events we subscribe to as an
-- observer (playbacks, recordings, DTMF, hang-up).
function Phones:call(app, opts)
  opts = opts or {}
  local uuid = require "ari.uuid"
  local id, other = uuid.new(), uuid.new()
  self.client.channels.originate {
    endpoint = "Local/" .. app .. "@stasis-app", app = self.app, formats = "ulaw",
    channelId = id, otherChannelId = other,
    callerId = opts.caller_id or "Phone <5551234>", timeout = 30, variables = opts.variables,
  }
  self.calls[#self.calls + 1] = id
  self.client.applications.subscribe { applicationName = self.app, eventSource = "channel:" .. other }
  return id, other
end

--- Wait until the phone is answered (it entered our app).
function Phones:answered(id, limit)
  return self:wait(id, "StasisStart", "the example to answer the phone", { limit = limit })
end

--- Wait until the phone is hung up by the far end (the example).
function Phones:hung_up(id, limit)
  return self:wait(id, "StasisEnd", "the example to hang up the phone", { limit = limit })
end

--- Wait until the example starts playing `media` to channel `other` (the
-- n-th time).
function Phones:playing(other, media, n, limit)
  return self:wait(other, "PlaybackStarted", "the example to play " .. media .. " #" .. (n or 1),
    { n = n, limit = limit, filter = function(ev) return ev.playback.media_uri == media end })
end

--- Wait until `media` has finished playing to `other` (the n-th time); its state.
function Phones:played(other, media, n, limit)
  return self:wait(other, "PlaybackFinished", "the example to finish playing " .. media,
    { n = n, limit = limit, filter = function(ev) return ev.playback.media_uri == media end }).playback.state
end

--- The media the example played to `other`, in order.
function Phones:media(other)
  local out = {}
  for _, ev in ipairs(self:all(other, "PlaybackStarted")) do out[#out + 1] = ev.playback.media_uri end
  return out
end

function Phones:dtmf(id, digits)
  self.client.channels.sendDTMF { channelId = id, dtmf = digits, between = 150, duration = 100 }
end

function Phones:hangup(id)
  pcall(self.client.channels.hangup, { channelId = id })
end

--- Is the channel still there?
function Phones:exists(id)
  return (pcall(self.client.channels.get, { channelId = id }))
end

--- Wait until no channel named `name` is left.
function Phones:gone(name, what)
  ast.poll(function()
    for _, ch in ipairs(self.client.channels.list()) do if ch.name == name then return false end end
    return true
  end, what or (name .. " to be hung up"))
end

--- Wait until Stasis app `app` is registered (the example's events
-- socket is up): only then does Asterisk let calls into it.
function Phones:registered(app, proc)
  local deadline = ari.now() + 20000
  while not pcall(self.client.applications.get, { applicationName = app }) do
    if proc:rc() then error("ari-lua exited before registering " .. app .. proc:dump(), 2) end
    if ari.now() > deadline then error("timed out waiting for app " .. app .. " to register" .. proc:dump(), 2) end
    ari.sleep(20)
  end
end

--- The bridge that has channel id as a member, or nil.
function Phones:bridge_of(id)
  for _, b in ipairs(self.client.bridges.list()) do
    for _, c in ipairs(b.channels or {}) do if c == id then return b end end
  end
end

function Phones:bridge_named(name)
  for _, b in ipairs(self.client.bridges.list()) do if b.name == name then return b end end
end

function Phones:close()
  for _, id in ipairs(self.calls) do self:hangup(id) end
  self.client:close()
end

-- The example's output has no error, no failed playback, no script error.
local function assert_clean(p)
  for line in p:text():gmatch("[^\n]+") do
    assert(not (line:find(" ERROR ", 1, true) or line:find("script error", 1, true)
      or line:find("playback of .* failed") or line:find("^ari%-lua:")), "unexpected line: " .. line .. p:dump())
  end
end

--- Run fn(ph, p, app) with the example running as app NAME (a unique
-- name, given with --app as a user serving several apps would), its
-- arguments `args` and environment `env`; the phones are ready once the
-- example's app is registered.  Afterwards the example is stopped with
-- SIGTERM and must exit 0 with a clean log.
local function with_example(inst, example, opts, fn)
  opts = opts or {}
  ast.run(function()
    local app = ast.app_name(opts.prefix or example:match("(%w+)"))
    local p = spawn(inst, "--app " .. app .. " examples/" .. example .. ".lua " .. (opts.args or ""), opts.env)
    local ph = phones(inst)
    local ok, err = pcall(function()
      ph:registered(app, p)
      fn(ph, p, app)
      assert.equals(0, p:term(), "exit status after SIGTERM" .. p:dump())
      assert_clean(p)
      if opts.after then opts.after(ph, p, app) end
    end)
    ph:close()
    if not ok then error(err, 0) end
  end, opts.limit or 120000)
end

ari.log.set_level("warn")

ast.describe("real Asterisk: every example runs unchanged", function(inst)
  after_each(function()
    for _, p in ipairs(procs) do p:cleanup() end
    procs = {}
  end)

  it("plays only sounds the server has (every sound: URI in examples/)", function()
    local sounds = {}
    for _, path in ipairs(EXAMPLES) do
      for s in read(path):gmatch("[\"']sound:([%w%-_/]+)[\"']") do sounds[s] = path end
    end
    assert.is_not_nil(next(sounds))
    local missing = {}
    ast.run(function()
      local c = ari.connect { url = inst.url, user = inst.user, password = inst.password, events = false }
      for s, path in pairs(sounds) do
        if not pcall(c.sounds.get, { soundId = s }) then missing[#missing + 1] = s .. " (" .. path .. ")" end
      end
    end)
    table.sort(missing)
    assert.same({}, missing)
  end)

  it("list-channels: lists a live channel and exits 0 by itself", function()
    ast.run(function()
      local ph = phones(inst)
      local ch = ph.client.channels.originate { endpoint = "Local/s@caller", app = ph.app, formats = "ulaw" }
      ph.calls[1] = ch.id
      ph:answered(ch.id)
      local p = spawn(inst, "examples/list-channels.lua")
      local rc = p:wait_exit("(a one-shot script)")
      ph:close()
      assert.equals(0, rc, p:dump())
      assert.matches("%d+ channel%(s%)", p:out())
      assert.truthy(p:out():find(ch.id, 1, true), "the channel is listed" .. p:dump())
      assert.matches("%d+ bridge%(s%)", p:out())
      assert.matches("%d+ endpoint%(s%)", p:out())
      assert_clean(p)
    end)
  end)

  it("hello: answers, plays hello-world, hangs up", function()
    with_example(inst, "hello", {}, function(ph, p, app)
      local id, other = ph:call(app)
      ph:answered(id)
      assert.equals("done", ph:played(other, "sound:hello-world"))
      ph:hung_up(id)
      p:wait_line("call from 5551234", "the call's log line")
    end)
  end)

  it("hello, exactly as its header runs it (ARI_* environment, the app name of the script)", function()
    ast.run(function()
      local p = spawn(inst, "examples/hello.lua")
      local ph = phones(inst)
      local ok, err = pcall(function()
        ph:registered("hello", p)
        local id, other = ph:call("hello")
        ph:answered(id)
        assert.equals("done", ph:played(other, "sound:hello-world"))
        ph:hung_up(id)
        assert.equals(0, p:term(), p:dump())
        assert_clean(p)
      end)
      ph:close()
      if not ok then error(err, 0) end
    end)
  end)

  it("pin: a wrong PIN, then the right one (the script's argument)", function()
    with_example(inst, "pin", { args = "4321" }, function(ph, p, app)
      local id, other = ph:call(app)
      ph:answered(id)
      ph:playing(other, "sound:agent-pass", 1)
      ph:dtmf(id, "0000")
      ph:playing(other, "sound:auth-incorrect", 1)
      ph:playing(other, "sound:agent-pass", 2)
      ph:dtmf(id, "4321")
      p:wait_line("PIN accepted", "the PIN to be accepted")
      assert.equals("done", ph:played(other, "sound:auth-thankyou"))
      ph:hung_up(id)
    end)
  end)

  it("pin: the channel variable PIN wins (3 digits: no '#' needed)", function()
    with_example(inst, "pin", { env = "PIN=4321" }, function(ph, p, app)
      local id, other = ph:call(app, { variables = { _PIN = "987" } }) -- inherited by the ;2 half
      ph:answered(id)
      ph:playing(other, "sound:agent-pass", 1)
      ph:dtmf(id, "987")
      p:wait_line("PIN accepted", "the PIN to be accepted")
      ph:hung_up(id)
    end)
  end)

  it("pin: three wrong tries ($PIN), goodbye and hang-up", function()
    with_example(inst, "pin", { env = "PIN=4321" }, function(ph, p, app)
      local id, other = ph:call(app)
      ph:answered(id)
      for n = 1, 3 do
        ph:playing(other, "sound:agent-pass", n)
        ph:dtmf(id, n == 2 and "12#" or "1111")
      end
      p:wait_line("PIN rejected after 3 tries", "the PIN to be rejected")
      assert.equals("done", ph:played(other, "sound:vm-goodbye"))
      ph:hung_up(id)
      assert.equals(2, #ph:all(other, "PlaybackStarted", function(ev) return ev.playback.media_uri == "sound:auth-incorrect" end))
    end)
  end)

  it("ivr-menu: invalid choice, caller number read back, operator (argument) bridged", function()
    with_example(inst, "ivr-menu", { args = "Local/s@caller" }, function(ph, p, app)
      local id, other = ph:call(app)
      ph:answered(id)
      ph:playing(other, "sound:demo-instruct", 1)
      ph:dtmf(id, "7")
      ph:playing(other, "sound:pm-invalid-option", 1)
      ph:playing(other, "sound:demo-instruct", 2)
      ph:dtmf(id, "1")
      assert.equals("done", ph:played(other, "sound:vm-from"))
      assert.equals("done", ph:played(other, "digits:5551234"))
      ph:playing(other, "sound:demo-instruct", 3)
      ph:dtmf(id, "2")
      local operator = p:wait_line("talking to the operator %((.-)%)", "the operator to answer")
      assert.matches("^Local/s@caller%-", operator)
      local b = ph:bridge_of(other)
      assert.is_not_nil(b, "the caller is in a bridge")
      assert.equals(2, #b.channels)
      ph:hangup(id)
      ph:gone(operator, "the operator's leg to be hung up with the caller")
    end)
  end)

  it("ivr-menu: a busy operator ($OPERATOR): 'nobody available', then the menu again", function()
    with_example(inst, "ivr-menu", { env = "OPERATOR=Local/busy@caller" }, function(ph, p, app)
      local id, other = ph:call(app, { caller_id = "Anonymous <>" })
      ph:answered(id)
      ph:playing(other, "sound:demo-instruct", 1)
      ph:dtmf(id, "1")
      assert.equals("done", ph:played(other, "sound:vm-unknown-caller")) -- no number to read back
      ph:playing(other, "sound:demo-instruct", 2)
      ph:dtmf(id, "2")
      p:wait_line("operator not reached: busy", "the busy operator")
      assert.equals("done", ph:played(other, "sound:vm-nobodyavail"))
      ph:playing(other, "sound:demo-instruct", 3)
      ph:hangup(id)
    end)
  end)

  it("dial-bridge: the far end (argument) answers: bridged until the caller hangs up", function()
    with_example(inst, "dial-bridge", { args = "Local/s@caller" }, function(ph, p, app)
      local id, other = ph:call(app)
      local peer = p:wait_line("connected to (%S+)", "the far end to answer")
      ph:answered(id)
      -- addChannel is answered before the bridge's snapshot lists the
      -- channel: wait for both legs to show, rather than read it once
      local b
      ast.poll(function()
        b = ph:bridge_of(other)
        return b ~= nil and #b.channels == 2
      end, "the caller and the far end in one bridge", 5000)
      assert.equals(2, #b.channels)
      ph:hangup(id)
      ph:gone(peer, "the far end to be hung up with the caller")
    end)
  end)

  it("dial-bridge: a busy far end ($DIAL_TARGET) is announced", function()
    with_example(inst, "dial-bridge", { env = "DIAL_TARGET=Local/busy@caller DIAL_TIMEOUT=3" }, function(ph, p, app)
      local id, other = ph:call(app)
      p:wait_line("Local/busy@caller: busy", "the busy far end")
      ph:answered(id)
      assert.equals("done", ph:played(other, "sound:vm-isonphone"))
      ph:hung_up(id)
    end)
  end)

  it("dial-bridge: no answer ($DIAL_TIMEOUT) is announced", function()
    with_example(inst, "dial-bridge", { env = "DIAL_TARGET=Local/ring@caller DIAL_TIMEOUT=2" }, function(ph, p, app)
      local id, other = ph:call(app)
      p:wait_line("Local/ring@caller: no_answer", "the far end not to answer")
      ph:answered(id)
      assert.equals("done", ph:played(other, "sound:vm-isunavail"))
      ph:hung_up(id)
    end)
  end)

  it("recorder: records until '#', plays it back, keeps it (1): a stored recording", function()
    with_example(inst, "recorder", {}, function(ph, p, app)
      local id, other = ph:call(app)
      ph:answered(id)
      local name = p:wait_line("recording (msg%-%S+) %(take 1%)", "the recording to start")
      ph:wait(other, "RecordingStarted", "the recording to start")
      ph.client.channels.play { channelId = id, media = { "sound:hello-world" } } -- something to record
      ph:wait(id, "PlaybackFinished", "the phone's playback")
      ph:dtmf(id, "#")
      p:wait_line("recorded " .. name:gsub("%p", "%%%0"), "the recording to end")
      ph:playing(other, "recording:" .. name, 1)
      ph:playing(other, "sound:vm-review", 1)
      ph:dtmf(id, "1")
      p:wait_line("kept " .. name:gsub("%p", "%%%0"), "the message to be kept")
      ph:hung_up(id)
      local rec = ph.client.recordings.getStored { recordingName = name }
      assert.equals("wav", rec.format)
      ph.client.recordings.deleteStored { recordingName = name }
    end)
  end)

  it("recorder: listen again (2), record again (3), hang up while recording: nothing kept", function()
    with_example(inst, "recorder", { args = "gsm" }, function(ph, p, app)
      local id, other = ph:call(app)
      ph:answered(id)
      local name = p:wait_line("recording (msg%-%S+) %(take 1%)", "the recording to start")
      ph:wait(other, "RecordingStarted", "the recording to start")
      ph:dtmf(id, "#")
      ph:playing(other, "sound:vm-review", 1)
      ph:dtmf(id, "2")
      ph:playing(other, "recording:" .. name, 2)
      ph:playing(other, "sound:vm-review", 2)
      ph:dtmf(id, "3")
      p:wait_line("recording " .. name:gsub("%p", "%%%0") .. " %(take 2%)", "the second take")
      ph:wait(other, "RecordingStarted", "the second take to start", { n = 2 })
      ph:hangup(id)
      p:wait_line("deleted " .. name:gsub("%p", "%%%0"), "the unkept recording to be deleted")
      assert.is_false((pcall(ph.client.recordings.getStored, { recordingName = name })))
    end)
  end)

  it("conference: two callers in room (argument), '*' mutes/unmutes, the room closes", function()
    local room = ast.app_name("room")
    with_example(inst, "conference", { args = room }, function(ph, p, app)
      local id1, other1 = ph:call(app)
      ph:answered(id1)
      p:wait_line("joined room " .. room:gsub("%p", "%%%0") .. " %(1 in it%)", "the first caller to join")
      local id2, other2 = ph:call(app)
      ph:answered(id2)
      p:wait_line("joined room " .. room:gsub("%p", "%%%0") .. " %(2 in it%)", "the second caller to join")
      local b = ph:bridge_named("conf-" .. room)
      assert.is_not_nil(b, "a bridge conf-" .. room)
      assert.equals("mixing", b.bridge_type)
      table.sort(b.channels)
      local want = { other1, other2 }
      table.sort(want)
      assert.same(want, b.channels)
      ph:dtmf(id2, "*")
      p:wait_line("%] muted$", "the second caller to be muted")
      ph:dtmf(id2, "*")
      p:wait_line("%] unmuted$", "the second caller to be unmuted")
      ph:hangup(id1)
      ast.poll(function()
        local br = ph:bridge_named("conf-" .. room)
        return br and #br.channels == 1
      end, "the first caller to leave the room")
      ph:hangup(id2)
      ast.poll(function() return ph:bridge_named("conf-" .. room) == nil end, "the room to close")
    end)
  end)

  it("queue: a busy agent is skipped, the next one (arguments) is bridged with the caller", function()
    local function after(ph) -- SIGTERM: the holding bridge is removed
      assert.is_nil(ph:bridge_named("queue-hold"), "the holding bridge is left behind")
    end
    with_example(inst, "queue", { args = "Local/busy@caller Local/s@caller", env = "RING_SECONDS=5", after = after },
      function(ph, p, app)
        local id, other = ph:call(app)
        ph:answered(id)
        p:wait_line("waiting in the queue", "the caller to wait")
        local hold = ph:bridge_named("queue-hold")
        assert.is_not_nil(hold, "the holding bridge")
        assert.equals("holding", hold.bridge_type)
        p:wait_line("Local/busy@caller: busy", "the busy agent")
        p:wait_line("Local/s@caller answered", "the second agent to answer")
        local b
        ast.poll(function()
          b = ph:bridge_of(other)
          return b and b.bridge_type == "mixing" and #b.channels == 2
        end, "the caller and the agent in a bridge")
        local agent
        for _, c in ipairs(b.channels) do if c ~= other then agent = c end end
        ph:hangup(id)
        ast.poll(function() return not ph:exists(agent) end, "the agent to be hung up with the caller")
      end)
  end)

  it("click-to-call: both legs (arguments) bridged; exits 0 by itself when one hangs up", function()
    ast.run(function()
      local app = ast.app_name("ctc")
      local p = spawn(inst, "--app " .. app .. " examples/click-to-call.lua Local/s@caller Local/short@caller")
      p:wait_line("Local/s@caller and Local/short@caller are talking", "both legs to answer")
      assert.equals(0, p:wait_exit("after the call"), p:dump())
      assert.equals(1, p:count("call over"), p:dump())
      assert_clean(p)
    end)
  end)

  it("click-to-call: a busy second leg ($FIRST, $SECOND): goodbye, exits 0 by itself", function()
    ast.run(function()
      local ph = phones(inst)
      local app = ast.app_name("ctc")
      local p = spawn(inst, "--app " .. app .. " examples/click-to-call.lua", "FIRST=Local/s@caller SECOND=Local/busy@caller")
      p:wait_line("Local/busy@caller not reached: busy", "the busy second leg")
      assert.equals(0, p:wait_exit("after the call"), p:dump())
      -- the first leg was hung up
      for _, ch in ipairs(ph.client.channels.list()) do
        assert.is_nil(ch.dialplan and ch.dialplan.app_data and ch.dialplan.app_data:find(app, 1, true) and ch.name,
          "a leg left behind")
      end
      ph:close()
    end)
  end)

  -- The call-audio examples (call:media): the phone plays music on hold
  -- (the caller's audio, as Local/moh@caller would) into the example.
  for _, transport in ipairs { "rtp", "audiosocket", "websocket" } do
    it("echo-bot over " .. transport .. ": the caller's music comes back ($ECHO_SECONDS, $MEDIA_TRANSPORT)", function()
      if transport == "websocket" and not ast.at_least(20) then pending("chan_websocket needs Asterisk 20") return end
      local env = "ECHO_DELAY_MS=200 ECHO_SECONDS=2 MEDIA_TRANSPORT=" .. transport
      if transport == "audiosocket" and not ast.at_least(20) then env = env .. " MEDIA_FORMAT=slin" end
      with_example(inst, "echo-bot", { env = env }, function(ph, p, app)
        local id = ph:call(app)
        ph:answered(id)
        ph.client.channels.startMoh { channelId = id }
        p:wait_line("echoing over " .. transport, "the stream to start")
        local heard, loud = p:wait_line("echoed ([%d.]+) s %(([%d.]+) s of it louder than silence%)", "2 s of echo")
        assert.is_true(tonumber(heard) >= 2, heard)
        -- (the music is quiet in places: some of it is under the bot's level of 300)
        assert.is_true(tonumber(loud) >= 0.2, "the music was heard: " .. loud .. p:dump())
        ph:hung_up(id)
      end)
    end)
  end

  it("silence-recorder: records the caller's music, stops on silence, writes a WAV, hangs up", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. q(dir)))
    with_example(inst, "silence-recorder", { env = "RECORD_DIR=" .. q(dir) .. " SILENCE_MS=1000" }, function(ph, p, app)
      local id = ph:call(app)
      ph:answered(id)
      ph.client.channels.startMoh { channelId = id }
      p:wait_line("the caller has spoken for 1 s", "1 s of music to be heard")
      ph.client.channels.stopMoh { channelId = id }
      local total, speech, path = p:wait_line("recorded ([%d.]+) s %(([%d.]+) s of speech%), ended by silence: (%S+%.wav)",
        "the recording to end on silence")
      assert.is_true(tonumber(speech) >= 1, speech)
      ph:hung_up(id)
      local f = assert(io.open(path, "rb"))
      local wav = f:read("a")
      f:close()
      os.remove(path)
      assert.equals("RIFF", wav:sub(1, 4))
      -- as long as the log says (2 bytes a sample at the WAV's rate; the log rounds to 0.1 s)
      local rate = string.unpack("<I4", wav, 25)
      assert.is_true(math.abs((#wav - 44) / (2 * rate) - tonumber(total)) <= 0.06, #wav .. " bytes for " .. total .. " s")
    end)
    os.execute("rmdir " .. q(dir))
  end)

  it("speech-bridge: the caller's audio reaches the service ($SPEECH_URL), whose audio and hang-up reach the call", function()
    local standin = require "spec.support.speech_standin"
    local svc
    ast.run(function() svc = standin.start { hangup_after_ms = 2000 } end)
    with_example(inst, "speech-bridge", { env = "SPEECH_URL=" .. q(svc.url) }, function(ph, p, app)
      local id = ph:call(app)
      ph:answered(id)
      p:wait_line("service: hello from the stand%-in %(slin%)", "the service's greeting")
      ph.client.channels.startMoh { channelId = id }
      p:wait_line("ended by the service", "the service to end the call")
      ph:hung_up(id)
      assert.equals(1, svc.stats.sessions)
      assert.equals(8000, svc.stats.starts[1].rate) -- slin: RTP, the default transport
      assert.is_true(svc.stats.speech_chunks > 0, "the service heard the music")
    end)
    svc.close()
  end)

  it("dashboard: a snapshot when a call comes and goes (interval argument)", function()
    with_example(inst, "dashboard", { args = "200" }, function(ph, p)
      p:wait_line("==== snapshot 1:", "the first snapshot")
      local ch = ph.client.channels.originate { endpoint = "Local/s@caller", app = ph.app, formats = "ulaw" }
      ph.calls[1] = ch.id
      ph:answered(ch.id)
      p:wait_line(ch.name:gsub("%p", "%%%0"), "the new channel on the dashboard")
      assert.matches("endpoints: %d+", p:out())
      assert.matches("events: %d+ %(.*ChannelCreated=%d", p:out())
    end)
  end)
end)
