-- Error mapping: HTTP failures, transport failures, parameter errors.
local ari = require "ari"
local errors = require "ari.errors"

local function client_replying(status, body, transport_error)
  return ari.connect {
    url = "http://127.0.0.1:8088", user = "u", password = "p", events = false,
    transport = function()
      if transport_error then error(transport_error, 0) end
      return status, body, { ["content-type"] = "application/json" }
    end,
  }
end

local function fail(c, fn)
  return ari.run(function()
    local ok, err = pcall(fn, c)
    assert.is_false(ok)
    return err
  end)
end

describe("HTTP errors", function()
  -- status, operation, params, the spec's documented reason, HTTP phrase
  local cases = {
    { 400, "channels.originate", { endpoint = "x" } },
    { 401, "channels.list", {} },
    { 404, "channels.answer", { channelId = "nope" } },
    { 409, "channels.answer", { channelId = "c" } },
    { 412, "channels.answer", { channelId = "c" } },
    { 422, "bridges.addChannel", { bridgeId = "b", channel = "c" } },
    { 500, "asterisk.getInfo", {} },
  }
  local function op_of(name)
    local r, n = name:match("^([^.]+)%.(.+)$")
    return require("ari.client").operations[r][n], r, n
  end

  for _, case in ipairs(cases) do
    local status, name, params = case[1], case[2], case[3]
    it(status .. " with a JSON message uses Asterisk's message", function()
      local c = client_replying(status, '{"message":"Asterisk says ' .. status .. '"}')
      local _, r, n = op_of(name)
      local err = fail(c, function() return c[r][n](params) end)
      assert.is_true(errors.is(err))
      assert.equals(status, err.status)
      assert.equals("Asterisk says " .. status, err.message)
      assert.equals(name, err.operation)
      assert.equals("http", err.kind)
      assert.is_string(err.method)
      assert.matches("^/", err.path)
      assert.equals(name .. ": " .. status .. " Asterisk says " .. status, tostring(err))
    end)

    it(status .. " without a JSON message falls back to the spec's reason, then the HTTP phrase", function()
      local op, r, n = op_of(name)
      for _, body in ipairs({ "", "not json", "{}", '{"message":""}' }) do
        local c = client_replying(status, body)
        local err = fail(c, function() return c[r][n](params) end)
        assert.equals(status, err.status)
        local expected = (op.errors and op.errors[status]) or errors.http_reasons[status]
        assert.is_string(expected)
        assert.equals(expected, err.message)
        assert.equals(body, err.body)
      end
    end)
  end

  it("uses the documented reasons when there are some (channels.answer 404)", function()
    local c = client_replying(404, "")
    local err = fail(c, function() return c.channels.answer { channelId = "x" } end)
    assert.equals("Channel not found", err.message)
    assert.equals("channels.answer: 404 Channel not found", tostring(err))
    assert.equals("POST", err.method)
    assert.equals("/channels/x/answer", err.path)
  end)

  it("uses the HTTP phrase when the spec documents nothing (401)", function()
    local c = client_replying(401, "")
    local err = fail(c, function() return c.channels.list() end)
    assert.equals("Unauthorized", err.message)
  end)

  it("maps real Asterisk error bodies", function()
    local function read(name)
      local f = io.open("spec/fixtures/ari/rest/" .. name)
      local s = f:read("a"); f:close(); return s
    end
    local c = client_replying(404, read("error-404-channel.json"))
    local err = fail(c, function() return c.channels.get { channelId = "does-not-exist" } end)
    assert.equals("Channel not found", err.message)
    c = client_replying(400, read("error-400-missing-endpoint.json"))
    err = fail(c, function() return c.channels.originate { endpoint = "x" } end)
    assert.equals("Endpoint must be specified", err.message)
  end)
end)

