-- Every ARI operation: the request each one sends (method, path with
-- percent-encoded ids, query, body), and the parameter errors raised before
-- anything is sent.  Table-driven; run through a capturing transport and,
-- when the project's HTTP server is built, over real HTTP on loopback.
local ari = require "ari"
local core = require "ari.core"
local schema = require "ari.schema"
local client_mod = require "ari.client"

-- An id with every character that could escape its path segment.
local ID = "a/b?c#d%e f"
local ID_ENC = "a%2Fb%3Fc%23d%25e%20f"

-- name, method, path (@ = an id), required params, expected query, expected body
local ROWS = {
  { "applications.filter", "PUT", "/applications/@/eventFilter", { applicationName = ID }, "", nil },
  { "applications.get", "GET", "/applications/@", { applicationName = ID }, "", nil },
  { "applications.list", "GET", "/applications", {  }, "", nil },
  { "applications.subscribe", "POST", "/applications/@/subscription", { applicationName = ID, eventSource = { "v-eventSource", "w x" } }, "eventSource=v-eventSource,w%20x", nil },
  { "applications.unsubscribe", "DELETE", "/applications/@/subscription", { applicationName = ID, eventSource = { "v-eventSource", "w x" } }, "eventSource=v-eventSource,w%20x", nil },
  { "asterisk.addLog", "POST", "/asterisk/logging/@", { configuration = "v-configuration", logChannelName = ID }, "configuration=v-configuration", nil },
  { "asterisk.deleteLog", "DELETE", "/asterisk/logging/@", { logChannelName = ID }, "", nil },
  { "asterisk.deleteObject", "DELETE", "/asterisk/config/dynamic/@/@/@", { configClass = ID, id = ID, objectType = ID }, "", nil },
  { "asterisk.getGlobalVar", "GET", "/asterisk/variable", { variable = "v-variable" }, "variable=v-variable", nil },
  { "asterisk.getInfo", "GET", "/asterisk/info", {  }, "", nil },
  { "asterisk.getModule", "GET", "/asterisk/modules/@", { moduleName = ID }, "", nil },
  { "asterisk.getObject", "GET", "/asterisk/config/dynamic/@/@/@", { configClass = ID, id = ID, objectType = ID }, "", nil },
  { "asterisk.listLogChannels", "GET", "/asterisk/logging", {  }, "", nil },
  { "asterisk.listModules", "GET", "/asterisk/modules", {  }, "", nil },
  { "asterisk.loadModule", "POST", "/asterisk/modules/@", { moduleName = ID }, "", nil },
  { "asterisk.ping", "GET", "/asterisk/ping", {  }, "", nil },
  { "asterisk.reloadModule", "PUT", "/asterisk/modules/@", { moduleName = ID }, "", nil },
  { "asterisk.rotateLog", "PUT", "/asterisk/logging/@/rotate", { logChannelName = ID }, "", nil },
  { "asterisk.setGlobalVar", "POST", "/asterisk/variable", { variable = "v-variable" }, "variable=v-variable", nil },
  { "asterisk.unloadModule", "DELETE", "/asterisk/modules/@", { moduleName = ID }, "", nil },
  { "asterisk.updateObject", "PUT", "/asterisk/config/dynamic/@/@/@", { configClass = ID, id = ID, objectType = ID }, "", nil },
  { "bridges.addChannel", "POST", "/bridges/@/addChannel", { bridgeId = ID, channel = { "v-channel", "w x" } }, "channel=v-channel,w%20x", nil },
  { "bridges.clearVideoSource", "DELETE", "/bridges/@/videoSource", { bridgeId = ID }, "", nil },
  { "bridges.create", "POST", "/bridges", {  }, "", nil },
  { "bridges.createWithId", "POST", "/bridges/@", { bridgeId = ID }, "", nil },
  { "bridges.destroy", "DELETE", "/bridges/@", { bridgeId = ID }, "", nil },
  { "bridges.get", "GET", "/bridges/@", { bridgeId = ID }, "", nil },
  { "bridges.getBridgeVar", "GET", "/bridges/@/variable", { bridgeId = ID, variable = "v-variable" }, "variable=v-variable", nil },
  { "bridges.getBridgeVars", "GET", "/bridges/@/variables", { bridgeId = ID, variables = { "v-variables", "w x" } }, "variables=v-variables,w%20x", nil },
  { "bridges.list", "GET", "/bridges", {  }, "", nil },
  { "bridges.play", "POST", "/bridges/@/play", { bridgeId = ID, media = { "v-media", "w x" } }, "media=v-media,w%20x", nil },
  { "bridges.playWithId", "POST", "/bridges/@/play/@", { bridgeId = ID, media = { "v-media", "w x" }, playbackId = ID }, "media=v-media,w%20x", nil },
  { "bridges.record", "POST", "/bridges/@/record", { bridgeId = ID, format = "v-format", name = "v-name" }, "format=v-format&name=v-name", nil },
  { "bridges.removeChannel", "POST", "/bridges/@/removeChannel", { bridgeId = ID, channel = { "v-channel", "w x" } }, "channel=v-channel,w%20x", nil },
  { "bridges.setBridgeVar", "POST", "/bridges/@/variable", { bridgeId = ID, variable = "v-variable" }, "variable=v-variable", nil },
  { "bridges.setBridgeVars", "POST", "/bridges/@/variables", { bridgeId = ID, variables = { X = "1" } }, "", { variables = { X = "1" } } },
  { "bridges.setVideoSource", "POST", "/bridges/@/videoSource/@", { bridgeId = ID, channelId = ID }, "", nil },
  { "bridges.startMoh", "POST", "/bridges/@/moh", { bridgeId = ID }, "", nil },
  { "bridges.stopMoh", "DELETE", "/bridges/@/moh", { bridgeId = ID }, "", nil },
  { "channels.answer", "POST", "/channels/@/answer", { channelId = ID }, "", nil },
  { "channels.continueInDialplan", "POST", "/channels/@/continue", { channelId = ID }, "", nil },
  { "channels.create", "POST", "/channels/create", { app = "v-app", endpoint = "v-endpoint" }, "app=v-app&endpoint=v-endpoint", nil },
  { "channels.dial", "POST", "/channels/@/dial", { channelId = ID }, "", nil },
  { "channels.externalMedia", "POST", "/channels/externalMedia", { app = "v-app", format = "v-format" }, "app=v-app&format=v-format", nil },
  { "channels.get", "GET", "/channels/@", { channelId = ID }, "", nil },
  { "channels.getChannelVar", "GET", "/channels/@/variable", { channelId = ID, variable = "v-variable" }, "variable=v-variable", nil },
  { "channels.getChannelVars", "GET", "/channels/@/variables", { channelId = ID, variables = { "v-variables", "w x" } }, "variables=v-variables,w%20x", nil },
  { "channels.hangup", "DELETE", "/channels/@", { channelId = ID }, "", nil },
  { "channels.hold", "POST", "/channels/@/hold", { channelId = ID }, "", nil },
  { "channels.list", "GET", "/channels", {  }, "", nil },
  { "channels.move", "POST", "/channels/@/move", { app = "v-app", channelId = ID }, "app=v-app", nil },
  { "channels.mute", "POST", "/channels/@/mute", { channelId = ID }, "", nil },
  { "channels.originate", "POST", "/channels", { endpoint = "v-endpoint" }, "endpoint=v-endpoint", nil },
  { "channels.originateWithId", "POST", "/channels/@", { channelId = ID, endpoint = "v-endpoint" }, "endpoint=v-endpoint", nil },
  { "channels.play", "POST", "/channels/@/play", { channelId = ID, media = { "v-media", "w x" } }, "media=v-media,w%20x", nil },
  { "channels.playWithId", "POST", "/channels/@/play/@", { channelId = ID, media = { "v-media", "w x" }, playbackId = ID }, "media=v-media,w%20x", nil },
  { "channels.progress", "POST", "/channels/@/progress", { channelId = ID }, "", nil },
  { "channels.record", "POST", "/channels/@/record", { channelId = ID, format = "v-format", name = "v-name" }, "format=v-format&name=v-name", nil },
  { "channels.redirect", "POST", "/channels/@/redirect", { channelId = ID, endpoint = "v-endpoint" }, "endpoint=v-endpoint", nil },
  { "channels.ring", "POST", "/channels/@/ring", { channelId = ID }, "", nil },
  { "channels.ringStop", "DELETE", "/channels/@/ring", { channelId = ID }, "", nil },
  { "channels.rtpstatistics", "GET", "/channels/@/rtp_statistics", { channelId = ID }, "", nil },
  { "channels.sendDTMF", "POST", "/channels/@/dtmf", { channelId = ID }, "", nil },
  { "channels.setChannelVar", "POST", "/channels/@/variable", { channelId = ID, variable = "v-variable" }, "variable=v-variable", nil },
  { "channels.setChannelVars", "POST", "/channels/@/variables", { channelId = ID, variables = { X = "1" } }, "", { variables = { X = "1" } } },
  { "channels.snoopChannel", "POST", "/channels/@/snoop", { app = "v-app", channelId = ID }, "app=v-app", nil },
  { "channels.snoopChannelWithId", "POST", "/channels/@/snoop/@", { app = "v-app", channelId = ID, snoopId = ID }, "app=v-app", nil },
  { "channels.startMoh", "POST", "/channels/@/moh", { channelId = ID }, "", nil },
  { "channels.startSilence", "POST", "/channels/@/silence", { channelId = ID }, "", nil },
  { "channels.stopMoh", "DELETE", "/channels/@/moh", { channelId = ID }, "", nil },
  { "channels.stopSilence", "DELETE", "/channels/@/silence", { channelId = ID }, "", nil },
  { "channels.transfer_progress", "POST", "/channels/@/transfer_progress", { channelId = ID, states = "v-states" }, "states=v-states", nil },
  { "channels.unhold", "DELETE", "/channels/@/hold", { channelId = ID }, "", nil },
  { "channels.unmute", "DELETE", "/channels/@/mute", { channelId = ID }, "", nil },
  { "deviceStates.delete", "DELETE", "/deviceStates/@", { deviceName = ID }, "", nil },
  { "deviceStates.get", "GET", "/deviceStates/@", { deviceName = ID }, "", nil },
  { "deviceStates.list", "GET", "/deviceStates", {  }, "", nil },
  { "deviceStates.update", "PUT", "/deviceStates/@", { deviceName = ID, deviceState = "NOT_INUSE" }, "deviceState=NOT_INUSE", nil },
  { "endpoints.get", "GET", "/endpoints/@/@", { resource = ID, tech = ID }, "", nil },
  { "endpoints.list", "GET", "/endpoints", {  }, "", nil },
  { "endpoints.listByTech", "GET", "/endpoints/@", { tech = ID }, "", nil },
  { "endpoints.refer", "POST", "/endpoints/refer", { from = "v-from", refer_to = "v-refer_to", to = "v-to" }, "from=v-from&refer_to=v-refer_to&to=v-to", nil },
  { "endpoints.referToEndpoint", "POST", "/endpoints/@/@/refer", { from = "v-from", refer_to = "v-refer_to", resource = ID, tech = ID }, "from=v-from&refer_to=v-refer_to", nil },
  { "endpoints.sendMessage", "PUT", "/endpoints/sendMessage", { from = "v-from", to = "v-to" }, "from=v-from&to=v-to", nil },
  { "endpoints.sendMessageToEndpoint", "PUT", "/endpoints/@/@/sendMessage", { from = "v-from", resource = ID, tech = ID }, "from=v-from", nil },
  { "events.claimChannel", "POST", "/events/claim", { application = "v-application", channelId = "v-channelId" }, "application=v-application&channelId=v-channelId", nil },
  { "events.eventWebsocket", "GET", "/events", { app = { "v-app", "w x" } }, "app=v-app,w%20x", nil },
  { "events.userEvent", "POST", "/events/user/@", { application = "v-application", eventName = ID }, "application=v-application", nil },
  { "mailboxes.delete", "DELETE", "/mailboxes/@", { mailboxName = ID }, "", nil },
  { "mailboxes.get", "GET", "/mailboxes/@", { mailboxName = ID }, "", nil },
  { "mailboxes.list", "GET", "/mailboxes", {  }, "", nil },
  { "mailboxes.update", "PUT", "/mailboxes/@", { mailboxName = ID, newMessages = 7, oldMessages = 7 }, "newMessages=7&oldMessages=7", nil },
  { "playbacks.control", "POST", "/playbacks/@/control", { operation = "restart", playbackId = ID }, "operation=restart", nil },
  { "playbacks.get", "GET", "/playbacks/@", { playbackId = ID }, "", nil },
  { "playbacks.stop", "DELETE", "/playbacks/@", { playbackId = ID }, "", nil },
  { "recordings.cancel", "DELETE", "/recordings/live/@", { recordingName = ID }, "", nil },
  { "recordings.copyStored", "POST", "/recordings/stored/@/copy", { destinationRecordingName = "v-destinationRecordingName", recordingName = ID }, "destinationRecordingName=v-destinationRecordingName", nil },
  { "recordings.deleteStored", "DELETE", "/recordings/stored/@", { recordingName = ID }, "", nil },
  { "recordings.getLive", "GET", "/recordings/live/@", { recordingName = ID }, "", nil },
  { "recordings.getStored", "GET", "/recordings/stored/@", { recordingName = ID }, "", nil },
  { "recordings.getStoredFile", "GET", "/recordings/stored/@/file", { recordingName = ID }, "", nil },
  { "recordings.listStored", "GET", "/recordings/stored", {  }, "", nil },
  { "recordings.mute", "POST", "/recordings/live/@/mute", { recordingName = ID }, "", nil },
  { "recordings.pause", "POST", "/recordings/live/@/pause", { recordingName = ID }, "", nil },
  { "recordings.stop", "POST", "/recordings/live/@/stop", { recordingName = ID }, "", nil },
  { "recordings.unmute", "DELETE", "/recordings/live/@/mute", { recordingName = ID }, "", nil },
  { "recordings.unpause", "DELETE", "/recordings/live/@/pause", { recordingName = ID }, "", nil },
  { "sounds.get", "GET", "/sounds/@", { soundId = ID }, "", nil },
  { "sounds.list", "GET", "/sounds", {  }, "", nil },
}

