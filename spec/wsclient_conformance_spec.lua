-- The WebSocket client (core.ws_connect, src/ws_uv.c) against servers that
-- send crafted bytes: the protocol checks the server side has (fragmentation,
-- control frames between fragments, the close handshake both ways, masking,
-- UTF-8, size limits), bad handshake answers, a silent server, and frames
-- split across reads at every byte boundary or many in one read.
--
-- Two raw peers:
--   * socat + spec/support/wspeer.lua (a separate process with the TCP stream
--     on stdin/stdout) where what the client sends back must be read: pongs,
--     close frames and their codes, masking;
--   * an in-process one (core.server_listen + res:raw, the handshake written
--     here) where only what the server sends matters, byte by byte if need be.
local ari = require "ari"
local core = require "ari.core"
local ws = require "ari.ws"
local util = require "spec.support.util"
local sha1 = require "spec.support.sha1"

local function sh_ok(cmd) return os.execute(cmd .. " >/dev/null 2>&1") == true end
local have_socat = sh_ok("command -v socat")
local PEER = "spec/support/wspeer.lua"
local GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

local function wait_for(cond, ms, what)
  util.poll(cond, what or "condition", ms or 5000)
end

local free_port = require("spec.support.util").free_port

-- A server frame (unmasked unless mask is given).
local function frame(op, payload, fin)
  local b0 = (fin == false and 0 or 0x80) | op
  local n = #payload
  if n < 126 then return string.char(b0, n) .. payload end
  if n < 65536 then return string.char(b0, 126) .. string.pack(">I2", n) .. payload end
  return string.char(b0, 127) .. string.pack(">I8", n) .. payload
end

-- socat peer playing scenario: fn(url, log_lines()) inside ari.run.
local function with_peer(scenario, fn)
  local port = free_port()
  local logpath = os.tmpname()
  local pidpath = os.tmpname()
  assert(os.execute(string.format(
    "(timeout 60 socat TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,nodelay EXEC:'lua5.4 %s %s %s' " ..
    ">/dev/null 2>&1 & echo $! > %s)", port, PEER, scenario, logpath, pidpath)))
  local pid = tonumber((util.read(pidpath) or ""):match("%d+"))
  local function lines()
    local t = {}
    for l in ((util.read(logpath) or "")):gmatch("[^\n]*") do if l ~= "" then t[#t + 1] = l end end
    return t
  end
  local ok, err = pcall(ari.run, function()
    -- wait until socat listens (a probe connection sends nothing: the peer logs nothing)
    for _ = 1, 300 do
      if sh_ok("bash -c 'exec 3<>/dev/tcp/127.0.0.1/" .. port .. "'") then break end
      ari.sleep(10)
    end
    fn("ws://127.0.0.1:" .. port .. "/peer", lines)
  end)
  if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
  os.remove(logpath)
  os.remove(pidpath)
  if not ok then error(err, 0) end
end

local function has(lines, pat)
  for _, l in ipairs(lines()) do if l:find(pat) then return l end end
  return nil
end

-- In-process peer: answer(req) returns the bytes of the handshake answer
-- (default: a correct 101), then on_ws(res) writes what it likes.
local function raw_peer(on_ws, answer)
  local s = core.server_listen({ host = "127.0.0.1", port = 0 }, {
    on_request = function(req, res)
      local key = req.headers["sec-websocket-key"]
      local accept = ws.base64(sha1(key .. GUID))
      res:raw(answer and answer(accept, req) or
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
          "Sec-WebSocket-Accept: " .. accept .. "\r\n\r\n"))
      if on_ws then ari.spawn(on_ws, res, req) end
    end,
  })
  return s, "ws://127.0.0.1:" .. s:port() .. "/raw"
end

