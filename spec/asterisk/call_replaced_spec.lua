-- Real Asterisk: another connection registering the same Stasis app name
-- (ApplicationReplaced).  Asterisk then sends the app's events to the new
-- connection only and leaves the old socket open, deaf.  The old app must
-- say so (error log naming the app), end its calls, not reconnect, and the
-- ari-lua host must exit non-zero.
local ast = require "spec.support.asterisk"
local ari = require "ari"
local log = require "ari.log"
local callmod = require "ari.call"
local BIN = os.getenv("ARI_LUA_BIN") or "./ari-lua"

local read = require("spec.support.util").read

ast.describe("real Asterisk: ApplicationReplaced", function(inst)
  it("ends the replaced app and its calls; the new connection gets the calls", function()
    local got = { lines = {} }
    local old_out = log.set_output
    log.set_output { write = function(_, ...) got.lines[#got.lines + 1] = table.concat({ ... }) end, flush = function() end }
    local ok, err = pcall(ast.run, function()
      local name = ast.app_name("repl")
      local a = ari.app { app = name, url = inst.url, user = inst.user, password = inst.password }
      a.on_replaced = function(app) got.replaced = app end
      local hooks = 0
      local leg_number = tostring(math.random(10000000, 99999999))
      a:on_call(function(call, args)
        call:on_hangup(function() hooks = hooks + 1 end)
        call:answer()
        if args[1] == "dial" then
          -- dialling when the app is replaced
          local dok, peer, why, derr = pcall(call.dial, call, "Local/ring@caller",
            { timeout = 20, caller_id = "leg <" .. leg_number .. ">" })
          got.dial = { ok = dok, peer = peer, why = why, err = derr }
          error(dok and derr or peer, 0)
        end
        local wok, werr = pcall(call.get_digits, call, { max = 4, timeout = 20000 })
        got.wait_ok, got.wait_err = wok, werr
        error(werr, 0)
      end)
      a:wait_registered()
      local ch = ast.originate(a.client, "s", name)
      ast.originate(a.client, "s", name, { appArgs = "dial" })
      ast.poll(function()
        if not (a.calls[ch.id] and a.calls[ch.id].channel.state == "Up") then return false end
        for _, c in pairs(a.calls) do if c.state == "dialing" then return true end end
        return false
      end, "a call in the first app, another one dialling")
      -- the same name from another connection
      local b = ari.app { app = name, url = inst.url, user = inst.user, password = inst.password }
      b.on_replaced = function() got.b_replaced = true end
      local b_calls = 0
      b:on_call(function(call) b_calls = b_calls + 1; call:hangup() end)
      ast.poll(function() return got.replaced ~= nil end, "ApplicationReplaced in the first app")
      got.a_active, got.a_hooks, got.a_accepting = a:active(), hooks, a.accepting
      -- the leg being dialled was dropped
      ast.poll(function()
        for _, c in ipairs(b.client.channels.list()) do
          if c.caller and c.caller.number == leg_number then return false end
        end
        return true
      end, "the dialled leg to go")
      got.a_sockets = #a.client._sockets
      -- the channel the first app held was hung up
      ast.poll(function()
        local gok, gerr = pcall(b.client.channels.get, { channelId = ch.id })
        return not gok and gerr.status == 404
      end, "the replaced app's channel to go")
      -- the new connection gets new calls
      b:wait_registered()
      ast.originate(b.client, "s", name)
      ast.poll(function() return b_calls == 1 end, "a call in the second app")
      ast.poll(function() return b:active() == 0 end, "the second app's call to end")
      got.b_replaced_flag = got.b_replaced
      b.client:close()
    end, 30000)
    log.set_output(nil)
    assert(ok, tostring(err))
    assert.is_false(got.wait_ok)
    assert.is_true(callmod.is_hangup(got.wait_err))
    assert.truthy(tostring(got.wait_err):find("replaced", 1, true))
    assert.equals(0, got.a_active)
    assert.equals(2, got.a_hooks)
    -- the dialling call: dial failed saying why, or its wait raised the Hangup error
    local d = got.dial
    if d.ok then
      assert.is_nil(d.peer)
      assert.equals("failed", d.why)
      assert.truthy(tostring(d.err):find("replaced", 1, true), tostring(d.err))
    else
      assert.is_true(callmod.is_hangup(d.peer), tostring(d.peer))
    end
    assert.is_false(got.a_accepting)
    assert.equals(0, got.a_sockets) -- no reconnect: the old socket is closed for good
    assert.is_nil(got.b_replaced_flag)
    local logged = table.concat(got.lines)
    assert.truthy(logged:find("ERROR", 1, true) and logged:find("ApplicationReplaced", 1, true), logged)
    assert.truthy(logged:find(got.replaced.name, 1, true))
    local _ = old_out
  end)

  it("the ari-lua host exits with status 3, saying why", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. ast.sh_quote(dir)))
    local script = dir .. "/app.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
local ari = require "ari"
local app = ari.app()
app:on_call(function(call) call:answer(); call:sleep(60000) end)
]])
    f:close()
    local name = ast.app_name("host")
    local rc_file, out_file = dir .. "/rc", dir .. "/out"
    os.execute(("(%s %s %s >%s 2>&1; echo $? >%s) &"):format(ast.env(inst, name), BIN, ast.sh_quote(script),
      ast.sh_quote(out_file), ast.sh_quote(rc_file)))
    local got = {}
    ast.run(function()
      local client = ari.connect { url = inst.url, user = inst.user, password = inst.password }
      ast.poll(function() return (pcall(client.applications.get, { applicationName = name })) end,
        "the host's app to register")
      local b = ari.app { app = name, url = inst.url, user = inst.user, password = inst.password }
      b.on_replaced = function() end
      b:wait_registered()
      ast.poll(function() return read(rc_file) ~= nil end, "the host to exit", 20000)
      b.client:close()
      client:close()
    end, 40000)
    got.rc = read(rc_file)
    got.out = read(out_file) or ""
    os.execute("rm -rf " .. ast.sh_quote(dir))
    assert.equals("3", got.rc:match("%d+"), got.out)
    assert.truthy(got.out:find("ApplicationReplaced", 1, true), got.out)
    assert.truthy(got.out:find(name, 1, true), got.out)
  end)
end)