describe("transport errors", function()
  it("have no status, and keep the transport's kind and message", function()
    local c = client_replying(nil, nil, { kind = "connect", message = "Connection refused", code = 7 })
    local err = fail(c, function() return c.channels.list() end)
    assert.is_true(errors.is(err))
    assert.is_nil(err.status)
    assert.equals("transport", err.kind)
    assert.equals("connect", err.transport)
    assert.equals("Connection refused", err.message)
    assert.equals("channels.list: Connection refused", tostring(err))
  end)

  it("pass other errors (a cancel, a hang-up) through unchanged", function()
    local mine = setmetatable({ hangup = true }, { __tostring = function() return "hangup" end })
    local c = client_replying(nil, nil, mine)
    local err = fail(c, function() return c.channels.list() end)
    assert.equals(mine, err)
  end)

  it("transport by name: \"http\" is the default, an unknown name is refused at once", function()
    local c = ari.connect { url = "http://127.0.0.1:9", user = "u", password = "p", events = false, transport = "http",
      timeout = 2000 }
    local err = fail(c, function() return c.asterisk.ping() end)
    assert.equals("transport", err.kind) -- went through libcurl (nothing listens there)
    local ok, e = pcall(ari.connect, { url = "http://127.0.0.1:9", user = "u", password = "p", events = false,
      transport = "htpt" })
    assert.is_false(ok)
    assert.matches('transport must be "http", "websocket", a function or an object with :request, got "htpt"', e, 1, true)
  end)

  it("really failing to connect gives a transport error", function()
    -- a port nobody listens on: bind one, close it, use its number
    local c = ari.connect { url = "http://127.0.0.1:9", user = "u", password = "p", events = false, timeout = 2000 }
    local err = fail(c, function() return c.asterisk.ping() end)
    assert.is_nil(err.status)
    assert.equals("transport", err.kind)
    assert.equals("asterisk.ping", err.operation)
  end)
end)

describe("parameter errors", function()
  it("are ari errors naming the operation and parameter, with no status", function()
    local c = client_replying(204, "")
    local ok, err = pcall(c.channels.hangup, { channelId = "x", reason = "because" })
    assert.is_false(ok)
    assert.is_true(errors.is(err))
    assert.is_nil(err.status)
    assert.equals("param", err.kind)
    assert.equals("reason", err.parameter)
    assert.equals("channels.hangup", err.operation)
    assert.matches("^channels%.hangup: parameter 'reason'", tostring(err))
  end)
end)