local function capture_client(opts)
  local seen = {}
  opts = opts or {}
  local c = ari.connect {
    url = "http://127.0.0.1:8088", user = "u", password = "p", events = false,
    transport = function(req)
      seen[#seen + 1] = req
      if opts.reply then return opts.reply(req) end
      return 204, "", {}
    end,
    websocket = function(o)
      seen[#seen + 1] = { method = "GET", url = o.url, ws = true, user = o.user }
      return { close = function() end }
    end,
  }
  return c, seen
end

local function split_url(url)
  local path, query = url:match("^http://127%.0%.0%.1:8088/ari([^?]*)%??(.*)$")
  if not path then path, query = url:match("^ws://127%.0%.0%.1:8088/ari([^?]*)%??(.*)$") end
  return path, query
end

local function call(c, name, params)
  local r, n = name:match("^([^.]+)%.(.+)$")
  return c[r][n](params)
end

describe("operations table", function()
  it("covers all 109 operations exactly once", function()
    local names = {}
    for _, row in ipairs(ROWS) do
      assert.is_nil(names[row[1]], row[1])
      names[row[1]] = true
    end
    assert.equals(109, #ROWS)
    for _, op in ipairs(schema.operations) do
      assert.is_true(names[op.resource .. "." .. op.nickname], op.resource .. "." .. op.nickname)
    end
  end)
end)

describe("each operation (capturing transport)", function()
  for _, row in ipairs(ROWS) do
    local name, method, path, params, query, body = row[1], row[2], row[3], row[4], row[5], row[6]
    it(name .. " sends " .. method .. " " .. path, function()
      local c, seen = capture_client()
      local result = ari.run(function() return call(c, name, params) end)
      assert.equals(1, #seen)
      local req = seen[1]
      assert.equals(method, req.method)
      local p, q = split_url(req.url)
      assert.equals((path:gsub("@", function() return ID_ENC end)), p)
      assert.equals(query, q)
      if body then
        assert.same(body, client_mod.json_decode(req.body))
      else
        assert.is_nil(req.body)
      end
      if not req.ws then
        assert.equals("u", req.user)
        assert.equals("p", req.password)
        assert.is_true(result == true or type(result) == "string")
      end
    end)
  end
end)

describe("parameter checking (nothing is sent)", function()
  it("a missing required parameter names it", function()
    local n = 0
    for _, row in ipairs(ROWS) do
      for pname in pairs(row[4]) do
        local c, seen = capture_client()
        local params = {}
        for k, v in pairs(row[4]) do if k ~= pname then params[k] = v end end
        local ok, err = pcall(call, c, row[1], params)
        assert.is_false(ok, row[1] .. " without " .. pname)
        assert.equals(pname, err.parameter)
        assert.equals(row[1], err.operation)
        assert.matches("missing required parameter '" .. pname .. "'", tostring(err), 1, true)
        assert.equals(0, #seen)
        n = n + 1
      end
    end
    assert.is_true(n > 150)
  end)

  it("a value outside the allowed values is refused, for every such parameter", function()
    local n = 0
    for _, op in ipairs(schema.operations) do
      local name = op.resource .. "." .. op.nickname
      local row
      for _, r in ipairs(ROWS) do if r[1] == name then row = r end end
      for _, p in ipairs(op.params) do
        if p.allowed and p.allowed.values then
          local params = {}
          for k, v in pairs(row[4]) do params[k] = v end
          params[p.name] = p.multiple and { p.allowed.values[1], "no-such-value" } or "no-such-value"
          local c, seen = capture_client()
          local ok, err = pcall(call, c, name, params)
          assert.is_false(ok, name .. "." .. p.name)
          assert.equals(p.name, err.parameter)
          assert.matches("not one of", err.message)
          assert.equals(0, #seen)
          -- and every allowed value is accepted
          for _, v in ipairs(p.allowed.values) do
            params[p.name] = v
            ari.run(function() call(c, name, params) end)
          end
          assert.equals(#p.allowed.values, #seen)
          n = n + 1
        elseif p.allowed and p.allowed.min then
          local params = {}
          for k, v in pairs(row[4]) do params[k] = v end
          params[p.name] = p.allowed.min - 1
          local c, seen = capture_client()
          local ok, err = pcall(call, c, name, params)
          assert.is_false(ok, name .. "." .. p.name)
          assert.equals(p.name, err.parameter)
          assert.matches("out of range", err.message)
          assert.equals(0, #seen)
          n = n + 1
        end
      end
    end
    assert.is_true(n >= 20)
  end)

  it("unknown parameters are refused", function()
    local c, seen = capture_client()
    local ok, err = pcall(c.channels.answer, { channelId = "x", channelID = "y" })
    assert.is_false(ok)
    assert.equals("channelID", err.parameter)
    assert.matches("unknown parameter", tostring(err))
    assert.equals(0, #seen)
  end)

  it("wrong types are refused for every kind of type", function()
    local cases = {
      { "channels.answer", { channelId = 12 }, "channelId" },                        -- string
      { "channels.play", { channelId = "x", media = "m", offsetms = 1.5 }, "offsetms" }, -- int
      { "channels.play", { channelId = "x", media = "m", offsetms = "5" }, "offsetms" },
      { "channels.originate", { endpoint = "e", priority = "1" }, "priority" },       -- long
      { "bridges.addChannel", { bridgeId = "b", channel = "c", mute = "yes" }, "mute" }, -- boolean
      { "channels.originate", { endpoint = "e", variables = "A=1" }, "variables" },   -- containers
      { "applications.filter", { applicationName = "a", filter = "x" }, "filter" },   -- object
      { "channels.play", { channelId = "x", media = { "ok", 5 } }, "media" },          -- List
      { "channels.play", { channelId = "x", media = { a = "b" } }, "media" },
    }
    for _, case in ipairs(cases) do
      local c, seen = capture_client()
      local ok, err = pcall(call, c, case[1], case[2])
      assert.is_false(ok, case[1] .. " " .. case[3])
      assert.equals(case[3], err.parameter)
      assert.equals(0, #seen)
    end
    local c = capture_client()
    assert.has_error(function() c.channels.answer("x") end)
  end)

  it("integral floats are accepted for int parameters and sent as integers", function()
    local c, seen = capture_client()
    ari.run(function() c.channels.play { channelId = "x", media = "sound:a", offsetms = 250.0 } end)
    local _, q = split_url(seen[1].url)
    assert.equals("media=sound%3Aa&offsetms=250", q)
  end)
end)

describe("URL building", function()
  it("never lets an id reach another URL", function()
    for _, id in ipairs({ "..", ".", "../..", "a/../b", "?x=1", "#frag", "%2F", "a b", "\0", "ü" }) do
      local c, seen = capture_client()
      ari.run(function() c.channels.answer { channelId = id } end)
      local p = split_url(seen[1].url)
      local seg = p:match("^/channels/([^/]+)/answer$")
      assert.is_truthy(seg, "id " .. id .. " -> " .. p)
      assert.is_nil(seg:find("[/?#]"))
      assert.is_nil(seg:match("^%.+$"))
      -- decoding the segment gives the id back
      assert.equals(id, (seg:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)))
    end
  end)

  it("refuses an empty path parameter", function()
    local c, seen = capture_client()
    local ok, err = pcall(c.channels.answer, { channelId = "" })
    assert.is_false(ok)
    assert.equals("channelId", err.parameter)
    assert.equals(0, #seen)
  end)

  it("encodes query values and joins lists with commas", function()
    local c, seen = capture_client()
    ari.run(function()
      c.channels.originate { endpoint = "Local/100@to-stasis", app = "test-app", appArgs = "from-originate,a1",
        callerId = '"Demo A" <1000>', timeout = 30, formats = "ulaw" }
    end)
    local _, q = split_url(seen[1].url)
    assert.equals("app=test-app&appArgs=from-originate%2Ca1&callerId=%22Demo%20A%22%20%3C1000%3E"
      .. "&endpoint=Local%2F100%40to-stasis&formats=ulaw&timeout=30", q)
  end)

  it("puts variables, fields and filter in the JSON body the way ARI expects", function()
    local c, seen = capture_client()
    ari.run(function()
      c.channels.originate { endpoint = "PJSIP/100", variables = { CALLERID = "x", ["X-Y"] = "1" } }
      c.asterisk.updateObject { configClass = "res_pjsip", objectType = "endpoint", id = "100",
        fields = { { attribute = "allow", value = "ulaw" } } }
      c.applications.filter { applicationName = "app", filter = { allowed = { { type = "StasisStart" } } } }
      c.events.userEvent { eventName = "ev", application = "app", source = { "channel:1", "bridge:2" },
        variables = { k = "v" } }
      c.bridges.addChannel { bridgeId = "b", channel = "c1", mute = false }
    end)
    local dec = client_mod.json_decode
    assert.same({ variables = { CALLERID = "x", ["X-Y"] = "1" } }, dec(seen[1].body))
    assert.equals("application/json", seen[1].headers["Content-Type"])
    assert.same({ fields = { { attribute = "allow", value = "ulaw" } } }, dec(seen[2].body))
    assert.same({ allowed = { { type = "StasisStart" } } }, dec(seen[3].body))
    assert.same({ variables = { k = "v" } }, dec(seen[4].body))
    local _, q = split_url(seen[4].url)
    assert.equals("application=app&source=channel%3A1,bridge%3A2", q)
    _, q = split_url(seen[5].url)
    assert.equals("channel=c1&mute=false", q)
    assert.is_nil(seen[5].body)
  end)

  it("accepts the colon call style too", function()
    local c, seen = capture_client()
    ari.run(function() c.channels:answer { channelId = "x" } end)
    assert.equals("http://127.0.0.1:8088/ari/channels/x/answer", seen[1].url)
  end)

  it("builds the events WebSocket URL from the connect options", function()
    local urls = {}
    local c = ari.connect { url = "https://ast.example:8089/", user = "u", password = "p",
      app = { "a", "b" }, subscribe_all = true,
      websocket = function(o) urls[#urls + 1] = o.url; return { close = function() end } end }
    assert.equals("wss://ast.example:8089/ari/events?app=a,b&subscribeAll=true", urls[1])
    c:close()
  end)
end)

describe("results", function()
  it("returns typed models and lists, bytes for binary, true for 204", function()
    local replies = {
      ["/channels/c1"] = '{"id":"c1","name":"PJSIP/1-0001","state":"Up","caller":{"name":"A","number":"1"},'
        .. '"connected":{"name":"","number":""},"accountcode":"","dialplan":{"context":"c","exten":"s",'
        .. '"priority":1,"app_name":"","app_data":""},"creationtime":"2026-11-26T08:11:35.621+0000","language":"en"}',
      ["/bridges"] = '[{"id":"b1","technology":"simple_bridge","bridge_type":"mixing","bridge_class":"stasis",'
        .. '"creator":"Stasis","name":"","channels":[],"creationtime":"2026-11-26T08:11:35.621+0000","video_mode":"none"}]',
      ["/recordings/stored/r1/file"] = "RIFF\0\1\2binary",
    }
    local c = capture_client { reply = function(req)
      local b = replies[req.path]
      if b then return 200, b, {} end
      return 204, "", {}
    end }
    local ch, bridges, file, ans = ari.run(function()
      return c.channels.get { channelId = "c1" }, c.bridges.list(), c.recordings.getStoredFile { recordingName = "r1" },
        c.channels.answer { channelId = "c1" }
    end)
    assert.equals("Channel", ari.model_of(ch))
    assert.equals("CallerID", ari.model_of(ch.caller))
    assert.equals("DialplanCEP", ari.model_of(ch.dialplan))
    assert.equals(1, ch.dialplan.priority)
    assert.equals("Channel(c1, PJSIP/1-0001, Up)", tostring(ch))
    assert.equals("Bridge", ari.model_of(bridges[1]))
    assert.equals(1, #bridges)
    assert.equals("RIFF\0\1\2binary", file)
    assert.is_true(ans)
  end)

  it("model methods fill in the object's id", function()
    local c, seen = capture_client { reply = function(req)
      if req.path == "/channels/c%2F1" then return 200, '{"id":"c/1","name":"n","state":"Up"}', {} end
      if req.path:match("/play$") then
        return 201, '{"id":"pb1","media_uri":"sound:hello-world","target_uri":"channel:c/1","language":"en","state":"queued"}', {}
      end
      if req.path == "/endpoints/PJSIP" then
        return 200, '[{"technology":"PJSIP","resource":"100/x","state":"online","channel_ids":[]}]', {}
      end
      return 204, "", {}
    end }
    ari.run(function()
      local ch = c.channels.get { channelId = "c/1" }
      assert.is_true(ch:answer())
      local pb = ch:play { media = "sound:hello-world" }
      assert.equals("Playback", ari.model_of(pb))
      pb:control { operation = "pause" }
      ch:hangup { reason = "busy" }
      local eps = c.endpoints.listByTech { tech = "PJSIP" }
      eps[1]:get()
    end)
    local got = {}
    for i, r in ipairs(seen) do got[i] = r.method .. " " .. r.url:gsub("^http://127%.0%.0%.1:8088/ari", "") end
    assert.same({
      "GET /channels/c%2F1",
      "POST /channels/c%2F1/answer",
      "POST /channels/c%2F1/play?media=sound%3Ahello-world",
      "POST /playbacks/pb1/control?operation=pause",
      "DELETE /channels/c%2F1?reason=busy",
      "GET /endpoints/PJSIP",
      "GET /endpoints/PJSIP/100%2Fx",
    }, got)
  end)
end)

describe("over real HTTP on loopback", function()
  it("every operation reaches the server as built", function()
    local got = {}
    local srv = core.server_listen({ host = "127.0.0.1", port = 0 }, {
      on_request = function(req, res)
        got[#got + 1] = req
        res:send(204, {}, "")
      end,
    })
    local c = ari.connect { url = "http://127.0.0.1:" .. srv:port(), user = "u", password = "p", events = false }
    ari.run(function()
      for _, row in ipairs(ROWS) do
        if row[1] ~= "events.eventWebsocket" then
          local before = #got
          call(c, row[1], row[4])
          assert.equals(before + 1, #got, row[1])
          local req = got[#got]
          assert.equals(row[2], req.method, row[1])
          assert.equals("/ari" .. row[3]:gsub("@", function() return ID_ENC end), req.path, row[1])
          assert.equals(row[5], req.query or "", row[1])
          if row[6] then assert.same(row[6], client_mod.json_decode(req.body), row[1]) end
          local auth = req.headers.authorization
          assert.is_truthy(auth and auth:match("^Basic "), row[1])
        end
      end
    end)
    srv:close()
    assert.equals(108, #got)
  end)
end)
