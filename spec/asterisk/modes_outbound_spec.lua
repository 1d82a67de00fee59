-- Real Asterisk: outbound WebSockets, Asterisk connecting to ari-lua
-- (`--listen`, lua/ari/outbound.lua), persistent and per call.  Asterisk 20
-- and later (res_websocket_client, ari.conf type = outbound_websocket);
-- Asterisk 18 has neither.  One private Asterisk for the file, started with
-- an ari.conf and websocket_client.conf made here: a persistent connection
-- for app P, a per-call one for app C, and one with wrong credentials.
local ast = require "spec.support.asterisk"
local ari = require "ari"
local modes = require "spec.support.modes"

local NEEDS = "outbound WebSockets need Asterisk 20.15, 21.10, 22.5 or later (res_websocket_client); this is "
local USER, PASS = "ast", "ws-secret"

ast.describe("real Asterisk: outbound WebSockets (Asterisk connects to ari-lua)", function()
  if not ast.at_least(20) then
    it("persistent and per-call connections", function() pending(NEEDS .. ast.version) end)
    return
  end

  local P = ast.app_name("obp")
  local C = ast.app_name("obc")
  local B = ast.app_name("obb")
  local port_p, port_c, port_b = modes.free_port(), modes.free_port(), modes.free_port()
  local conf, inst

  setup(function()
    conf = modes.conf_dir {
      ["ari.conf"] = modes.ari_conf {
        { name = "conn_p", client = "ws_p", apps = P },
        { name = "conn_c", client = "ws_c", apps = C },
        { name = "conn_b", client = "ws_b", apps = B },
      },
      ["websocket_client.conf"] = modes.ws_client_conf {
        { name = "ws_p", port = port_p, type = "persistent", username = USER, password = PASS },
        { name = "ws_c", port = port_c, type = "per_call_config", username = USER, password = PASS },
        { name = "ws_b", port = port_b, type = "persistent", username = USER, password = "wrong" },
      },
    }
    inst = ast.start { version = ast.version, conf = conf }
  end)
  teardown(function()
    if inst then inst:stop() end
    modes.cleanup(conf)
  end)

  -- the app of a listener on port: answer, play, digits, hang up
  local function listening_app(name, port, st)
    local app = ari.app { app = name, listen = "127.0.0.1:" .. port, user = USER, password = PASS,
      url = inst.url } -- HTTP as well, for binary downloads only
    st.calls = st.calls or {}
    st.registered = st.registered or {}
    app.client:on("ApplicationRegistered", function(ev) st.registered[#st.registered + 1] = ev.application end)
    app:on_call(function(call, args)
      local c = { id = call.id, name = call.channel.name, args = args }
      st.calls[#st.calls + 1] = c
      call:answer()
      c.played = call:play("sound:beep")
      if args[1] ~= "nodigits" then
        c.digits = call:get_digits { max = 4, terminators = "#", timeout = 10000 }
      end
      call:hangup()
      c.done = true
    end)
    return app
  end

  local function http(i) return ari.connect { url = i.url, user = i.user, password = i.password } end

  it("persistent: Asterisk registers the app on ari-lua and a call runs (answer, play, digits, hang-up)", function()
    local st, got = {}, {}
    ast.run(function()
      local app = listening_app(P, port_p, st)
      ast.poll(function() return app.client.outbound.registered[P] end, "Asterisk to connect and register " .. P, 30000)
      local h = http(inst)
      ast.originate(h, "dtmf", P)
      ast.poll(function() return st.calls[1] and st.calls[1].done end, "the call")
      got.info = app.client.asterisk.getInfo().system.version -- a request with no channel in it
      got.connections = app.client.outbound:count()
      got.stats = app.client.outbound.stats
      got.requests = app.client.outbound.transport.stats.requests
      ast.poll(function() return app:active() == 0 end, "the call to end")
      h:close()
      app.client:close()
    end, 60000)
    assert.equals("done", st.calls[1].played)
    assert.equals("123", st.calls[1].digits)
    assert.same({ P }, st.registered)
    assert.matches("^" .. ast.version .. "%.", got.info)
    assert.equals(1, got.connections)
    assert.equals(0, got.stats.refused)
    assert.is_true(got.requests >= 4)
  end)

  it("persistent: ari-lua restarts; Asterisk queued the app's events, reconnects, and the waiting call runs", function()
    local st, got = {}, {}
    ast.run(function()
      -- nobody listens on port_p now (the previous test closed its app)
      local h = http(inst)
      local ch = ast.originate(h, "s", P, { appArgs = "nodigits" })
      -- Asterisk keeps P registered and holds the call's StasisStart
      local apps = h.applications.list()
      for _, a in ipairs(apps) do if a.name == P then got.kept = true end end
      local app = listening_app(P, port_p, st)
      ast.poll(function() return st.calls[1] and st.calls[1].done end, "the queued call to run", 30000)
      got.id = ch.id
      ast.originate(h, "dtmf", P)
      ast.poll(function() return st.calls[2] and st.calls[2].done end, "a new call")
      ast.poll(function() return app:active() == 0 end, "the calls to end")
      h:close()
      app.client:close()
    end, 90000)
    assert.is_true(got.kept, P .. " stays registered while ari-lua is away")
    assert.equals(got.id, st.calls[1].id)
    assert.equals("done", st.calls[1].played)
    assert.equals("123", st.calls[2].digits)
    assert.same({ P }, st.registered)
  end)

  it("per call: each call opens its own connection, for the app '<app>:<channel name>'; both run", function()
    local st, got = {}, {}
    ast.run(function()
      local app = listening_app(C, port_c, st)
      local h = http(inst)
      -- one originated into the app, one dialling it in the dialplan (Stasis(C))
      ast.originate(h, "dtmf", C)
      h.channels.originate { endpoint = "Local/" .. C .. "@stasis-app", context = "caller", extension = "dtmf",
        priority = 1, formats = "ulaw" }
      ast.poll(function() return #st.calls == 2 and st.calls[1].done and st.calls[2].done end, "both calls", 30000)
      ast.poll(function() return app:active() == 0 end, "the calls to end")
      got.connections = app.client.outbound.stats.connections
      -- Asterisk closes each per-call connection once its channel left Stasis
      ast.poll(function() return app.client.outbound:count() == 0 end, "the per-call connections to close")
      got.orphans = next(app.client.outbound.orphans)
      h:close()
      app.client:close()
    end, 60000)
    assert.equals(2, got.connections)
    for _, c in ipairs(st.calls) do
      assert.equals("123", c.digits)
      assert.equals("done", c.played)
    end
    assert.equals(2, #st.registered)
    table.sort(st.registered)
    for _, a in ipairs(st.registered) do assert.matches("^" .. C:gsub("%-", "%%-") .. ":Local/", a) end
    assert.is_nil(got.orphans, "a call that left Stasis is not an orphan")
  end)

  it("per call: the connection breaks mid-call (killed); Asterisk connects again and the call goes on", function()
    if not modes.can_kill_tcp() then
      pending("cannot kill a TCP connection here (ss -K needs root and CONFIG_INET_DIAG_DESTROY)")
      return
    end
    local got, st = {}, { parked = false }
    ast.run(function()
      local app = ari.app { app = C, listen = "127.0.0.1:" .. port_c, user = USER, password = PASS }
      app:on_call(function(call)
        call:answer()
        st.parked = true
        -- the far end sends 123# two seconds after answering
        st.ok, st.digits = pcall(call.get_digits, call, { max = 4, terminators = "#", timeout = 20000 })
        call:hangup()
      end)
      local h = http(inst)
      ast.originate(h, "dtmf", C)
      ast.poll(function() return st.parked and app.client.outbound:count() == 1 end, "the call parked in get_digits")
      -- Asterisk is the client here: its end of the connection to port_c
      got.killed = modes.kill_tcp(port_c)
      ast.poll(function() return st.ok ~= nil end, "the digits", 30000)
      got.connections = app.client.outbound.stats.connections
      ast.poll(function() return app:active() == 0 end, "the call to end")
      h:close()
      app.client:close()
    end, 60000)
    assert.equals(1, got.killed)
    assert.is_true(st.ok, tostring(st.digits))
    assert.equals("123", st.digits)
    assert.equals(2, got.connections)
  end)

  it("per call: nobody listening; Stasis() gives up after reconnect_attempts with STASISSTATUS=FAILED", function()
    local got = {}
    local ctx = "pcfail-" .. C
    local var = ("PCFAIL_" .. C):upper():gsub("%-", "_")
    for _, ext in ipairs {
      "s,1,Stasis(" .. C .. ")",
      "s,2,Set(GLOBAL(" .. var .. ")=${STASISSTATUS})",
      "s,3,Hangup()",
    } do
      local out = inst:cli(ast.sh_quote("dialplan add extension " .. ext .. " into " .. ctx))
      assert(out:find("added", 1, true), out)
    end
    ast.run(function()
      local h = http(inst)
      h.channels.originate { endpoint = "Local/s@" .. ctx, context = "caller", extension = "wait", priority = 1,
        formats = "ulaw" }
      ast.poll(function() return h.asterisk.getGlobalVar { variable = var }.value ~= "" end,
        "Stasis() to give up", 30000)
      got.status = h.asterisk.getGlobalVar { variable = var }.value
      h:close()
    end, 60000)
    assert.equals("FAILED", got.status)
  end)

  it("refuses a connection with the wrong credentials (401), and Asterisk keeps trying", function()
    local got = {}
    ast.run(function()
      local app = ari.app { app = B, listen = "127.0.0.1:" .. port_b, user = USER, password = PASS }
      ast.poll(function() return app.client.outbound.stats.refused >= 2 end, "Asterisk to try and be refused twice",
        30000)
      got.registered = app.client.outbound.registered[B]
      got.count = app.client.outbound:count()
      app.client:close()
    end, 60000)
    assert.is_nil(got.registered)
    assert.equals(0, got.count)
  end)

  it("persistent: the ari-lua process (--listen) is stopped and started again; Asterisk reconnects to each", function()
    local dir = modes.conf_dir {
      ["worker.lua"] = [[
local ari = require "ari"
local out = assert(os.getenv("OB_OUT"))
local function note(s) local f = assert(io.open(out, "a")); f:write(s, "\n"); f:close() end
local app = ari.app()
app.client:on("ApplicationRegistered", function(ev) note("registered " .. ev.application) end)
app:on_call(function(call, args)
  call:answer()
  call:play("sound:beep")
  note("call " .. call.id .. " " .. tostring(args[1]))
  call:hangup()
end)
]] }
    local out = dir .. "/out.txt"
    local function lines()
      local f = io.open(out)
      if not f then return {} end
      local t = {}
      for l in f:lines() do t[#t + 1] = l end
      f:close()
      return t
    end
    local function has(line)
      for _, l in ipairs(lines()) do if l == line then return true end end
      return false
    end
    local function start_worker(n)
      local cmd = ("cd %s && OB_OUT=%s exec ./ari-lua --listen 127.0.0.1:%d --user %s --password %s --app %s "
        .. "--url %s %s"):format(ast.sh_quote(os.getenv("PWD") or "."), ast.sh_quote(out), port_p, USER, PASS, P,
        ast.sh_quote(inst.url), ast.sh_quote(dir .. "/worker.lua"))
      local p = io.popen("(" .. cmd .. ") >" .. ast.sh_quote(dir .. "/worker" .. n .. ".log") .. " 2>&1 & echo $!")
      local pid = tonumber(p:read("l"))
      p:close()
      return assert(pid)
    end
    local function stop_worker(pid)
      os.execute("kill -TERM " .. pid .. "; while kill -0 " .. pid .. " 2>/dev/null; do sleep 0.05; done")
    end
    local got, pids = {}, {}
    local ok, err = pcall(ast.run, function()
      local h = http(inst)
      pids[1] = start_worker(1)
      ast.poll(function() return has("registered " .. P) end, "Asterisk to connect to worker 1", 30000)
      local c1 = ast.originate(h, "s", P, { appArgs = "first" })
      ast.poll(function() return has("call " .. c1.id .. " first") end, "worker 1 to run a call")
      stop_worker(pids[1])
      -- nobody listens: Asterisk queues this call's events for P
      local c2 = ast.originate(h, "s", P, { appArgs = "second" })
      pids[2] = start_worker(2)
      ast.poll(function() return has("call " .. c2.id .. " second") end, "worker 2 to run the queued call", 30000)
      local c3 = ast.originate(h, "s", P, { appArgs = "third" })
      ast.poll(function() return has("call " .. c3.id .. " third") end, "worker 2 to run a new call")
      stop_worker(pids[2])
      pids = {}
      got.lines = lines()
      h:close()
    end, 90000)
    for _, pid in ipairs(pids) do os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
    if not ok then
      local f = io.open(dir .. "/worker1.log")
      local log1 = f and f:read("a") or ""
      if f then f:close() end
      modes.cleanup(dir)
      error(tostring(err) .. "\nworker 1 log:\n" .. log1, 0)
    end
    modes.cleanup(dir)
    local regs = 0
    for _, l in ipairs(got.lines) do if l == "registered " .. P then regs = regs + 1 end end
    assert.equals(2, regs, table.concat(got.lines, "\n"))
  end)

  it("persistent: the app is offered a StasisBroadcast call and claims it over the socket", function()
    local ctx = "obclaim-" .. P
    for _, ext in ipairs {
      "555,1,StasisBroadcast(5000,^" .. P .. "$,opt:x,yes)",
      "555,2,Hangup()",
    } do
      local out = inst:cli(ast.sh_quote("dialplan add extension " .. ext .. " into " .. ctx))
      assert(out:find("added", 1, true), out)
    end
    local got = {}
    ast.run(function()
      local app = ari.app { app = P, listen = "127.0.0.1:" .. port_p, user = USER, password = PASS }
      app:on_broadcast(function(ev) got.offer = ev; return true end)
      app:on_call(function(call, args)
        got.args = args
        call:answer()
        call:hangup()
        got.done = true
      end)
      ast.poll(function() return app.client.outbound.registered[P] end, "Asterisk to register " .. P, 30000)
      local h = http(inst)
      h.channels.originate { endpoint = "Local/555@" .. ctx, context = "caller", extension = "wait", priority = 1,
        formats = "ulaw" }
      ast.poll(function() return got.done end, "the claimed call to run")
      ast.poll(function() return app:active() == 0 end, "the call to end")
      got.claims = app.claims
      got.ws_requests = app.client.outbound.transport.stats.requests
      h:close()
      app.client:close()
    end, 60000)
    assert.equals("555", got.offer.called)
    assert.same({ "opt", "x" }, got.args)
    assert.same({ offered = 1, claimed = 1, lost = 0, declined = 0, failed = 0 }, got.claims)
    assert.is_true(got.ws_requests >= 3) -- the claim, answer and hang-up went over the socket
  end)

  it("persistent: Asterisk crashes and restarts mid-call; the call ends, Asterisk reconnects, a new call runs", function()
    local st, got = { parked = 0 }, {}
    ast.run(function()
      local app = ari.app { app = P, listen = "127.0.0.1:" .. port_p, user = USER, password = PASS }
      local regs = 0
      app.client:on("ApplicationRegistered", function() regs = regs + 1 end)
      st.calls = {}
      app:on_call(function(call, args)
        local c = { id = call.id }
        st.calls[#st.calls + 1] = c
        call:on_hangup(function() c.hook = true end)
        call:answer()
        if args[1] == "park" then
          st.parked = st.parked + 1
          c.ok, c.err = pcall(call.get_digits, call, { max = 10, timeout = 600000 })
        else
          call:play("sound:beep")
          call:hangup()
          c.ok = true
        end
      end)
      ast.poll(function() return regs >= 1 end, "Asterisk to register " .. P, 30000)
      local h = http(inst)
      ast.originate(h, "s", P, { appArgs = "park" })
      ast.poll(function() return st.parked == 1 end, "a call parked in get_digits")
      h:close()
      modes.crash_restart(inst, false)
      ast.poll(function() return app:active() == 0 end, "the parked call to end", 60000)
      got.regs_after = regs
      ast.poll(function() return regs >= 2 end, "Asterisk to come back and register again", 60000)
      h = http(inst)
      ast.originate(h, "s", P, { appArgs = "new" })
      ast.poll(function() return st.calls[2] and st.calls[2].ok ~= nil end, "a new call")
      ast.poll(function() return app:active() == 0 end, "the new call to end")
      got.resyncs = app.resyncs
      h:close()
      app.client:close()
    end, 120000)
    local c = st.calls[1]
    assert.is_false(c.ok)
    assert.is_true(type(c.err) == "table" and c.err.hangup == true, tostring(c.err))
    assert.is_true(c.hook)
    assert.is_true(st.calls[2].ok)
    assert.is_true((got.resyncs or 0) >= 1)
  end)
end)