describe("the error family", function()
  local callmod = require "ari.call"
  local callsim = require "spec.support.callsim"

  -- what every member has: a kind, a status (or nil), a message, a readable tostring
  local function member(e, kind, status)
    assert.is_true(errors.is(e), tostring(e))
    assert.is_true(errors.is(e, kind), kind .. ": " .. tostring(e))
    assert.equals(kind, e.kind)
    assert.equals(status, e.status)
    assert.is_string(e.message)
    local s = tostring(e)
    assert.is_string(s)
    assert.is_nil(s:find("^table: "), s)
    assert.truthy(s:find(e.message, 1, true), s)
    for _, other in ipairs { "http", "transport", "param", "hangup", "call", "watchdog", "not_found" } do
      if other ~= kind and other ~= e.transport then assert.is_false(errors.is(e, other), other .. " " .. s) end
    end
    return s
  end

  it("knows its members from everything else", function()
    for _, v in ipairs { "channels.answer: 404 Not Found", { kind = "http", status = 404, message = "x" },
      setmetatable({ kind = "http" }, { __tostring = function() return "x" end }), 404, true } do
      assert.is_false(errors.is(v), tostring(v))
      assert.is_false(errors.is(v, "http"), tostring(v))
      assert.is_false(errors.not_found(v), tostring(v))
    end
    assert.is_false(errors.is(nil))
    assert.is_false(errors.not_found(nil))
  end)

  it("an HTTP error: kind http, its status, errors.not_found for a 404 only", function()
    local e404 = fail(client_replying(404, '{"message":"Channel not found"}'), function(c)
      return c.channels.get { channelId = "x" }
    end)
    assert.equals("channels.get: 404 Channel not found", member(e404, "http", 404))
    assert.is_true(errors.not_found(e404))
    assert.is_true(errors.is(e404, 404))
    assert.is_false(errors.is(e404, 409))
    local e409 = fail(client_replying(409, ""), function(c) return c.channels.answer { channelId = "c" } end)
    member(e409, "http", 409)
    assert.is_false(errors.not_found(e409))
    assert.is_true(errors.is(e409, 409))
  end)

  it("a transport error also answers to its transport kind", function()
    local e = fail(client_replying(nil, nil, { kind = "timeout", message = "no answer in 5000 ms" }), function(c)
      return c.channels.list()
    end)
    assert.equals("channels.list: no answer in 5000 ms", member(e, "transport", nil))
    assert.is_true(errors.is(e, "timeout"))
    assert.is_false(errors.is(e, "connect"))
    assert.is_false(errors.not_found(e))
  end)

  it("a parameter error", function()
    local c = client_replying(204, "")
    local ok, e = pcall(c.channels.answer, {})
    assert.is_false(ok)
    assert.equals("channels.answer: missing required parameter 'channelId'", member(e, "param", nil))
  end)

  it("kind not_found is not found whatever its status", function()
    local e = errors.new { kind = "not_found", message = "no such recording" }
    assert.equals("ari: no such recording", member(e, "not_found", nil))
    assert.is_true(errors.not_found(e))
  end)

  it("ari.http's and ari.wstransport's own failures", function()
    local ok, e = pcall(require("ari.http").urlencode, {})
    assert.is_false(ok)
    assert.equals("http invalid error: urlencode: expected a string, number or boolean, got table", member(e, "invalid", nil))
    assert.equals(require("ari.http").Error, getmetatable(e))
    local t = require("ari.wstransport").new { send = function() return nil, "socket gone" end }
    ok, e = pcall(t.request, t, { method = "GET", path = "/asterisk/info" })
    assert.is_false(ok)
    assert.equals("ari: cannot send the request: socket gone", member(e, "reset", nil))
  end)

  it("a WatchdogError", function()
    local wd = require "ari.watchdog"
    local e = setmetatable({ kind = "watchdog", watchdog = true, channel_id = "c1", limit = 5, elapsed = 9,
      message = "call c1 ran 9 ms without yielding (watchdog_ms 5)" }, wd.WatchdogError)
    assert.equals("watchdog: call c1 ran 9 ms without yielding (watchdog_ms 5)", member(e, "watchdog", nil))
    assert.is_true(wd.is_watchdog(e))
  end)

  it("a real Hangup, a real CallError and a real 404 from the simulator", function()
    local got = {}
    callsim.run({ endpoints = { ["PJSIP/busy"] = { busy = true } },
      calls = { { from = "2001", channel_id = "fam-1",
        script = { { "wait_answer" }, { "sleep", 3000 }, { "hangup", cause = 16 } } } } },
      function(app)
        app:on_call(function(call)
          call:answer()
          got.peer, got.reason, got.dial_err = call:dial("PJSIP/busy", { timeout = 2 })
          got.play_ok, got.play_err = pcall(call.play, call, "bogus:thing")
          got.get_ok, got.get_err = pcall(app.client.channels.get, { channelId = "no-such-channel" })
          got.sleep_ok, got.hangup = pcall(call.sleep, call, 60000)
          got.after_ok, got.after = pcall(call.answer, call)
        end)
      end)

    -- the Hangup the sleep raised, and the one every later helper raises
    assert.is_false(got.sleep_ok)
    local h = got.hangup
    assert.equals("call fam-1 hung up (cause 16)", member(h, "hangup", nil))
    assert.equals(callmod.Hangup, getmetatable(h))
    assert.is_true(callmod.is_hangup(h))
    assert.is_true(h.hangup)
    assert.equals("fam-1", h.channel_id)
    assert.equals(16, h.cause)
    assert.is_false(errors.not_found(h))
    assert.is_false(got.after_ok)
    assert.is_true(errors.is(got.after, "hangup"))

    -- the CallError dial returned for a busy number
    assert.is_nil(got.peer)
    assert.equals("busy", got.reason)
    local ce = got.dial_err
    member(ce, "call", nil)
    assert.matches("^originate: PJSIP/busy: busy", tostring(ce))
    assert.equals(callmod.CallError, getmetatable(ce))
    assert.is_false(callmod.is_hangup(ce))
    assert.equals("busy", ce.reason)
    assert.equals("originate", ce.operation)

    -- the CallError play raised for media it cannot play
    assert.is_false(got.play_ok)
    assert.equals(callmod.CallError, getmetatable(got.play_err))
    assert.equals("invalid", got.play_err.reason)
    assert.matches("bogus:thing", member(got.play_err, "call", nil))

    -- Asterisk's 404 for a channel that does not exist
    assert.is_false(got.get_ok)
    assert.equals("channels.get: 404 Channel not found", member(got.get_err, "http", 404))
    assert.is_true(errors.not_found(got.get_err))
  end)
end)

describe("usage errors", function()
  it("are of the family (kind usage), and read as Lua's own file:line: message", function()
    local server = require "ari.server"
    local function misuse()
      local s = server.listen { host = "127.0.0.1", port = 0, handler = 1 } -- line A
      return s
    end
    local line = debug.getinfo(misuse, "S").linedefined + 1
    local ok, e = pcall(misuse)
    assert.is_false(ok)
    assert.is_true(errors.is(e, "usage"))
    assert.is_nil(e.status)
    assert.equals("server.listen: handler must be a function", e.message)
    assert.equals("spec/errors_spec.lua:" .. line, e.where)
    assert.equals("spec/errors_spec.lua:" .. line .. ": server.listen: handler must be a function", tostring(e))
  end)

  it("without a Lua caller to point at, are the message alone", function()
    local ok, e = pcall(require("ari.log").set_level, "loud")
    assert.is_false(ok)
    assert.is_true(errors.is(e, "usage"))
    assert.equals("unknown log level 'loud'", tostring(e))
  end)
end)
