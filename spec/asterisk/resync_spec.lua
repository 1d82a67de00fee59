-- Real Asterisk: calls across a restart of Asterisk and across a dropped
-- events socket (lua/ari/resync.lua).  Each test runs its own private
-- Asterisk (it is restarted or has its connections killed).
local ast = require "spec.support.asterisk"
local ari = require "ari"
local modes = require "spec.support.modes"

-- An app with two calls parked: one in get_digits, one in play (a tone
-- that never ends by itself).  Returns the app and a table the calls fill.
local function parked_app(inst, transport)
  local name = ast.app_name("rsy")
  local app = ari.app { app = name, url = inst.url, user = inst.user, password = inst.password, transport = transport }
  local st = { calls = {}, hooks = 0, ends = {}, playing = 0 }
  app.client:on("PlaybackStarted", function() st.playing = st.playing + 1 end)
  app:on_call(function(call, args)
    local me = { id = call.id }
    st.calls[#st.calls + 1] = me
    local what = args[1] or (#st.calls % 2 == 1 and "digits" or "play")
    me.what = what
    call:on_hangup(function() st.hooks = st.hooks + 1 end)
    call:answer()
    me.parked = true
    local ok, err = pcall(function()
      if what == "digits" then
        return call:get_digits { max = 10, timeout = 600000 }
      elseif what == "play" then
        return call:play("tone:ring;tonezone=us")
      else
        call:play("sound:beep")
        call:hangup()
        return "done"
      end
    end)
    me.ok, me.err = ok, err
  end)
  app.on_end = function(call, outcome) st.ends[call.id] = outcome end
  return app, name, st
end

local function park_two(app, name, st)
  ast.poll(function() return app.client.stats.connects > 0 end, "the events socket")
  ast.originate(app.client, "s", name)
  ast.originate(app.client, "s", name)
  ast.poll(function() return #st.calls == 2 and st.calls[1].parked and st.calls[2].parked and st.playing >= 1 end,
    "two calls parked in get_digits and play")
end

-- After the restart: both calls ended as hang-ups, hooks ran, nothing
-- left; the socket came back by itself and a new call runs to its end.
local function after_restart(app, name, st, got)
  ast.poll(function() return app:active() == 0 end, "the parked calls to end", 60000)
  ast.poll(function() return app.client.stats.connects > 1 end, "the events socket to come back", 60000)
  got.calls = { st.calls[1], st.calls[2] }
  got.hooks = st.hooks
  got.ends = {}
  for _, c in ipairs(got.calls) do got.ends[#got.ends + 1] = st.ends[c.id] end
  -- a new call after the restart
  local n = #st.calls
  app.client.channels.originate { endpoint = "Local/s@caller", app = name, appArgs = "new", formats = "ulaw" }
  ast.poll(function() return #st.calls > n and st.calls[n + 1].ok ~= nil end, "the new call to run")
  got.new = st.calls[n + 1]
  ast.poll(function() return app:active() == 0 end, "the new call to end")
  got.active = app:active()
end

local function check(got)
  for _, c in ipairs(got.calls) do
    assert.is_false(c.ok, c.what .. ": the parked wait raised")
    assert.is_true(type(c.err) == "table" and c.err.hangup == true, c.what .. ": a Hangup error, got " .. tostring(c.err))
  end
  local whats = { got.calls[1].what, got.calls[2].what }
  table.sort(whats)
  assert.same({ "digits", "play" }, whats)
  assert.equals(2, got.hooks)
  assert.equals(2, #got.ends)
  assert.is_true(got.new.ok, "the new call: " .. tostring(got.new.err))
  assert.equals("done", got.new.err)
  assert.equals(0, got.active)
end

local function with_instance(fn)
  local inst = ast.start { version = ast.version }
  local ok, err = pcall(fn, inst)
  inst:stop()
  if not ok then error(err, 0) end
end

ast.describe("real Asterisk restarts in the middle of calls #core", function()
  it("crash (kill -9) and start again: parked calls end with Hangup, hooks run, the client reconnects, new calls work",
    function()
      local got = {}
      with_instance(function(inst)
        ast.run(function()
          local app, name, st = parked_app(inst)
          park_two(app, name, st)
          -- in the background: the loop keeps running, sees the socket
          -- die and retries until Asterisk is back
          modes.crash_restart(inst, false)
          after_restart(app, name, st, got)
          got.resyncs = app.resyncs
          app.client:close()
        end, 120000)
      end)
      check(got)
      -- the calls' channels vanished with the crash: only resync could end them
      assert.is_true((got.resyncs or 0) >= 1)
      for _, c in ipairs(got.calls) do assert.equals("resync", c.err.event) end
    end)

  it("graceful restart (inst:restart()): parked calls end with Hangup, the client reconnects, new calls work", function()
    local got = {}
    with_instance(function(inst)
      ast.run(function()
        local app, name, st = parked_app(inst)
        park_two(app, name, st)
        inst:restart()
        after_restart(app, name, st, got)
        app.client:close()
      end, 120000)
    end)
    check(got)
  end)
end)

ast.describe("real Asterisk restarts in the middle of calls, REST over the WebSocket", function()
  it("crash and start again with transport = 'websocket': parked calls end, the client reconnects, new calls work",
    function()
      if not ast.at_least(20) then
        pending("REST over the events WebSocket needs Asterisk 20.14, 21.9, 22.4 or later (this is " .. ast.version .. ")")
        return
      end
      local got = {}
      with_instance(function(inst)
        ast.run(function()
          local app, name, st = parked_app(inst, "websocket")
          park_two(app, name, st)
          modes.crash_restart(inst, false)
          after_restart(app, name, st, got)
          got.in_flight = app.client.rest_ws:in_flight()
          app.client:close()
        end, 120000)
      end)
      check(got)
      assert.equals(0, got.in_flight)
    end)
end)

ast.describe("real Asterisk: the events socket drops, Asterisk stays up", function()
  it("a call whose channel hung up meanwhile ends (resync); the other goes on and still gets its events", function()
    if not modes.can_kill_tcp() then
      pending("cannot kill a TCP connection here (ss -K needs root and CONFIG_INET_DIAG_DESTROY)")
      return
    end
    local got = {}
    with_instance(function(inst)
      ast.run(function()
        local app, name, st = parked_app(inst)
        park_two(app, name, st)
        local gone, stays = st.calls[1], st.calls[2]
        -- kill the socket and hang one channel up before the loop runs
        -- again: Asterisk's hang-up events for it go nowhere
        got.killed = modes.kill_tcp(inst.port)
        modes.curl(inst, "DELETE", "/channels/" .. gone.id)
        ast.poll(function() return gone.ok ~= nil end, "the vanished call to end")
        ast.poll(function() return app.resyncs ~= nil end, "the resync")
        got.gone = { ok = gone.ok, err = gone.err }
        got.stays_active = app:active()
        got.stays_ok = stays.ok
        -- the survivor's events still arrive on the new socket
        app.client.channels.hangup { channelId = stays.id }
        ast.poll(function() return stays.ok ~= nil end, "the other call to see its hang-up")
        got.stays = { ok = stays.ok, err = stays.err }
        got.hooks = st.hooks
        got.connects = app.client.stats.connects
        app.client:close()
      end, 120000)
    end)
    assert.is_true(got.killed > 0)
    assert.is_false(got.gone.ok)
    assert.equals("resync", got.gone.err.event)
    assert.equals(1, got.stays_active)
    assert.is_nil(got.stays_ok)
    assert.is_false(got.stays.ok)
    assert.is_true(got.stays.err.hangup)
    assert.is_not.equal("resync", got.stays.err.event)
    assert.equals(2, got.hooks)
    assert.equals(2, got.connects)
  end)
end)
