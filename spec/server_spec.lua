-- The HTTP/1.1 + WebSocket server (core.server_listen and ari.server).
-- Clients are separate processes (curl, or bash /dev/tcp for raw bytes)
-- started in the background; the loop keeps running while they talk to the
-- server and the spec polls for their output with ari.sleep.
local ari = require "ari"
local core = require "ari.core"
local server = require "ari.server"
local util = require "spec.support.util"

local tmpdir = os.tmpname()
os.remove(tmpdir)
os.execute("mkdir -p " .. tmpdir)
local seq = 0

local readfile = util.read

local function writefile(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- Start `cmd` in the background; returns a function that waits (on the
-- loop) for it to finish and returns its output and exit code.
local function bg(cmd)
  seq = seq + 1
  local out = ("%s/%d.out"):format(tmpdir, seq)
  -- children must not inherit a sanitizer preload (make check)
  os.execute(("( ( env -u LD_PRELOAD %s ) > %s 2>&1; echo $? > %s.done ) < /dev/null &"):format(cmd, out, out))
  return function(limit_ms)
    local deadline = core.now() + (limit_ms or 15000)
    while not readfile(out .. ".done") do
      if core.now() > deadline then error("background command did not finish: " .. cmd) end
      ari.sleep(10)
    end
    return readfile(out), tonumber(readfile(out .. ".done"))
  end
end

-- Send raw bytes on a new TCP connection and collect everything the server
-- sends until it closes the connection (or `secs` pass).
local function raw(port, bytes, secs)
  seq = seq + 1
  local input = ("%s/%d.in"):format(tmpdir, seq)
  writefile(input, bytes)
  return bg(("timeout %d bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d; cat %s >&3; cat <&3'"):format(
    secs or 5, port, input))
end

local function curl(args) return bg("curl -s -S --max-time 10 " .. args) end

-- Parse an HTTP response (status, headers with lower-case names, body).
local function parse_response(s)
  local head, rest = s:match("^(.-)\r\n\r\n(.*)$")
  assert(head, "no HTTP response in: " .. s)
  local status = tonumber(head:match("^HTTP/1%.%d (%d+)"))
  local h = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+): ([^\r\n]*)") do h[name:lower()] = value end
  return status, h, rest
end

-- A masked client frame.
local function frame(op, payload, fin, unmasked)
  local b1 = (fin == false and 0 or 0x80) | op
  local n = #payload
  local mbit = unmasked and 0 or 0x80
  local hdr
  if n < 126 then hdr = string.char(b1, mbit | n)
  elseif n < 65536 then hdr = string.char(b1, mbit | 126, n >> 8, n & 255)
  else hdr = string.char(b1, mbit | 127) .. string.pack(">I8", n) end
  if unmasked then return hdr .. payload end
  local key = { 0x11, 0x22, 0x33, 0x44 }
  local out = {}
  for i = 1, n do out[i] = string.char(payload:byte(i) ~ key[(i - 1) % 4 + 1]) end
  return hdr .. string.char(table.unpack(key)) .. table.concat(out)
end

