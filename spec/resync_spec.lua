-- After the events socket comes back, the app reconciles its calls with
-- Asterisk (ari.resync): calls whose channels vanished meanwhile end as
-- hang-ups, the others go on.  Also the per-call time limit.
local callsim = require "spec.support.callsim"

-- close every events socket of the sim from the server side, silently
local function drop_sockets(sim)
  for _, a in pairs(sim.apps) do
    for s in pairs(a.sessions) do
      if s.on_close then pcall(s.on_close) end
      s.close()
    end
  end
end

describe("resync after reconnect", function()
  it("ends calls whose channel vanished while disconnected and keeps the others", function()
    local got, outcome, ended_at, started_at = {}, {}, {}, nil
    local r = callsim.run({ calls = {
      { from = "1001", script = {
        { "wait_answer" }, { "sleep", 60000 }, { "dtmf", "5" }, { "wait_hangup", timeout = 400000 } } },
      { from = "1002", script = {
        { "wait_answer" }, { "sleep", 2000 },
        { "call", function(sim) drop_sockets(sim) end },
        { "hangup" } } },      -- happens while the app is disconnected: no event reaches it
    } }, function(app)
      started_at = require("ari").now()
      app.on_end = function(call, how) outcome[call.channel.caller.number] = how
        ended_at[call.channel.caller.number] = require("ari").now() end
      app:on_call(function(call)
        call:answer()
        got[call.channel.caller.number] = call:get_digits { max = 1, timeout = 15000 }
      end)
    end, { timeout = 20000 })
    assert.equals("5", got["1001"])
    assert.equals("normal", outcome["1001"])
    assert.equals("hangup", outcome["1002"])
    assert.is_nil(got["1002"])
    -- ended by the resync, long before its 15 s digit timeout
    assert.is_true(ended_at["1002"] - started_at < 10000, "1002 ended after " .. (ended_at["1002"] - started_at) .. " ms")
    assert.is_true((r.app.resyncs or 0) >= 1)
    assert.equals(0, r.app:active())
  end)

  it("a restarted Asterisk with no channels ends every call", function()
    local outcome = {}
    local r = callsim.run({ calls = {
      { from = "1001", script = { { "wait_answer" }, { "wait_hangup", timeout = 400000 } } },
      { from = "1002", script = { { "wait_answer" }, { "sleep", 2000 },
        { "call", function(sim) -- drop the sockets, then the restart
          drop_sockets(sim)
          -- the restart: every channel goes while no app is connected
          local ids = {}
          for id in pairs(sim.channels) do ids[#ids + 1] = id end
          for _, id in ipairs(ids) do
            local ch = sim:find_channel(id)
            if ch then sim:hangup(ch, 16) end
          end
        end } } },
    } }, function(app)
      app.on_end = function(call, how) outcome[call.channel.caller.number] = how end
      app:on_call(function(call)
        call:answer()
        call:get_digits { max = 1, timeout = 15000 }
      end)
    end, { timeout = 20000 })
    assert.equals("hangup", outcome["1001"])
    assert.equals("hangup", outcome["1002"])
    assert.equals(0, r.app:active())
  end)
end)

describe("max_call_duration", function()
  it("hangs up a call whose script waits too long; other calls are untouched", function()
    local outcome = {}
    local r = callsim.run({ calls = {
      { from = "1001", script = { { "wait_answer" }, { "wait_hangup", timeout = 400000 } } },
      { from = "1002", script = { { "wait_answer" }, { "sleep", 1000 }, { "dtmf", "1" }, { "wait_hangup", timeout = 400000 } } },
    } }, function(app)
      app.max_call_duration = 300
      app.on_end = function(call, how) outcome[call.channel.caller.number] = how end
      app:on_call(function(call)
        call:answer()
        if call.channel.caller.number == "1001" then
          call:wait("NeverHappens")          -- stuck
        else
          call:get_digits { max = 1, timeout = 5000 }
        end
      end)
    end, { timeout = 20000 })
    assert.equals("hangup", outcome["1001"])
    assert.equals("normal", outcome["1002"])
    assert.equals(1, r.app:stats().timed_out or r.app.counters.timed_out)
  end)
end)

describe("ari.resync.run", function()
  it("ends only calls known before the channel list was asked for (a call started meanwhile is not in it)", function()
    local resync = require "ari.resync"
    local marked = {}
    local function mkcall(id)
      return { id = id, log = { info = function() end }, _mark_hungup = function(self, why) marked[self.id] = why end }
    end
    local app = { name = "t", calls = { old = mkcall("old"), live = mkcall("live") } }
    app.client = {
      channels = { list = function()
        -- StasisStart of a new call arrives while the list is on its way
        app.calls.new = mkcall("new")
        return { { id = "live" } }
      end },
      applications = { get = function() return {} end },
    }
    assert.equals(1, resync.run(app))
    assert.same({ old = "resync" }, marked)
  end)
end)

describe("ari.resync.run retries", function()
  local resync = require "ari.resync"
  local errors = require "ari.errors"
  local function mkcall(id, marked)
    return { id = id, log = { info = function() end }, _mark_hungup = function(self, why) marked[self.id] = why end }
  end

  it("asks again while Asterisk answers 503 (not booted yet), then ends the vanished calls", function()
    local marked, tries = {}, 0
    local app = { name = "t", calls = {} }
    app.calls.a = mkcall("a", marked)
    app.client = {
      channels = { list = function()
        tries = tries + 1
        if tries < 3 then error(errors.new { kind = "http", status = 503, message = "Asterisk not booted" }, 0) end
        return {}
      end },
      applications = { get = function() return {} end },
    }
    local n
    require("ari").run(function() n = resync.run(app) end)
    assert.equals(3, tries)
    assert.equals(1, n)
    assert.same({ a = "resync" }, marked)
  end)

  it("does not retry a 4xx and ends nothing", function()
    local marked, tries = {}, 0
    local app = { name = "t", calls = {} }
    app.calls.a = mkcall("a", marked)
    app.client = {
      channels = { list = function()
        tries = tries + 1
        error(errors.new { kind = "http", status = 401, message = "Unauthorized" }, 0)
      end },
      applications = { get = function() return {} end },
    }
    local n, err
    require("ari").run(function() n, err = resync.run(app) end)
    assert.equals(1, tries)
    assert.is_nil(n)
    assert.equals(401, err.status)
    assert.same({}, marked)
  end)
end)
