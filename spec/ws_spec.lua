-- The WebSocket client (core.ws_connect / ari.ws) against the project's own
-- server (ari.server), and against a hand-rolled "raw" peer (core server +
-- res:raw, the handshake written by this file) for what a well-behaved
-- server never does: fragmented messages, never answering pings.
local ari = require "ari"
local core = require "ari.core"
local ws = require "ari.ws"
local server = require "ari.server"

-- SHA-1 (for Sec-WebSocket-Accept in the raw peer)
local sha1 = require "spec.support.sha1"

-- A server frame (unmasked).
local function frame(op, payload, fin)
  local b0 = (fin == false and 0 or 0x80) | op
  local n = #payload
  if n < 126 then return string.char(b0, n) .. payload end
  if n < 65536 then return string.char(b0, 126) .. string.pack(">I2", n) .. payload end
  return string.char(b0, 127) .. string.pack(">I8", n) .. payload
end

-- A raw peer: answers the handshake itself, then on_ws(res) may write
-- frames with res:raw.  It never reads what the client sends (so it never
-- answers a ping).
local function raw_peer(on_ws)
  local s = core.server_listen({ host = "127.0.0.1", port = 0 }, {
    on_request = function(req, res)
      local key = req.headers["sec-websocket-key"]
      local accept = ws.base64(sha1(key .. "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
      res:raw("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
        "Sec-WebSocket-Accept: " .. accept .. "\r\n\r\n")
      if on_ws then on_ws(res, req) end
    end,
  })
  return s, "ws://127.0.0.1:" .. s:port() .. "/raw"
end

local function wait_for(cond, ms)
  local t0 = core.now()
  while not cond() do
    if core.now() - t0 > (ms or 5000) then return false end
    ari.sleep(5)
  end
  return true
end

describe("ws client", function()
  it("sends the Authorization header and receives 1000 messages in order, and sends to the server", function()
    local got, auth, path, from_client = {}, nil, nil, {}
    local state_after
    ari.run(function()
      local srv = server.listen {
        host = "127.0.0.1", port = 0,
        on_websocket = function(req)
          auth, path = req.headers.authorization, req.path .. "?" .. (req.query or "")
          local sock = req:upgrade(nil, {
            on_message = function(_, data) from_client[#from_client + 1] = data end,
          })
          for i = 1, 1000 do sock:send("m" .. i) end
        end,
      }
      local conn = ws.connect {
        url = srv:ws_url("/ari/events?app=demo&subscribeAll=true"), user = "asterisk", password = "s3cret",
        on_message = function(text) got[#got + 1] = text end,
      }
      assert.is_true(conn:wait_open(5000))
      assert.is_true(wait_for(function() return #got >= 1000 end))
      assert.is_true(conn:send("hello"))
      assert.is_true(conn:send(("z"):rep(100000)))
      assert.is_true(wait_for(function() return #from_client >= 2 end))
      state_after = conn:state()
      assert.equals(1000, conn:stats().messages)
      conn:close()
      srv:close()
    end)
    assert.equals("Basic " .. ws.base64("asterisk:s3cret"), auth)
    assert.equals("/ari/events?app=demo&subscribeAll=true", path)
    assert.equals(1000, #got)
    for i = 1, 1000 do
      if got[i] ~= "m" .. i then error("message " .. i .. " out of order: " .. tostring(got[i])) end
    end
    assert.same({ "hello", ("z"):rep(100000) }, from_client)
    assert.equals("open", state_after)
  end)

  it("decodes JSON messages; a malformed one gives (nil, err, text) and later ones still arrive", function()
    local got = {}
    ari.run(function()
      local srv = server.listen {
        host = "127.0.0.1", port = 0,
        on_websocket = function(req)
          local sock = req:upgrade(nil, {})
          sock:send('{"type":"StasisStart","n":1,"list":[1,2]}')
          sock:send('{"type": broken')
          sock:send('{"n":3}')
        end,
      }
      local conn = ws.connect {
        url = srv:ws_url("/j"), json = true,
        on_message = function(v, err, raw) got[#got + 1] = { v = v, err = err, raw = raw } end,
      }
      assert.is_true(wait_for(function() return #got >= 3 end))
      conn:close()
      srv:close()
    end)
    assert.equals("table", type(got[1].v))
    assert.equals("StasisStart", got[1].v.type)
    assert.equals(1, got[1].v.n)
    assert.equals(2, got[1].v.list[2])
    assert.is_nil(got[2].v)
    assert.matches("byte", got[2].err)
    assert.equals('{"type": broken', got[2].raw)
    assert.equals(3, got[3].v.n)
  end)

  it("drops an oversize message, counts it, and keeps the connection usable", function()
    local got, echoed = {}, {}
    local stats, state, logged
    local prev_logger = ari.log.error
    ari.run(function()
      local srv = server.listen {
        host = "127.0.0.1", port = 0,
        on_websocket = function(req)
          local sock = req:upgrade(nil, { on_message = function(_, d) echoed[#echoed + 1] = d end })
          sock:send("small-1")
          sock:send(("x"):rep(5000))
          sock:send("small-2")
        end,
      }
      core.set_logger(function(level, msg) if msg:find("max_message", 1, true) then logged = msg end end)
      local conn = ws.connect {
        url = srv:ws_url("/big"), max_message = 1000,
        on_message = function(text) got[#got + 1] = text end,
      }
      assert.is_true(wait_for(function() return #got >= 2 end))
      assert.is_true(conn:send("still here"))
      assert.is_true(wait_for(function() return #echoed >= 1 end))
      stats, state = conn:stats(), conn:state()
      conn:close()
      srv:close()
    end)
    core.set_logger(function(level, msg) ari.log[level](msg) end)
    assert.is_function(prev_logger)
    assert.same({ "small-1", "small-2" }, got)
    assert.equals(1, stats.dropped)
    assert.equals(2, stats.messages)
    assert.equals("open", state)
    assert.same({ "still here" }, echoed)
    assert.matches("max_message", logged)
  end)

  it("reassembles a fragmented message (with a ping in the middle)", function()
    local got = {}
    ari.run(function()
      local srv, url = raw_peer(function(res)
        res:raw(frame(1, "frag", false) .. frame(9, "p") .. frame(0, "men", false) .. frame(0, "ted", true) ..
          frame(1, "whole"))
      end)
      local conn = ws.connect {
        url = url, ping_interval = 0,
        on_message = function(text) got[#got + 1] = text end,
      }
      assert.is_true(wait_for(function() return #got >= 2 end))
      conn:close()
      srv:close()
    end)
    assert.same({ "fragmented", "whole" }, got)
  end)

  it("reconnects after the server closes the connection", function()
    local opens, closes, conns = 0, {}, 0
    local stats
    ari.run(function()
      local srv = server.listen {
        host = "127.0.0.1", port = 0,
        on_websocket = function(req)
          conns = conns + 1
          local sock = req:upgrade(nil, {})
          if conns == 1 then ari.sleep(20); sock:close(4000, "go away") end
        end,
      }
      local conn = ws.connect {
        url = srv:ws_url("/r"), backoff_min = 10, backoff_max = 50,
        on_open = function() opens = opens + 1 end,
        on_close = function(code, reason, again) closes[#closes + 1] = { code, reason, again } end,
      }
      assert.is_true(wait_for(function() return opens >= 2 end))
      stats = conn:stats()
      conn:close()
      assert.is_true(wait_for(function() return #closes >= 2 end))
      srv:close()
    end)
    assert.equals(2, opens)
    assert.equals(2, conns)
    assert.equals(1, stats.reconnects)
    assert.same({ 4000, "go away", true }, closes[1])
    assert.equals(1000, closes[2][1])
    assert.is_false(closes[2][3])
  end)

  it("close() stops for good: the server sees a normal close and no new connection", function()
    local conns, server_close, client_close = 0, nil, nil
    local state
    ari.run(function()
      local srv = server.listen {
        host = "127.0.0.1", port = 0,
        on_websocket = function(req)
          conns = conns + 1
          req:upgrade(nil, { on_close = function(_, code) server_close = code end })
        end,
      }
      local conn = ws.connect {
        url = srv:ws_url("/c"), backoff_min = 5, backoff_max = 10,
        on_close = function(code, reason, again) client_close = { code, again } end,
      }
      assert.is_true(conn:wait_open(5000))
      conn:close()
      assert.is_true(wait_for(function() return client_close ~= nil and server_close ~= nil end))
      ari.sleep(100)
      state = conn:state()
      assert.is_nil(conn:send("x"))
      srv:close()
    end)
    assert.equals(1, conns)
    assert.equals(1000, server_close)
    assert.same({ 1000, false }, client_close)
    assert.equals("closed", state)
  end)

  it("keeps retrying while the connection is refused, then connects when the server appears", function()
    local errors, opened, stats, states = 0, false, nil, {}
    ari.run(function()
      -- find a free port, then free it again
      local probe = server.listen { host = "127.0.0.1", port = 0, handler = function() return 200 end }
      local port = probe:port()
      probe:close()
      ari.sleep(10)
      local conn = ws.connect {
        url = "ws://127.0.0.1:" .. port .. "/late", backoff_min = 20, backoff_max = 80,
        on_error = function() errors = errors + 1 end,
        on_open = function() opened = true end,
      }
      ari.sleep(300)
      states[1] = conn:state()
      local srv = server.listen {
        host = "127.0.0.1", port = port,
        on_websocket = function(req) req:upgrade(nil, {}) end,
      }
      assert.is_true(conn:wait_open(5000))
      stats = conn:stats()
      conn:close()
      srv:close()
    end)
    assert.is_true(opened)
    assert.is_true(errors >= 2, "errors " .. errors)
    assert.is_true(stats.reconnects >= 2, "reconnects " .. stats.reconnects)
    assert.is_true(states[1] == "waiting" or states[1] == "connecting")
  end)

  it("wait_open times out when nothing listens, and the error is readable", function()
    local ok, err
    ari.run(function()
      local probe = server.listen { host = "127.0.0.1", port = 0, handler = function() return 200 end }
      local port = probe:port()
      probe:close()
      local conn = ws.connect { url = "ws://127.0.0.1:" .. port .. "/", backoff_min = 20, on_error = function() end }
      ok, err = conn:wait_open(150)
      conn:close()
    end)
    assert.is_nil(ok)
    assert.is_true(err.timeout)
    assert.matches("timed out", tostring(err))
  end)

  it("without reconnect, a refused connection ends in on_close(..., false) and state closed", function()
    local closed, state
    ari.run(function()
      local probe = server.listen { host = "127.0.0.1", port = 0, handler = function() return 200 end }
      local port = probe:port()
      probe:close()
      local conn = ws.connect {
        url = "ws://127.0.0.1:" .. port .. "/", reconnect = false, on_error = function() end,
        on_close = function(code, reason, again) closed = { code, again } end,
      }
      local ok, err = conn:wait_open(2000)
      assert.is_nil(ok)
      assert.is_true(err.closed)
      state = conn:state()
    end)
    assert.same({ 1006, false }, closed)
    assert.equals("closed", state)
  end)

  it("pings keep an idle connection alive (the server answers them)", function()
    local stats, state, closes = nil, nil, 0
    ari.run(function()
      local srv = server.listen {
        host = "127.0.0.1", port = 0,
        on_websocket = function(req) req:upgrade(nil, {}) end,
      }
      local conn = ws.connect {
        url = srv:ws_url("/idle"), ping_interval = 40, pong_timeout = 30,
        on_close = function() closes = closes + 1 end,
      }
      assert.is_true(conn:wait_open(5000))
      ari.sleep(500) -- about 10 ping rounds, no other traffic
      stats, state = conn:stats(), conn:state()
      conn:close()
      assert.is_true(wait_for(function() return closes >= 1 end))
      srv:close()
    end)
    -- without pings answered by pongs, the pong deadline would have fired
    assert.equals(0, stats.reconnects)
    assert.equals("open", state)
    assert.equals(1, closes)
  end)

  it("detects a peer that stops answering pings and reconnects", function()
    local closes, opens, stats = {}, 0, nil
    ari.run(function()
      local srv, url = raw_peer()
      local conn = ws.connect {
        url = url, ping_interval = 40, pong_timeout = 40, backoff_min = 10, backoff_max = 20,
        on_open = function() opens = opens + 1 end,
        on_close = function(code, reason, again) closes[#closes + 1] = { code, reason, again } end,
      }
      assert.is_true(wait_for(function() return opens >= 2 end))
      stats = conn:stats()
      conn:close()
      srv:close()
    end)
    assert.same({ 1006, "pong timeout", true }, closes[1])
    assert.is_true(stats.reconnects >= 1)
  end)

  it("gives up an attempt after connect_timeout when the handshake gets no answer", function()
    local errs, closed = {}, nil
    ari.run(function()
      local srv = core.server_listen({ host = "127.0.0.1", port = 0 }, { on_request = function() end })
      local conn = ws.connect {
        url = "ws://127.0.0.1:" .. srv:port() .. "/silent", connect_timeout = 100, reconnect = false,
        on_error = function(e) errs[#errs + 1] = e end,
        on_close = function(code, reason, again) closed = { code, reason, again } end,
      }
      assert.is_true(wait_for(function() return closed ~= nil end))
      srv:close()
    end)
    assert.same({ "connect timeout" }, errs)
    assert.same({ 1006, "connect timeout", false }, closed)
  end)

  it("reports a TLS handshake failure (wss:// to a plain server) as an error", function()
    local errs, closed = {}, nil
    ari.run(function()
      local srv = server.listen { host = "127.0.0.1", port = 0, handler = function() return 200 end }
      local conn = ws.connect {
        url = "wss://127.0.0.1:" .. srv:port() .. "/tls", reconnect = false, connect_timeout = 1000,
        on_error = function(e) errs[#errs + 1] = e end,
        on_close = function(code, reason, again) closed = { code, again } end,
      }
      assert.is_true(wait_for(function() return closed ~= nil end))
      srv:close()
    end)
    assert.equals(1, #errs)
    assert.same({ 1006, false }, closed)
  end)

  it("close() during the handshake ends the attempt at once", function()
    local closed
    ari.run(function()
      local srv = core.server_listen({ host = "127.0.0.1", port = 0 }, { on_request = function() end })
      local conn = ws.connect {
        url = "ws://127.0.0.1:" .. srv:port() .. "/silent", connect_timeout = 5000,
        on_close = function(code, reason, again) closed = { code, reason, again } end,
      }
      ari.sleep(50)
      assert.equals("connecting", conn:state())
      conn:close()
      assert.is_true(wait_for(function() return closed ~= nil end))
      assert.equals("closed", conn:state())
      srv:close()
    end)
    -- (a connect timeout would say "connect timeout")
    assert.same({ 1000, "closed by client", false }, closed)
  end)

  it("rejects bad options with readable errors", function()
    local e1 = select(2, pcall(ws.connect, { url = "http://127.0.0.1/" }))
    assert.equals("websocket", e1.kind)
    assert.matches("ws://", tostring(e1))
    local e2 = select(2, pcall(ws.connect, { url = "ws://127.0.0.1:99999/" }))
    assert.matches("port", tostring(e2))
    local e3 = select(2, pcall(ws.connect, { url = "ws://u:p@127.0.0.1/" }))
    assert.matches("credentials", tostring(e3))
    local e4 = select(2, pcall(ws.connect, { url = "ws://127.0.0.1/", bogus = 1 }))
    assert.matches("unknown option", tostring(e4))
    local e5 = select(2, pcall(ws.connect, { url = "ws://127.0.0.1/", headers = { ["Bad\r\nName"] = "x" } }))
    assert.matches("header", tostring(e5))
    assert.has_error(function() core.ws_connect({ url = "ws://127.0.0.1/", ping_interval = -1 }, {}) end)
  end)

  it("close() while waiting to reconnect reports on_close(..., false) once", function()
    local closes = {}
    local state
    ari.run(function()
      local probe = server.listen { host = "127.0.0.1", port = 0, handler = function() return 200 end }
      local port = probe:port()
      probe:close()
      local conn = ws.connect {
        url = "ws://127.0.0.1:" .. port .. "/", backoff_min = 1000, on_error = function() end,
        on_close = function(code, reason, again) closes[#closes + 1] = { code, again } end,
      }
      assert.is_true(wait_for(function() return conn:state() == "waiting" end))
      conn:close()
      ari.sleep(50)
      state = conn:state()
    end)
    assert.same({ { 1000, false } }, closes)
    assert.equals("closed", state)
  end)
end)
