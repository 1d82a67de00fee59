-- Real Asterisk: REST over the events WebSocket (transport = "websocket",
-- lua/ari/wstransport.lua).  Asterisk 20 and later (20.14, 21.9, 22.4);
-- Asterisk 18 has no RESTRequest/RESTResponse.
local ast = require "spec.support.asterisk"
local ari = require "ari"
local sched = require "ari.sched"
local modes = require "spec.support.modes"

local function ws_client(inst, name, extra)
  local o = { app = name, url = inst.url, user = inst.user, password = inst.password, transport = "websocket" }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

ast.describe("real Asterisk: REST over the events WebSocket", function(inst)
  if not ast.at_least(20) then
    it("Asterisk " .. ast.version .. " has no REST over WebSocket: transport = 'websocket' gives a clear error, not a hang",
      function()
        local err
        ast.run(function()
          local c
          local ok, e = pcall(function()
            c = ari.connect(ws_client(inst, ast.app_name("rws"), { timeout = 15000 }))
            return c.asterisk.getInfo()
          end)
          if c then c:close() end
          assert.is_false(ok, "a request over the WebSocket cannot succeed on Asterisk " .. ast.version)
          err = e
        end, 60000)
        -- a clear error: it names the WebSocket transport, and it is not a
        -- bare 'no answer within N ms'
        assert.matches("[Ww]eb[Ss]ocket", tostring(err))
        assert.matches("20", tostring(err)) -- the version that has it
        assert.is_not.equal("timeout", type(err) == "table" and err.transport or nil)
      end)
    it("Asterisk " .. ast.version .. ": the other REST-over-WebSocket tests", function()
      pending("REST over the events WebSocket needs Asterisk 20.14, 21.9, 22.4 or later (this is " .. ast.version .. ")")
    end)
    return
  end

  it("runs a full call over the socket: answer, play, digits, record, hang-up (binary download over HTTP)", function()
    local got = {}
    ast.run(function()
      local name = ast.app_name("rws")
      local app = ari.app(ws_client(inst, name))
      local rec = "rws-" .. name
      app:on_call(function(call)
        call:answer()
        got.state = call.channel.state
        got.played = call:play("sound:beep")
        got.digits = call:get_digits { max = 4, terminators = "#", timeout = 10000 }
        got.rec = call:record { name = rec, format = "wav", max_duration = 1, terminate_on = "none" }
        call:hangup()
      end)
      local done
      app.on_end = function(_, outcome) done = outcome end
      ast.poll(function() return app.client.stats.connects > 0 end, "the events socket")
      local before = app.client.rest_ws.stats.requests
      ast.originate(app.client, "dtmf", name)
      ast.poll(function() return done ~= nil end, "the call to end")
      got.outcome = done
      got.requests = app.client.rest_ws.stats.requests - before
      -- a binary response cannot come over the socket: HTTP takes it
      local fb = app.client.rest_ws.stats.fallbacks
      got.file = app.client.recordings.getStoredFile { recordingName = rec }
      got.fallbacks = app.client.rest_ws.stats.fallbacks - fb
      app.client.recordings.deleteStored { recordingName = rec }
      got.unmatched = app.client.rest_ws.stats.unmatched
      got.in_flight = app.client.rest_ws:in_flight()
      app.client:close()
    end)
    assert.equals("Up", got.state)
    assert.equals("done", got.played)
    assert.equals("123", got.digits)
    assert.equals("done", got.rec.state)
    assert.equals("normal", got.outcome)
    -- originate, answer, play, record, hangup at least, all as RESTRequest
    assert.is_true(got.requests >= 5, "requests over the socket: " .. got.requests)
    assert.equals(1, got.fallbacks)
    assert.is_string(got.file)
    assert.equals("RIFF", got.file:sub(1, 4))
    assert.equals(0, got.unmatched)
    assert.equals(0, got.in_flight)
  end)

  it("maps errors exactly as over HTTP (status, message, operation, kind, decoded body)", function()
    local rows = {}
    ast.run(function()
      local name = ast.app_name("rwe")
      local ws = ari.connect(ws_client(inst, name))
      local http = ari.connect { url = inst.url, user = inst.user, password = inst.password }
      ast.poll(function() return ws.stats.connects > 0 end, "the events socket")
      -- a channel that is not in any Stasis app (answered, waiting in the dialplan)
      local outside = http.channels.originate { endpoint = "Local/s@caller", context = "caller",
        extension = "wait", priority = 1, formats = "ulaw" }
      local bridge = http.bridges.create { type = "mixing" }
      local cases = {
        { "channels", "get", { channelId = "no-such-channel" } },
        { "channels", "answer", { channelId = "no-such-channel" } },
        { "channels", "play", { channelId = outside.id, media = { "sound:beep" } } },
        { "channels", "originate", { endpoint = "Nosuchtech/x", app = name } },
        { "channels", "originate", { endpoint = "Local/s@caller" } }, -- neither app nor extension
        { "bridges", "addChannel", { bridgeId = bridge.id, channel = { "no-such-channel" } } },
        { "bridges", "addChannel", { bridgeId = bridge.id, channel = { outside.id } } }, -- not in Stasis
        { "bridges", "get", { bridgeId = "no-such-bridge" } },
        { "applications", "get", { applicationName = "no-such-app-" .. name } },
        { "recordings", "getStored", { recordingName = "no-such-recording" } },
        { "recordings", "getStoredFile", { recordingName = "no-such-recording" } },
        { "playbacks", "stop", { playbackId = "no-such-playback" } },
        { "asterisk", "getGlobalVar", { variable = "NO_SUCH_VAR_" .. name } }, -- 200 with value ""
        { "deviceStates", "update", { deviceName = "Local:nope", deviceState = "INUSE" } },
        { "events", "userEvent", { eventName = "x", application = "no-such-app-" .. name } },
      }
      for _, c in ipairs(cases) do
        local r, res = c[1], c[2]
        local hok, herr = pcall(http[r][res], c[3])
        local wok, werr = pcall(ws[r][res], c[3])
        rows[#rows + 1] = { op = r .. "." .. res, hok = hok, herr = herr, wok = wok, werr = werr }
        if hok then assert.same(herr, werr, r .. "." .. res .. ": same result") end
      end
      pcall(http.channels.hangup, { channelId = outside.id })
      pcall(http.bridges.destroy, { bridgeId = bridge.id })
      ws:close(); http:close()
    end)
    local statuses = {}
    for _, row in ipairs(rows) do
      assert.equals(row.hok, row.wok, row.op .. ": same outcome")
      if not row.hok then
        local h, w = row.herr, row.werr
        assert.equals("http", h.kind, row.op .. ": an HTTP error over HTTP (" .. tostring(h) .. ")")
        for _, f in ipairs { "kind", "status", "message", "operation", "method" } do
          assert.equals(h[f], w[f], row.op .. ": field " .. f)
        end
        assert.equals(tostring(h), tostring(w))
        statuses[h.status] = true
      end
    end
    -- the set covers the usual error statuses of these operations
    assert.is_true(statuses[404], "a 404 among the cases")
    assert.is_true(statuses[400] or statuses[422], "a 400 or 422 among the cases")
    assert.is_true(statuses[409] or statuses[412], "a 409 or 412 among the cases")
  end)

  it("carries large responses whole (sounds.list, asterisk.listModules): the same as over HTTP", function()
    local got = {}
    ast.run(function()
      local ws = ari.connect(ws_client(inst, ast.app_name("rwl")))
      local http = ari.connect { url = inst.url, user = inst.user, password = inst.password }
      ast.poll(function() return ws.stats.connects > 0 end, "the events socket")
      for _, op in ipairs { { "sounds", "list" }, { "asterisk", "listModules" } } do
        local h = http[op[1]][op[2]] {}
        local w = ws[op[1]][op[2]] {}
        local names_h, names_w = {}, {}
        for i = 1, #h do names_h[i] = h[i].id or h[i].name end
        for i = 1, #w do names_w[i] = w[i].id or w[i].name end
        got[#got + 1] = { op = op[1] .. "." .. op[2], h = names_h, w = names_w }
      end
      ws:close(); http:close()
    end)
    for _, g in ipairs(got) do
      assert.is_true(#g.h > 50, g.op .. ": a large list (" .. #g.h .. ")")
      assert.same(g.h, g.w, g.op)
    end
  end)

  it("carries many concurrent requests, each answered to its own caller", function()
    local results, peak, stats = {}, 0, nil
    local N = 200
    ast.run(function()
      local c = ari.connect(ws_client(inst, ast.app_name("rwc")))
      ast.poll(function() return c.stats.connects > 0 end, "the events socket")
      local bridges, left = {}, N
      for i = 1, N do
        sched.spawn(function()
          if i % 3 == 0 then
            local ok, e = pcall(c.channels.get, { channelId = "missing-" .. i })
            return ok and "found?" or (e.status .. " " .. e.message)
          elseif i % 3 == 1 then
            local b = c.bridges.create { type = "holding", name = "b" .. i }
            bridges[#bridges + 1] = b.id
            return c.bridges.get { bridgeId = b.id }.name
          else
            return c.asterisk.getInfo().system.version
          end
        end, function(ok, v)
          results[i] = ok and v or ("error: " .. tostring(v))
          left = left - 1
        end)
        local n = c.rest_ws:in_flight()
        if n > peak then peak = n end
      end
      ast.poll(function() return left == 0 end, "every request to come back", 60000)
      for _, id in ipairs(bridges) do c.bridges.destroy { bridgeId = id } end
      stats = { requests = c.rest_ws.stats.requests, unmatched = c.rest_ws.stats.unmatched,
        in_flight = c.rest_ws:in_flight() }
      c:close()
    end, 120000)
    for i = 1, N do
      if i % 3 == 0 then assert.equals("404 Channel not found", results[i])
      elseif i % 3 == 1 then assert.equals("b" .. i, results[i])
      else assert.matches("^" .. ast.version .. "%.", results[i]) end
    end
    assert.is_true(peak > 1, "requests were in flight together (peak " .. peak .. ")")
    assert.equals(0, stats.unmatched)
    assert.equals(0, stats.in_flight)
  end)
end)

ast.describe("real Asterisk (private): a request in flight when the events socket drops", function()
  if not ast.at_least(20) then
    it("needs REST over WebSocket", function()
      pending("REST over the events WebSocket needs Asterisk 20.14, 21.9, 22.4 or later (this is " .. ast.version .. ")")
    end)
    return
  end
  it("fails with a transport error (reset); the socket comes back and requests work again", function()
    if not modes.can_kill_tcp() then
      pending("cannot kill a TCP connection here (ss -K needs root and CONFIG_INET_DIAG_DESTROY)")
      return
    end
    local inst = ast.start { version = ast.version }
    local got = {}
    local ok, err = pcall(ast.run, function()
      local c = ari.connect(ws_client(inst, ast.app_name("rwd")))
      ast.poll(function() return c.stats.connects > 0 end, "the events socket")
      got.before = c.asterisk.getInfo().system.version
      local res
      sched.spawn(function() return c.asterisk.getInfo() end, function(...) res = table.pack(...) end)
      got.in_flight = c.rest_ws:in_flight()
      -- the request is queued on the socket; the socket dies before the
      -- loop runs again, so no answer can come back on it
      got.killed = modes.kill_tcp(inst.port)
      ast.poll(function() return res ~= nil end, "the request in flight to end")
      got.res = res
      ast.poll(function() return c.stats.connects > 1 end, "the events socket to come back")
      got.after = c.asterisk.getInfo().system.version
      got.left = c.rest_ws:in_flight()
      c:close()
    end)
    inst:stop()
    assert(ok, err)
    assert.is_true(got.killed > 0)
    assert.equals(1, got.in_flight)
    -- the spawned request raised (sched.spawn's callback: false, error)
    assert.is_false(got.res[1])
    local e = got.res[2]
    assert.equals("transport", type(e) == "table" and e.kind or tostring(e))
    assert.equals(got.before, got.after)
    assert.equals(0, got.left)
  end)
end)
