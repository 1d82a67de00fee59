-- Real Asterisk: the client learns the server's versions at connect and
-- refuses, at once and by name, what that server lacks (the version facts
-- generated into lua/ari/schema.lua from the 18/20/22/23 api-docs).  Runs
-- against every version (--asterisk 18|20|22|23).
local ast = require "spec.support.asterisk"
local ari = require "ari"
local client_mod = require "ari.client"
local http = require "ari.http"
local schema = require "ari.schema"

local function connect(inst, o)
  local opts = { url = inst.url, user = inst.user, password = inst.password }
  for k, v in pairs(o or {}) do opts[k] = v end
  return ari.connect(opts)
end

-- the server's own api-docs, as a set of "resource.nickname" and
-- "resource.nickname param" (and "... param=value" for LIST values)
local function live_facts(inst)
  local facts = {}
  local function get(path)
    local status, body = http.request { url = inst.url .. "/ari/api-docs/" .. path, user = inst.user,
      password = inst.password }
    assert.equals(200, status, path)
    return client_mod.json_decode(body)
  end
  local index = get("resources.json")
  for _, api in ipairs(index.apis) do
    local name = api.path:match("/api%-docs/(.-)%.{format}")
    local doc = get(name .. ".json")
    for _, a in ipairs(doc.apis) do
      for _, op in ipairs(a.operations) do
        local k = name .. "." .. op.nickname
        facts[k] = true
        for _, p in ipairs(op.parameters or {}) do
          facts[k .. " " .. p.name] = true
          local av = p.allowableValues
          if type(av) == "table" and av.valueType == "LIST" then
            for _, v in ipairs(av.values) do facts[k .. " " .. p.name .. "=" .. tostring(v)] = true end
          end
        end
      end
    end
  end
  return facts, index.apiVersion
end

