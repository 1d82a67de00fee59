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