-- Server frames (unmasked) from s: list of { op, fin, payload }.
local function parse_frames(s)
  local frames, i = {}, 1
  while i + 1 <= #s do
    local b1, b2 = s:byte(i, i + 1)
    local n, p = b2 & 0x7f, i + 2
    if n == 126 then n = string.unpack(">I2", s, p); p = p + 2
    elseif n == 127 then n = string.unpack(">I8", s, p); p = p + 8 end
    assert(b2 & 0x80 == 0, "server frames must not be masked")
    frames[#frames + 1] = { op = b1 & 0x0f, fin = b1 & 0x80 ~= 0, payload = s:sub(p, p + n - 1) }
    i = p + n
  end
  return frames
end

local function close_payload(f)
  return string.unpack(">I2", f.payload), f.payload:sub(3)
end

local SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="          -- RFC 6455 section 1.3
local SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

local function handshake(path, extra)
  return ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"):format(path or "/ws", SAMPLE_KEY, extra or "")
end

-- A server whose websockets echo every message and record what happens.
local function echo_server(opts)
  local log = { messages = {}, closes = {} }
  opts = opts or {}
  opts.on_websocket = function(req)
    log.ws = req:upgrade(req.headers["sec-websocket-protocol"] and "echo" or nil, {
      on_message = function(ws, data, binary)
        log.messages[#log.messages + 1] = { data = data, binary = binary }
        ws:send(data, binary)
      end,
      on_close = function(_, code, reason) log.closes[#log.closes + 1] = { code = code, reason = reason } end,
    })
  end
  local s = assert(server.listen(opts))
  return s, log
end

describe("server (HTTP)", function()
  it("serves a GET with the request fields the contract promises", function()
    local seen
    local out = ari.run(function()
      local s = assert(server.listen{ handler = function(req)
        seen = req
        return 201, { ["X-Test"] = "yes", ["Content-Type"] = "text/plain" }, "hello " .. req.path
      end })
      local out = curl(("-i -H 'X-Custom: a' -H 'x-custom: b' 'http://127.0.0.1:%d/some/path?x=1&y=2'"):format(s:port()))()
      s:close()
      return out
    end)
    local status, h, body = parse_response(out)
    assert.equals(201, status)
    assert.equals("yes", h["x-test"])
    assert.equals(tostring(#"hello /some/path"), h["content-length"])
    assert.equals("hello /some/path", body)
    assert.equals("GET", seen.method)
    assert.equals("/some/path", seen.path)
    assert.equals("x=1&y=2", seen.query)
    assert.equals("a, b", seen.headers["x-custom"])
    assert.matches("^curl/", seen.headers["user-agent"])
    assert.matches("^127%.0%.0%.1:%d+$", seen.remote)
    assert.equals("", seen.body)
    assert.is_false(seen.websocket)
  end)

  it("receives a POST body byte for byte", function()
    local data = {}
    for i = 0, 255 do data[#data + 1] = string.char(i) end
    data = table.concat(data):rep(300) -- 76800 bytes, NULs included
    local input = tmpdir .. "/post.bin"
    writefile(input, data)
    local got, out
    ari.run(function()
      local s = assert(server.listen{ handler = function(req)
        got = req.body
        return 200, nil, tostring(#req.body)
      end })
      out = curl(("-H 'Content-Type: application/octet-stream' --data-binary @%s http://127.0.0.1:%d/up"):format(
        input, s:port()))()
      s:close()
    end)
    assert.equals(tostring(#data), out)
    assert.is_true(got == data, "body differs")
  end)

  it("reuses a keep-alive connection and closes HTTP/1.0 ones", function()
    local st11, st10
    ari.run(function()
      local s = assert(server.listen{ handler = function(req) return 200, nil, req.path end })
      local u = ("http://127.0.0.1:%d"):format(s:port())
      local out = curl(("%s/a %s/b %s/c"):format(u, u, u))()
      assert.equals("/a/b/c", out)
      st11 = s:stats()
      curl(("--http1.0 %s/a %s/b"):format(u, u))()
      st10 = s:stats()
      s:close()
    end)
    assert.equals(1, st11.accepted)
    assert.equals(3, st11.requests)
    assert.equals(3, st10.accepted)
    assert.equals(5, st10.requests)
  end)

  it("sends the handler's 404, a JSON 500 for a failing handler, and the status of a structured error", function()
    local logged = {}
    local log = require "ari.log"
    local prev = log.error
    log.error = function(fmt, ...) logged[#logged + 1] = select("#", ...) > 0 and fmt:format(...) or fmt end
    local outs = {}
    ari.run(function()
      local s = assert(server.listen{ handler = function(req)
        if req.path == "/missing" then return 404, nil, { message = "no such thing" } end
        if req.path == "/boom" then error("kaboom in handler") end
        if req.path == "/denied" then
          error(setmetatable({ status = 403, message = "not yours" }, { __tostring = function() return "denied" end }))
        end
        return 200
      end })
      for _, p in ipairs{ "/missing", "/boom", "/denied" } do
        outs[p] = curl(("-i http://127.0.0.1:%d%s"):format(s:port(), p))()
      end
      s:close()
    end)
    log.error = prev
    local st, h, body = parse_response(outs["/missing"])
    assert.equals(404, st)
    assert.equals("application/json", h["content-type"])
    assert.same({ message = "no such thing" }, core.json_decode(body))
    st, h, body = parse_response(outs["/boom"])
    assert.equals(500, st)
    assert.equals("application/json", h["content-type"])
    assert.matches("kaboom in handler", core.json_decode(body).message)
    st, _, body = parse_response(outs["/denied"])
    assert.equals(403, st)
    assert.equals("not yours", core.json_decode(body).message)
    assert.matches("kaboom in handler", table.concat(logged, "\n"))
  end)

  it("answers 413 to a body over max_body without calling the handler", function()
    local calls = 0
    local input = tmpdir .. "/big.bin"
    writefile(input, ("x"):rep(5000))
    local out
    ari.run(function()
      local s = assert(server.listen{ max_body = 1000, handler = function() calls = calls + 1; return 200 end })
      out = curl(("-o /dev/null -w '%%{http_code}' --data-binary @%s http://127.0.0.1:%d/"):format(input, s:port()))()
      s:close()
    end)
    assert.equals("413", out)
    assert.equals(0, calls)
  end)

  it("answers 400 / 431 / 501 / 505 to malformed requests and closes", function()
    local outs = {}
    local calls = 0
    ari.run(function()
      local s = assert(server.listen{ max_header = 2048, handler = function() calls = calls + 1; return 200 end })
      local p = s:port()
      local w = {
        garbage = raw(p, "GARBAGE\r\n\r\n"),
        space = raw(p, "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"),
        badname = raw(p, "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
        cl = raw(p, "POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n"),
        big = raw(p, "GET / HTTP/1.1\r\nX: " .. ("a"):rep(3000) .. "\r\n\r\n"),
        te = raw(p, "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
        ver = raw(p, "GET / HTTP/2.0\r\n\r\n"),
      }
      for k, wait in pairs(w) do outs[k] = wait() end
      s:close()
    end)
    assert.equals(0, calls)
    local want = { garbage = 400, space = 400, badname = 400, cl = 400, big = 431, te = 501, ver = 505 }
    for k, code in pairs(want) do
      local st, h = parse_response(outs[k])
      assert.equals(code, st, k)
      assert.equals("close", h.connection, k)
    end
  end)

  it("decodes a chunked request body (extensions and trailers included)", function()
    local got, out
    ari.run(function()
      local s = assert(server.listen{ handler = function(req) got = req.body; return 200, nil, "ok" end })
      out = raw(s:port(), "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" ..
        "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n")()
      s:close()
    end)
    assert.equals(200, (parse_response(out)))
    assert.equals("hello, world", got)
  end)

  it("answers pipelined requests in order even when the first is slower", function()
    local out
    ari.run(function()
      local s = assert(server.listen{ handler = function(req)
        if req.path == "/slow" then ari.sleep(80) end
        return 200, nil, req.path .. ";"
      end })
      out = raw(s:port(), "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n" ..
        "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")()
      s:close()
    end)
    local bodies = {}
    for b in out:gmatch("\r\n\r\n(/%a+;)") do bodies[#bodies + 1] = b end
    assert.same({ "/slow;", "/fast;", "/last;" }, bodies)
  end)

  it("lets a response be sent later from another coroutine (core API)", function()
    local order = {}
    ari.run(function()
      local held
      local s = assert(core.server_listen({}, { on_request = function(req, res)
        if req.path == "/later" then held = res; return end
        res:send(200, { ["Content-Type"] = "text/plain" }, "now")
      end }))
      local u = ("http://127.0.0.1:%d"):format(s:port())
      local w1 = curl(u .. "/later")
      while not held do ari.sleep(5) end
      local w2 = curl(u .. "/now")
      order[#order + 1] = w2()
      ari.spawn(function()
        ari.sleep(20)
        assert.is_true(held:send(200, nil, "later"))
        assert.is_false(held:send(200, nil, "twice"))
      end)
      order[#order + 1] = w1()
      s:close()
    end)
    assert.same({ "now", "later" }, order)
  end)

  it("honours Connection: close, sends no body for HEAD, and reports a gone connection", function()
    local head_out, close_out, after_drop
    ari.run(function()
      local dropped
      local s = assert(core.server_listen({}, { on_request = function(req, res)
        if req.path == "/drop" then dropped = res; return end
        res:send(200, { ["Content-Type"] = "text/plain" }, "body!")
      end }))
      local p = s:port()
      head_out = raw(p, "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")()
      close_out = raw(p, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")()
      local w = raw(p, "GET /drop HTTP/1.1\r\nHost: x\r\n\r\n")
      while not dropped do ari.sleep(5) end
      assert.is_true(dropped:raw("HTTP/1.1 200 OK\r\nContent-Le"))
      assert.is_true(dropped:drop())
      assert.equals("HTTP/1.1 200 OK\r\nContent-Le", w())
      after_drop = dropped:send(200, nil, "x")
      s:close()
    end)
    local st, h, body = parse_response(head_out)
    assert.equals(200, st)
    assert.equals("5", h["content-length"])
    assert.equals("", body)
    st, h, body = parse_response(close_out)
    assert.equals("close", h.connection)
    assert.equals("body!", body)
    assert.is_false(after_drop)
  end)

  it("server:close() stops listening and closes open connections", function()
    local before, after, out
    ari.run(function()
      local s = assert(server.listen{ handler = function() return 200 end })
      local p = s:port()
      local w = raw(p, "GET / HTTP/1.1\r\nHost: x\r\n") -- incomplete: the server waits
      local deadline = core.now() + 5000
      while s:stats().connections < 1 and core.now() < deadline do ari.sleep(5) end
      -- let the request bytes (sent just after the connect) arrive and be read: a
      -- socket closed with unread input ends with RST, not the EOF checked below
      ari.sleep(100)
      before = s:stats()
      s:close()
      after = s:stats()
      out = { w() }
      -- nothing listens any more
      local o = curl(("-o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/"):format(p))()
      out[3] = o
    end)
    assert.equals(1, before.connections)
    assert.is_true(before.listening)
    assert.equals(0, after.connections)
    assert.is_false(after.listening)
    assert.equals("", out[1])
    assert.equals(0, out[2]) -- cat ended on EOF, not on the timeout
    assert.matches("000$", out[3])
  end)

  it("returns nil, err when the port is taken, and binds loopback by default", function()
    local s1, s2, err
    ari.run(function()
      s1 = assert(server.listen{ handler = function() return 200 end })
      s2, err = server.listen{ port = s1:port() }
      s1:close()
    end)
    assert.is_nil(s2)
    assert.matches("cannot listen", err)
    assert.matches("^http://127%.0%.0%.1:%d+$", s1:url())
    assert.has_error(function() server.listen{ handler = 42 } end)
  end)
end)

describe("server (WebSocket)", function()
  it("completes the RFC 6455 handshake with the right accept key and subprotocol", function()
    local out, st_during
    ari.run(function()
      local s, log = echo_server()
      local w = raw(s:port(), handshake("/ws", "Sec-WebSocket-Protocol: echo, other\r\n"), 5)
      local deadline = core.now() + 5000
      while not log.ws and core.now() < deadline do ari.sleep(5) end
      st_during = s:stats()
      log.ws:close(1000, "done")
      out = w()
      s:close()
    end)
    local st, h, rest = parse_response(out)
    assert.equals(101, st)
    assert.equals(SAMPLE_ACCEPT, h["sec-websocket-accept"])
    assert.equals("websocket", h.upgrade:lower())
    assert.equals("echo", h["sec-websocket-protocol"])
    assert.equals(1, st_during.websockets)
    local f = parse_frames(rest)
    assert.equals(8, f[1].op)
    local code, reason = close_payload(f[1])
    assert.equals(1000, code)
    assert.equals("done", reason)
  end)

  it("echoes text and binary, reassembles fragments, answers ping, does the close handshake", function()
    local out, log
    local big = ("0123456789"):rep(7000) -- 70000 bytes: 64-bit length form
    ari.run(function()
      local s
      s, log = echo_server()
      out = raw(s:port(), handshake() ..
        frame(1, "hi") ..
        frame(2, "\0\1\2\255") ..
        frame(1, "frag", false) .. frame(9, "mid-ping") .. frame(0, "ment", false) .. frame(0, "ed", true) ..
        frame(1, big) ..
        frame(8, string.pack(">I2", 4001) .. "bye"))()
      local deadline = core.now() + 2000
      while #log.closes == 0 and core.now() < deadline do ari.sleep(5) end
      assert.equals(0, s:stats().websockets)
      s:close()
    end)
    local _, _, rest = parse_response(out)
    local f = parse_frames(rest)
    assert.equals(6, #f)
    assert.same({ 1, "hi" }, { f[1].op, f[1].payload })
    assert.same({ 2, "\0\1\2\255" }, { f[2].op, f[2].payload })
    assert.same({ 10, "mid-ping" }, { f[3].op, f[3].payload })
    assert.same({ 1, "fragmented" }, { f[4].op, f[4].payload })
    assert.equals(#big, #f[5].payload)
    assert.is_true(f[5].payload == big)
    assert.equals(8, f[6].op)
    assert.same({ 4001, "bye" }, { close_payload(f[6]) })
    assert.same({ "hi", false }, { log.messages[1].data, log.messages[1].binary })
    assert.is_true(log.messages[2].binary)
    assert.equals("fragmented", log.messages[3].data)
    assert.same({ { code = 4001, reason = "bye" } }, log.closes)
  end)

  it("fails the connection on protocol errors: unmasked (1002), oversize (1009), bad UTF-8 (1007)", function()
    local outs, closes = {}, {}
    ari.run(function()
      local s, log = echo_server{ max_message = 1000 }
      local p = s:port()
      outs.unmasked = raw(p, handshake() .. frame(1, "plain", true, true))()
      outs.oversize = raw(p, handshake() .. frame(1, ("x"):rep(600), false) .. frame(0, ("y"):rep(600)))()
      outs.utf8 = raw(p, handshake() .. frame(1, "bad \xff\xfe"))()
      outs.cont = raw(p, handshake() .. frame(0, "orphan"))()
      local deadline = core.now() + 2000
      while #log.closes < 4 and core.now() < deadline do ari.sleep(5) end
      closes = log.closes
      assert.equals(0, #log.messages)
      s:close()
    end)
    local want = { unmasked = 1002, oversize = 1009, utf8 = 1007, cont = 1002 }
    for k, code in pairs(want) do
      local _, _, rest = parse_response(outs[k])
      local f = parse_frames(rest)
      assert.equals(1, #f, k)
      assert.equals(8, f[1].op, k)
      assert.equals(code, (close_payload(f[1])), k)
    end
    assert.equals(4, #closes)
  end)

  it("checks UTF-8 as fragments arrive: a character split between frames passes, bad bytes fail at once", function()
    local split, early, closes
    ari.run(function()
      local s, log = echo_server()
      local p = s:port()
      split = raw(p, handshake() .. frame(1, "caf\xc3", false) .. frame(0, "\xa9 \xe2\x82", false) ..
        frame(0, "\xac", true) .. frame(8, string.pack(">I2", 1000)))()
      -- no final fragment and no close: only failing on the first fragment ends this connection
      early = raw(p, handshake() .. frame(1, "bad \xc3\x28", false))()
      util.poll(function() return #log.closes == 2 end, "both connections to close", 5000)
      closes = log.closes
      s:close()
    end)
    local _, _, rest = parse_response(split)
    local f = parse_frames(rest)
    assert.same({ 1, "caf\xc3\xa9 \xe2\x82\xac" }, { f[1].op, f[1].payload })
    assert.same({ 8, 1000 }, { f[2].op, (close_payload(f[2])) })
    _, _, rest = parse_response(early)
    f = parse_frames(rest)
    assert.equals(1, #f)
    assert.same({ 8, 1007 }, { f[1].op, (close_payload(f[1])) })
    assert.equals(2, #closes)
  end)

  it("refuses upgrade on a plain request and rejects sends after close", function()
    local up_err, send_after, out
    ari.run(function()
      local ws_ref
      local s = assert(server.listen{
        handler = function(req)
          local ok, err = pcall(req.upgrade, req, nil, {})
          up_err = not ok and tostring(err)
          return 400, nil, "not a websocket"
        end,
        on_websocket = function(req)
          ws_ref = req:upgrade(nil, {})
          assert.is_true(ws_ref:send("one"))
          assert.is_true(ws_ref:buffered() >= 0)
          ws_ref:close(1001, "going")
          send_after = { ws_ref:send("two") }
        end,
      })
      out = curl(("-o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/x"):format(s:port()))()
      local o = raw(s:port(), handshake(), 5)
      while not send_after do ari.sleep(5) end
      -- the server waits for the peer's close frame; this peer never sends one
      local text = o()
      local _, _, rest = parse_response(text)
      local f = parse_frames(rest)
      assert.equals("one", f[1].payload)
      assert.equals(1001, (close_payload(f[2])))
      s:close()
    end)
    assert.equals("400", out)
    assert.matches("not a valid WebSocket upgrade", up_err)
    assert.same({ nil, "closed" }, send_after)
  end)

  it("talks to core.ws_connect (echo round trip)", function()
    local got, closed
    ari.run(function()
      local s, log = echo_server()
      local conn
      conn = core.ws_connect({ url = s:ws_url("/ws") }, {
        on_open = function() conn:send("ping over ws") end,
        on_message = function(msg) got = msg; conn:close() end,
        on_close = function() closed = true end,
        on_error = function() end,
      })
      local deadline = core.now() + 5000
      while not (got and closed) and core.now() < deadline do ari.sleep(10) end
      assert.equals("ping over ws", log.messages[1] and log.messages[1].data)
      s:close()
    end)
    assert.equals("ping over ws", got)
  end)
end)
