-- Real Asterisk: call claiming (StasisBroadcast, CallBroadcast, POST
-- /events/claim, CallClaimed; lua/ari/claim.lua).  Asterisk 20.20, 22.10,
-- 23.4 and later (app_stasis_broadcast, res_stasis_broadcast); not 18.
-- The broadcasting dialplan is added to the running Asterisk with the CLI
-- (`dialplan add extension`) in a context of this run's own.
local ast = require "spec.support.asterisk"
local ari = require "ari"

local NEEDS = "call claiming (StasisBroadcast, /events/claim) needs Asterisk 20.20, 22.10, 23.4 or later (this is "

-- A context whose extension 555 broadcasts to the apps matching ^prefix
-- and hangs up when nobody claimed.
local function broadcast_context(inst, prefix, notify, timeout)
  local ctx = "claim-" .. prefix
  local function add(ext)
    local out = inst:cli(ast.sh_quote("dialplan add extension " .. ext .. " into " .. ctx))
    assert(out:find("added", 1, true), "dialplan add failed: " .. out)
  end
  add(("555,1,StasisBroadcast(%d,^%s-,sales:vip,%s)"):format(timeout or 5000, prefix, notify and "yes" or "no"))
  add("555,2,Set(GLOBAL(" .. prefix:upper():gsub("%-", "_") .. ")=${STASISSTATUS})")
  add("555,3,Hangup()")
  return ctx, prefix:upper():gsub("%-", "_")
end