-- connect and collect everything the handlers see
local function client(url, opts)
  local seen = { messages = {}, errors = {}, closes = {}, opens = 0 }
  local o = { url = url, reconnect = false, ping_interval = 0 }
  for k, v in pairs(opts or {}) do o[k] = v end
  o.on_open = function() seen.opens = seen.opens + 1 end
  o.on_message = function(m, b) seen.messages[#seen.messages + 1] = { m, b } end
  o.on_error = function(e) seen.errors[#seen.errors + 1] = e end
  o.on_close = function(code, reason, again) seen.closes[#seen.closes + 1] = { code, reason, again } end
  seen.conn = ws.connect(o)
  return seen
end

describe("ws client conformance (socat peer)", function()
  local function need()
    if not have_socat then pending("socat is not installed (tools/deps.sh --test installs it)") return false end
    return true
  end

  it("answers a ping with a masked pong carrying its payload, and echoes the server's close", function()
    if not need() then return end
    with_peer("ping", function(url, lines)
      local seen = client(url)
      wait_for(function() return #seen.closes == 1 and has(lines, "^end") end, 5000, "the close")
      assert.truthy(has(lines, "^10 1 %x%x%x%x%x%x%x%x ping%-payload$"), table.concat(lines(), "\n"))
      assert.truthy(has(lines, "^close 1000 done masked=1$"), table.concat(lines(), "\n"))
      assert.same({ 1000, "done", false }, seen.closes[1])
      assert.equals(1, seen.opens)
    end)
  end)

  it("peer-initiated close: code and reason echoed, reported once", function()
    if not need() then return end
    with_peer("peer_close", function(url, lines)
      local seen = client(url)
      wait_for(function() return #seen.closes == 1 and has(lines, "^end") end, 5000, "the close")
      assert.same({ { "before close", false } }, seen.messages)
      assert.same({ 4001, "peer says bye", false }, seen.closes[1])
      assert.truthy(has(lines, "^close 4001 peer says bye masked=1$"), table.concat(lines(), "\n"))
      assert.equals("closed", seen.conn:state())
    end)
  end)

  it("a close without a status: reported as 1005, answered with an empty close", function()
    if not need() then return end
    with_peer("peer_close_empty", function(url, lines)
      local seen = client(url)
      wait_for(function() return #seen.closes == 1 and has(lines, "^end") end, 5000, "the close")
      assert.same({ 1005, "", false }, seen.closes[1])
      assert.truthy(has(lines, "^close 1005  masked=1$"), table.concat(lines(), "\n"))
    end)
  end)

  it("client-initiated close after text and binary frames, each masked with its own mask", function()
    if not need() then return end
    with_peer("echo", function(url, lines)
      local seen = client(url, { headers = { ["X-Test"] = "42" }, protocol = nil })
      assert.is_true(seen.conn:wait_open(5000))
      local bin = "\0\1\2\255\254"
      assert.is_true(seen.conn:send("text one"))
      assert.is_true(seen.conn:send(bin, true))
      assert.is_true(seen.conn:send(("t"):rep(300)))
      seen.conn:close()
      wait_for(function() return #seen.closes == 1 and has(lines, "^end") end, 5000, "the close")
      local l = lines()
      local frames = {}
      for _, x in ipairs(l) do if not x:find("^request ") and x ~= "end" then frames[#frames + 1] = x end end
      assert.equals(4, #frames, table.concat(l, "\n"))
      local m1 = frames[1]:match("^1 1 (%x+) text one$")
      local m2 = frames[2]:match("^2 1 (%x+) " .. bin:gsub("%W", "%%%0") .. "$")
      local m3 = frames[3]:match("^1 1 (%x+) " .. ("t"):rep(300) .. "$")
      assert.truthy(m1, frames[1])
      assert.truthy(m2, frames[2])
      assert.truthy(m3, frames[3])
      assert.is_false(m1 == m2 and m2 == m3, "the same mask three times")
      assert.equals("close 1000  masked=1", frames[4])
      assert.same({ 1000, "closed by client", false }, seen.closes[1])
      assert.truthy(has(lines, "^request GET /peer HTTP/1.1$"))
      assert.truthy(has(lines, "^request X%-Test: 42$"))
      assert.truthy(has(lines, "^request Sec%-WebSocket%-Version: 13$"))
    end)
  end)

  local refusals = {
    { "masked", 1002, "masked server frame", {} },
    { "bad_utf8", 1007, "invalid UTF%-8", { { "ok", false } } },
    { "bad_utf8_split", 1007, "invalid UTF%-8", { { "caf\xc3\xa9!", false } } },
    { "reserved_bits", 1002, "reserved bits", {} },
    { "bad_continuation", 1002, "continuation", {} },
    { "big_ping", 1002, "control frame", {} },
  }
  for _, r in ipairs(refusals) do
    local scenario, code, why, msgs = r[1], r[2], r[3], r[4]
    it(("refuses %s with %d"):format(scenario, code), function()
      if not need() then return end
      with_peer(scenario, function(url, lines)
        local seen = client(url)
        wait_for(function() return #seen.closes == 1 and has(lines, "^end") end, 5000, "the close")
        assert.truthy(has(lines, "^close " .. code .. " .*" .. why .. ".* masked=1$"), table.concat(lines(), "\n"))
        assert.equals(code, seen.closes[1][1])
        assert.matches(why, seen.closes[1][2])
        assert.matches(why, seen.errors[1])
        assert.same(msgs, seen.messages)
      end)
    end)
  end
end)

describe("ws client conformance (in-process peer)", function()
  it("reassembles fragmented messages with control frames between the fragments", function()
    local seen
    ari.run(function()
      local srv, url = raw_peer(function(res)
        res:raw(frame(1, "one-", false) .. frame(9, "p1") .. frame(0, "two-", false) .. frame(10, "unsolicited") ..
          frame(0, "three", true) .. frame(2, "\0bin", false) .. frame(0, "ary\255", true) .. frame(1, "last"))
      end)
      seen = client(url)
      wait_for(function() return #seen.messages >= 3 end)
      seen.conn:close()
      srv:close()
    end)
    assert.same({ { "one-two-three", false }, { "\0binary\255", true }, { "last", false } }, seen.messages)
  end)

  it("handles frames split across reads at every byte boundary", function()
    local seen
    local stream = frame(1, "frag", false) .. frame(9, "") .. frame(0, "mented") .. frame(1, ("x"):rep(200)) ..
      frame(2, "\1\2\3") .. frame(1, "é") .. frame(1, "")
    ari.run(function()
      local srv, url = raw_peer(function(res)
        for i = 1, #stream do
          res:raw(stream:sub(i, i))
          ari.sleep(1) -- pacing: each byte reaches the client in a read of its own
        end
      end)
      seen = client(url)
      wait_for(function() return #seen.messages >= 5 end, 10000)
      seen.conn:close()
      srv:close()
    end)
    assert.same({ { "fragmented", false }, { ("x"):rep(200), false }, { "\1\2\3", true }, { "é", false }, { "", false } },
      seen.messages)
  end)

  it("handles many frames in one read, in order", function()
    local seen
    ari.run(function()
      local srv, url = raw_peer(function(res)
        local t = {}
        for i = 1, 3000 do t[i] = frame(1, "m" .. i) end
        res:raw(table.concat(t))
      end)
      seen = client(url, { json = false })
      wait_for(function() return #seen.messages >= 3000 end)
      seen.conn:close()
      srv:close()
    end)
    assert.equals(3000, #seen.messages)
    for i = 1, 3000 do
      if seen.messages[i][1] ~= "m" .. i then error("message " .. i .. ": " .. tostring(seen.messages[i][1])) end
    end
  end)

  it("drops a message over max_message as it arrives (one frame or fragments), counts it, keeps the connection", function()
    local seen, stats, state
    local logged = {}
    ari.run(function()
      core.set_logger(function(_, msg) logged[#logged + 1] = msg end)
      local srv, url = raw_peer(function(res)
        res:raw(frame(1, "before"))
        -- a 200,000-byte frame, its payload in pieces
        res:raw(string.char(0x82, 127) .. string.pack(">I8", 200000))
        for _ = 1, 20 do res:raw(("z"):rep(10000)); ari.sleep(1) end
        -- a fragmented message that grows past the limit
        res:raw(frame(1, ("a"):rep(600), false) .. frame(0, ("b"):rep(600), false) .. frame(0, "c", true))
        res:raw(frame(1, "after"))
      end)
      seen = client(url, { max_message = 1000 })
      wait_for(function() return #seen.messages >= 2 end)
      stats, state = seen.conn:stats(), seen.conn:state()
      seen.conn:close()
      srv:close()
    end)
    core.set_logger(function(level, msg) ari.log[level](msg) end)
    assert.same({ { "before", false }, { "after", false } }, seen.messages)
    assert.equals(2, stats.dropped)
    assert.equals("open", state)
    assert.equals(0, #seen.errors)
    local n = 0
    for _, m in ipairs(logged) do if m:find("max_message", 1, true) then n = n + 1 end end
    assert.equals(2, n)
  end)

  local bad = {
    { "a wrong Sec-WebSocket-Accept", function(_) return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" ..
      "Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n" end, "Accept hash wrong" },
    { "no Upgrade header", function(a) return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n" ..
      "Sec-WebSocket-Accept: " .. a .. "\r\n\r\n" end, "UPGRADE missing" },
    { "no Connection header", function(a) return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" ..
      "Sec-WebSocket-Accept: " .. a .. "\r\n\r\n" end, "CONNECTION missing" },
    { "a 401", function(_) return "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n" end,
      "unauthorized %(HTTP/1.1 401 Unauthorized%)" },
    { "a 404", function(_) return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n" end,
      "not 101 %(HTTP/1.1 404 Not Found%)" },
    { "a subprotocol not asked for", function(a) return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" ..
      "Connection: Upgrade\r\nSec-WebSocket-Protocol: other\r\nSec-WebSocket-Accept: " .. a .. "\r\n\r\n" end,
      "subprotocol" },
    { "something that is not HTTP", function(_) return "SSH-2.0-OpenSSH_9.2\r\n\r\n" end,
      "bad status line %(SSH%-2%.0%-OpenSSH_9%.2%)" },
    { "a bad status line", function(_) return "HTTP/1.1 1O1 Switching\r\n\r\n" end, "bad status line" },
  }
  for _, b in ipairs(bad) do
    local name, answer, want = b[1], b[2], b[3]
    it("refuses a handshake answer with " .. name, function()
      local seen
      ari.run(function()
        local srv, url = raw_peer(nil, answer)
        seen = client(url)
        wait_for(function() return #seen.closes == 1 end)
        srv:close()
      end)
      assert.equals(0, seen.opens)
      assert.equals(1, #seen.errors)
      assert.matches("failed: HS: .*" .. want, seen.errors[1])
      assert.equals(1006, seen.closes[1][1])
      assert.is_false(seen.closes[1][3])
    end)
  end

  it("checks the subprotocol it asked for", function()
    local ok_seen, missing_seen
    ari.run(function()
      local srv, url = raw_peer(nil, function(a, req)
        local p = req.headers["sec-websocket-protocol"]
        return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
          (req.path == "/raw" and p and ("Sec-WebSocket-Protocol: " .. p .. "\r\n") or "") ..
          "Sec-WebSocket-Accept: " .. a .. "\r\n\r\n"
      end)
      ok_seen = client(url, { protocol = "ari" })
      missing_seen = client(url:gsub("/raw$", "/other"), { protocol = "ari" })
      wait_for(function() return ok_seen.opens == 1 and #missing_seen.closes == 1 end)
      ok_seen.conn:close()
      srv:close()
    end)
    assert.equals(1, ok_seen.opens)
    assert.equals(0, missing_seen.opens)
    assert.matches("PROTOCOL missing", missing_seen.errors[1])
  end)

  it("a server that stops answering: pong timeout, then a reconnect", function()
    local closes, opens = {}, 0
    ari.run(function()
      local srv, url = raw_peer()
      local conn = ws.connect {
        url = url, ping_interval = 30, pong_timeout = 30, backoff_min = 10, backoff_max = 20,
        on_open = function() opens = opens + 1 end,
        on_close = function(code, reason, again) closes[#closes + 1] = { code, reason, again } end,
      }
      wait_for(function() return opens >= 2 end)
      conn:close()
      srv:close()
    end)
    assert.same({ 1006, "pong timeout", true }, closes[1])
  end)
end)

describe("ws client TLS (socat TLS front, certificate checks)", function()
  local dir
  setup(function()
    if not (sh_ok("command -v openssl") and have_socat) then return end
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    -- good: names 127.0.0.1 and localhost; other: only other.example
    for _, c in ipairs { { "good", "subjectAltName=IP:127.0.0.1,DNS:localhost" },
                         { "other", "subjectAltName=DNS:other.example" } } do
      assert(sh_ok(string.format("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/%s.key -out %s/%s.pem " ..
        "-days 1 -subj /CN=%s -addext %s", dir, c[1], dir, c[1], c[1], c[2])))
    end
  end)
  teardown(function()
    if dir then os.execute("rm -rf " .. dir) end
  end)

  -- fn(wss_url_host_port) with a raw peer (one text message "over tls") behind socat using cert
  local function with_tls(cert, fn)
    ari.run(function()
      local srv = raw_peer(function(res) res:raw(frame(1, "over tls")) end)
      local port = free_port()
      assert(os.execute(string.format(
        "(timeout 60 socat OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,verify=0,cert=%s/%s.pem,key=%s/%s.key " ..
        "TCP:127.0.0.1:%d >/dev/null 2>&1 & echo $! > %s/pid)", port, dir, cert, dir, cert, srv:port(), dir)))
      local pid = tonumber((util.read(dir .. "/pid") or ""):match("%d+"))
      for _ = 1, 300 do
        if sh_ok("bash -c 'exec 3<>/dev/tcp/127.0.0.1/" .. port .. "'") then break end
        ari.sleep(10)
      end
      local ok, err = pcall(fn, port)
      if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
      srv:close()
      if not ok then error(err, 0) end
    end)
  end

  local function outcome(url, opts)
    local seen = client(url, opts)
    wait_for(function() return #seen.messages >= 1 or #seen.closes >= 1 end, 10000)
    seen.conn:close()
    return seen
  end

  it("verifies the chain and the address by default; cainfo trusts a CA; insecure turns the checks off", function()
    if not dir then pending("openssl or socat not available") return end
    with_tls("good", function(port)
      local by_ip = outcome("wss://127.0.0.1:" .. port .. "/t", { cainfo = dir .. "/good.pem" })
      assert.same({ { "over tls", false } }, by_ip.messages)
      local by_name = outcome("wss://localhost:" .. port .. "/t", { cainfo = dir .. "/good.pem" })
      assert.same({ { "over tls", false } }, by_name.messages)
      local no_ca = outcome("wss://127.0.0.1:" .. port .. "/t")
      assert.equals(0, #no_ca.messages)
      assert.matches("certificate verify failed", no_ca.errors[1])
      local wrong_ca = outcome("wss://127.0.0.1:" .. port .. "/t", { cainfo = dir .. "/other.pem" })
      assert.matches("certificate verify failed", wrong_ca.errors[1])
    end)
    with_tls("other", function(port)
      -- a trusted certificate for another name: refused
      local mismatch = outcome("wss://127.0.0.1:" .. port .. "/t", { cainfo = dir .. "/other.pem" })
      assert.equals(0, #mismatch.messages)
      assert.matches("certificate verify failed: .*mismatch", mismatch.errors[1])
      local by_name = outcome("wss://localhost:" .. port .. "/t", { cainfo = dir .. "/other.pem" })
      assert.matches("certificate verify failed: .*mismatch", by_name.errors[1])
      local insecure = outcome("wss://127.0.0.1:" .. port .. "/t", { insecure = true })
      assert.same({ { "over tls", false } }, insecure.messages)
    end)
  end)

  it("a CA file that cannot be read is an error of each attempt", function()
    if not dir then pending("openssl or socat not available") return end
    with_tls("good", function(port)
      local seen = outcome("wss://127.0.0.1:" .. port .. "/t", { cainfo = dir .. "/missing.pem" })
      assert.matches("cannot load CA file .*missing%.pem", seen.errors[1])
      assert.same({ 1006, seen.errors[1], false }, seen.closes[1])
    end)
  end)
end)
