-- Call claiming: CallBroadcast -> events.claim -> StasisStart, with several
-- workers (ari.app + app:on_broadcast) racing for the same calls.
local ari = require "ari"
local broadcast = require "ari.sim.broadcast"
local util = require "spec.support.util"

local wait_until = util.waiter(5000)
local with_sim = util.with_sim

local function worker(sim, name, runs, opts)
  local app = ari.app { app = name, url = sim.url, user = "asterisk", password = "asterisk",
    transport = opts and opts.transport }
  app:on_call(function(call, args)
    runs[#runs + 1] = { id = call.id, app = name, args = args }
    call:answer()
    call:play("sound:beep")
    call:hangup()
  end)
  return app
end

describe("call claiming", function()
  it("runs each broadcast call exactly once across several workers", function()
    with_sim(function(sim)
      local runs = {}
      local apps = {}
      for i = 1, 3 do
        apps[i] = worker(sim, "ivr-" .. i, runs, { transport = i == 3 and "websocket" or nil })
        apps[i]:on_broadcast(true)
      end
      wait_until(function()
        return sim:app_active("ivr-1") and sim:app_active("ivr-2") and sim:app_active("ivr-3")
      end, 3000, "workers registered")
      local ended, N = 0, 12
      for i = 1, N do
        broadcast.place_call(sim, { from = tostring(1000 + i), to = "555", timeout = 2000, app_filter = "^ivr%-",
          args = "sales:vip", notify_claimed = true, script = { { "wait_hangup", timeout = 20000 } } },
          function() ended = ended + 1 end)
      end
      wait_until(function() return ended == N end, 10000, "all calls ended")
      assert.equals(N, #runs)
      local seen = {}
      for _, r in ipairs(runs) do
        assert.is_nil(seen[r.id], "call " .. r.id .. " ran twice")
        seen[r.id] = true
        assert.same({ "sales", "vip" }, r.args)
      end
      local claimed, lost, offered = 0, 0, 0
      for _, a in ipairs(apps) do
        claimed = claimed + a.claims.claimed
        lost = lost + a.claims.lost
        offered = offered + a.claims.offered
      end
      assert.equals(N, claimed)
      assert.equals(3 * N, offered)
      assert.equals(2 * N, lost)
      assert.equals(0, #sim.channel_order)
      for _, a in ipairs(apps) do a.client:close() end
    end)
  end)

  it("lets on_broadcast decline, and an unclaimed call times out", function()
    with_sim(function(sim)
      local runs = {}
      local sales = worker(sim, "sales", runs)
      local support = worker(sim, "support", runs)
      sales:on_broadcast(function(ev) return ev.called == "100" end)
      support:on_broadcast(function(ev)
        ari.sleep(10) -- decisions may wait
        return ev.called == "200"
      end)
      wait_until(function() return sim:app_active("sales") and sim:app_active("support") end, 3000)
      local done = {}
      broadcast.place_call(sim, { to = "100", channel_id = "bc-100", timeout = 2000 }, function(ch) done[ch.id] = ch end)
      broadcast.place_call(sim, { to = "200", channel_id = "bc-200", timeout = 2000 }, function(ch) done[ch.id] = ch end)
      broadcast.place_call(sim, { to = "300", channel_id = "bc-300", timeout = 1000 }, function(ch) done[ch.id] = ch end)
      wait_until(function() return done["bc-100"] and done["bc-200"] and done["bc-300"] end, 5000)
      table.sort(runs, function(a, b) return a.id < b.id end)
      assert.equals(2, #runs)
      assert.same({ "bc-100", "sales" }, { runs[1].id, runs[1].app })
      assert.same({ "bc-200", "support" }, { runs[2].id, runs[2].app })
      assert.equals("TIMEOUT", done["bc-300"].vars.STASISSTATUS)
      assert.equals(2, sales.claims.declined)
      assert.equals(1, sales.claims.claimed)
      sales.client:close(); support.client:close()
    end)
  end)

  it("a claim after the winner gets 409, and one for no broadcast 404", function()
    with_sim(function(sim)
      local c = ari.connect { url = sim.url, user = "asterisk", password = "asterisk", app = "x1" }
      local c2 = ari.connect { url = sim.url, user = "asterisk", password = "asterisk", app = "x2" }
      wait_until(function() return sim:app_active("x1") and sim:app_active("x2") end, 3000)
      broadcast.place_call(sim, { channel_id = "bc-1", timeout = 2000, script = { { "sleep", 500 }, { "hangup" } } })
      assert.is_true(c.events.claimChannel { channelId = "bc-1", application = "x1" })
      local ok, err = pcall(c2.events.claimChannel, { channelId = "bc-1", application = "x2" })
      assert.is_false(ok)
      assert.equals(409, err.status)
      ok, err = pcall(c2.events.claimChannel, { channelId = "nothing", application = "x2" })
      assert.is_false(ok)
      assert.equals(404, err.status)
      c:close(); c2:close()
    end)
  end)
end)