ast.describe("real Asterisk: server versions", function(inst)
  it("connect learns the ARI and Asterisk versions with one request #core", function()
    local got = {}
    ast.run(function()
      client_mod._server_cache[client_mod.normalize_url(inst.url)] = nil -- a fresh probe
      local requests = {}
      local old = client_mod.transcript
      client_mod.transcript = function(e) if e.kind == "rest" then requests[#requests + 1] = e.path end end
      local ok, c = pcall(connect, inst, { events = false })
      client_mod.transcript = old
      assert.is_true(ok, tostring(c))
      got.server = c.server
      got.requests = requests
      got.info = c.asterisk.getInfo { only = "system" }
      local _, api = live_facts(inst)
      got.api = api
      -- a second client of the same server: no request at all
      local n = 0
      client_mod.transcript = function(e) if e.kind == "rest" then n = n + 1 end end
      local c2 = connect(inst, { events = false })
      client_mod.transcript = old
      got.second = n
      got.server2 = c2.server
      c:close(); c2:close()
    end)
    assert.same({ "/api-docs/resources.json" }, got.requests)
    assert.equals(0, got.second)
    assert.equals(got.api, got.server.ari_version)
    assert.equals(got.info.system.version, got.server.asterisk_version)
    assert.equals(inst.version, got.server.major)
    assert.same(got.server, got.server2)
  end)

  it("the generated version facts agree with the server's own api-docs", function()
    local facts, c
    ast.run(function()
      facts = live_facts(inst)
      c = connect(inst, { events = false })
      c:close()
    end)
    local checked, wrong = 0, {}
    for _, op in ipairs(schema.operations) do
      local k = op.resource .. "." .. op.nickname
      checked = checked + 1
      if c:supports(k) ~= (facts[k] == true) then wrong[#wrong + 1] = k end
      if facts[k] then
        for _, p in ipairs(op.params) do
          if c:supports(k, p.name) ~= (facts[k .. " " .. p.name] == true) then wrong[#wrong + 1] = k .. " " .. p.name end
          if p.allowed and p.allowed.values and facts[k .. " " .. p.name] then
            for _, v in ipairs(p.allowed.values) do
              local fk = k .. " " .. p.name .. "=" .. tostring(v)
              if c:supports(k, p.name, v) ~= (facts[fk] == true) then wrong[#wrong + 1] = fk end
            end
          end
        end
      end
    end
    assert.equals(#schema.operations, checked)
    assert.same({}, wrong)
  end)

  it("an operation the server lacks fails at once, naming it and the server's version", function()
    if ast.at_least(20) then
      -- nothing in the schema is missing here: the refusal is checked against a server said to be 18
      local err
      ast.run(function()
        local c = connect(inst, { events = false, server = { ari_version = "6.0.1", asterisk_version = "18.26.4" } })
        local ok, e = pcall(c.channels.progress, { channelId = "nope" })
        assert.is_false(ok)
        err = e
        -- the real server has it: the same call reaches Asterisk (404: no such channel)
        local c2 = connect(inst, { events = false })
        local ok2, e2 = pcall(c2.channels.progress, { channelId = "nope" })
        assert.is_false(ok2)
        assert.equals(404, e2.status)
        c:close(); c2:close()
      end)
      assert.equals("unsupported", err.kind)
      assert.equals("channels.progress: needs ARI 8.0.0 (Asterisk 20); this server is Asterisk 18.26.4 (ARI 6.0.1)",
        tostring(err))
      return
    end
    local errs, sent = {}, {}
    ast.run(function()
      local c = connect(inst, { events = false })
      local old = client_mod.transcript
      client_mod.transcript = function(e) if e.kind == "rest" then sent[#sent + 1] = e.path end end
      for _, try in ipairs {
        { c.channels.progress, { channelId = "x" } },
        { c.channels.getChannelVars, { channelId = "x", variables = { "A" } } },
        { c.bridges.setBridgeVar, { bridgeId = "x", variable = "A", value = "1" } },
        { c.events.claimChannel, { channelId = "x", application = "a" } },
        { c.channels.setChannelVar, { channelId = "x", variable = "A", value = "1", report_events = true } },
        { c.channels.externalMedia, { app = "a", external_host = "127.0.0.1:9", format = "ulaw",
          transport = "websocket" } },
      } do
        local ok, e = pcall(try[1], try[2])
        assert.is_false(ok)
        errs[#errs + 1] = e
      end
      client_mod.transcript = old
      c:close()
    end)
    assert.same({}, sent) -- nothing reached Asterisk
    local ver = "this server is Asterisk " .. inst.version .. "%.[%d.]+ %(ARI 6%.0%.1%)"
    assert.matches("^channels%.progress: needs ARI 8%.0%.0 %(Asterisk 20%); " .. ver .. "$", tostring(errs[1]))
    assert.matches("^channels%.getChannelVars: needs ARI 8%.0%.0", tostring(errs[2]))
    assert.matches("^bridges%.setBridgeVar: needs ARI 8%.0%.0", tostring(errs[3]))
    assert.matches("^events%.claimChannel: needs ARI 8%.0%.0", tostring(errs[4]))
    assert.matches("^channels%.setChannelVar: parameter 'report_events' needs ARI 8%.0%.0", tostring(errs[5]))
    assert.matches("^channels%.externalMedia: parameter transport = websocket needs ARI 8%.0%.0", tostring(errs[6]))
    for _, e in ipairs(errs) do
      assert.equals("unsupported", e.kind)
      assert.equals(20, e.since)
    end
  end)

  it("REST over the WebSocket: refused at connect on 18, works on 20 and later", function()
    local got = {}
    ast.run(function()
      local app = ast.app_name("rws")
      local ok, c = pcall(connect, inst, { app = app, transport = "websocket" })
      got.ok, got.c = ok, c
      if ok then
        ast.poll(function() return c.stats.connects > 0 end, "the events socket")
        got.info = c.asterisk.getInfo { only = "system" }
        got.requests = c.rest_ws.stats.requests
        c:close()
      end
    end)
    if ast.at_least(20) then
      assert.is_true(got.ok, tostring(got.c))
      assert.is_table(got.info.system)
      assert.is_true(got.requests >= 1)
    else
      assert.is_false(got.ok)
      assert.equals("unsupported", got.c.kind)
      assert.matches('REST over the WebSocket %(transport = "websocket"%) needs ARI 8%.0%.0 %(Asterisk 20%)',
        tostring(got.c))
      assert.matches("this server is Asterisk 18%.", tostring(got.c))
    end
  end)

  it("Call:progress sends channels.progress where the server has it, channels.ring on 18", function()
    local sent, done = {}, nil
    ast.run(function()
      local name = ast.app_name("prog")
      local app = ari.app { app = name, url = inst.url, user = inst.user, password = inst.password }
      app:on_call(function(call)
        local old = client_mod.transcript
        client_mod.transcript = function(e) if e.kind == "rest" then sent[#sent + 1] = e.method .. " " .. e.path end end
        call:progress()
        client_mod.transcript = old
        call:hangup()
      end)
      app.on_end = function(_, outcome) done = outcome end
      ast.poll(function() return app.client.stats.connects > 0 end, "the events socket")
      ast.originate(app.client, "s", name)
      ast.poll(function() return done ~= nil end, "the call to end")
      app.client:close()
    end)
    assert.equals(1, #sent)
    if ast.at_least(20) then
      assert.matches("^POST /channels/[^/]+/progress$", sent[1])
    else
      assert.matches("^POST /channels/[^/]+/ring$", sent[1])
    end
  end)
end)