-- Worker apps prefix-1..n; decide[i](ev) says whether worker i claims.
local function workers(inst, prefix, decide, transport)
  local ws = {}
  for i, fn in ipairs(decide) do
    local name = prefix .. "-" .. i
    local app = ari.app { app = name, url = inst.url, user = inst.user, password = inst.password, transport = transport }
    local w = { app = app, name = name, calls = {}, claimed_events = {}, offers = {} }
    app.client:on("CallClaimed", function(ev) w.claimed_events[#w.claimed_events + 1] = ev end)
    app:on_broadcast(function(ev)
      w.offers[#w.offers + 1] = ev
      return fn(ev)
    end)
    app:on_call(function(call, args)
      w.calls[#w.calls + 1] = { id = call.id, args = args, name = call.channel.name }
      call:answer()
      call:hangup()
    end)
    ws[i] = w
  end
  ast.poll(function()
    for _, w in ipairs(ws) do if w.app.client.stats.connects == 0 then return false end end
    return true
  end, "the workers' sockets")
  return ws
end

local function total(ws, field)
  local n = 0
  for _, w in ipairs(ws) do n = n + w.app.claims[field] end
  return n
end

local function place(client, ctx)
  -- ;2 runs the broadcast; ;1 waits in [caller] like a calling phone
  return client.channels.originate { endpoint = "Local/555@" .. ctx, context = "caller", extension = "wait",
    priority = 1, formats = "ulaw" }
end

local function close_all(ws) for _, w in ipairs(ws) do w.app.client:close() end end

ast.describe("real Asterisk: call claiming", function(inst)
  if not ast.at_least(20) then
    it("CallBroadcast, /events/claim, CallClaimed", function() pending(NEEDS .. ast.version .. ")") end)
    return
  end

  for _, transport in ipairs { "http", "websocket" } do
    it("two workers both claim: exactly one wins and runs the call with the dialplan's args (REST over " .. transport
      .. ")", function()
      local got = {}
      ast.run(function()
        local prefix = ast.app_name("clm")
        local ctx = broadcast_context(inst, prefix, true)
        local ws = workers(inst, prefix, { function() return true end, function() return true end }, transport)
        place(ws[1].app.client, ctx)
        ast.poll(function() return total(ws, "claimed") + total(ws, "lost") == 2 end, "both claims to be answered")
        ast.poll(function() return total(ws, "offered") == 2 and #ws[1].calls + #ws[2].calls == 1 end,
          "the winner's call")
        ast.poll(function() return ws[1].app:active() + ws[2].app:active() == 0 end, "the call to end")
        ast.poll(function() return #ws[1].claimed_events == 1 and #ws[2].claimed_events == 1 end,
          "CallClaimed at both workers")
        got.ws = ws
        close_all(ws)
      end)
      local ws = got.ws
      assert.equals(1, total(ws, "claimed"))
      assert.equals(1, total(ws, "lost"))
      assert.equals(0, total(ws, "failed"))
      local winner = ws[1].app.claims.claimed == 1 and ws[1] or ws[2]
      assert.equals(1, #winner.calls)
      assert.same({ "sales", "vip" }, winner.calls[1].args)
      -- the offer named the channel that then arrived, and the number dialled
      for _, w in ipairs(ws) do
        assert.equals(1, #w.offers)
        assert.equals(winner.calls[1].id, w.offers[1].channel.id)
        assert.equals("555", w.offers[1].called)
        assert.equals(winner.name, w.claimed_events[1].winner_app)
        assert.equals(winner.calls[1].id, w.claimed_events[1].channel.id)
      end
    end)
  end

  it("a worker that declines leaves the call to the other; without notify_claimed no CallClaimed comes", function()
    local got = {}
    ast.run(function()
      local prefix = ast.app_name("cld")
      local ctx = broadcast_context(inst, prefix, false)
      local ws = workers(inst, prefix, { function() return false end, function(ev) return ev.called == "555" end })
      place(ws[1].app.client, ctx)
      ast.poll(function() return #ws[2].calls == 1 and ws[2].app:active() == 0 end, "worker 2's call to run and end")
      ast.poll(function() return ws[1].app.claims.declined == 1 end, "worker 1 to decline")
      got.ws = ws
      -- CallClaimed would have come before the call's StasisStart
      got.claimed_events = #ws[1].claimed_events + #ws[2].claimed_events
      close_all(ws)
    end)
    local ws = got.ws
    assert.equals(0, #ws[1].calls)
    assert.same({ offered = 1, claimed = 0, lost = 0, declined = 1, failed = 0 }, ws[1].app.claims)
    assert.same({ offered = 1, claimed = 1, lost = 0, declined = 0, failed = 0 }, ws[2].app.claims)
    assert.equals(0, got.claimed_events)
  end)

  it("nobody claims: the dialplan goes on with STASISSTATUS=TIMEOUT; a late claim gets 404 ('gone')", function()
    local got = {}
    ast.run(function()
      local prefix = ast.app_name("clt")
      local ctx, var = broadcast_context(inst, prefix, true, 300)
      local ws = workers(inst, prefix, { function() return false end })
      local ch = place(ws[1].app.client, ctx)
      ast.poll(function() return ws[1].app.claims.declined == 1 end, "the offer to be declined")
      ast.poll(function()
        local ok, v = pcall(ws[1].app.client.asterisk.getGlobalVar, { variable = var })
        return ok and v.value ~= ""
      end, "the dialplan to go on after the broadcast")
      got.status = ws[1].app.client.asterisk.getGlobalVar { variable = var }.value
      local ok, err = pcall(ws[1].app.client.events.claimChannel,
        { channelId = ws[1].offers[1].channel.id, application = ws[1].name })
      got.late = { ok = ok, status = type(err) == "table" and err.status, msg = tostring(err) }
      local won, why = require("ari.claim").claim(ws[1].app, ws[1].offers[1].channel.id)
      got.claim = { won = won, why = why }
      got.calls = #ws[1].calls
      pcall(ws[1].app.client.channels.hangup, { channelId = ch.id })
      close_all(ws)
    end)
    assert.equals("TIMEOUT", got.status)
    assert.is_false(got.late.ok)
    assert.equals(404, got.late.status, got.late.msg)
    assert.is_false(got.claim.won)
    assert.equals("gone", got.claim.why)
    assert.equals(0, got.calls)
  end)
end)
