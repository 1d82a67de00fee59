-- The HTTP client (core.http_request + ari.http) against the project's own
-- server (core.server_listen) on loopback, and a TLS server from the openssl
-- CLI when it is installed.
local ari = require "ari"
local core = require "ari.core"
local sched = require "ari.sched"
local http = require "ari.http"

-- Runs fn(base_url, server, seen) inside ari.run with a server whose
-- handler is `handler(req, res)` (default: 200 "ok:" .. path); every request
-- the server saw is appended to `seen`.
local function with_server(handler, fn)
  return ari.run(function()
    local seen = {}
    local srv = core.server_listen({ host = "127.0.0.1", port = 0 }, {
      on_request = function(req, res)
        seen[#seen + 1] = req
        if handler then return handler(req, res) end
        res:send(200, { ["Content-Type"] = "text/plain" }, "ok:" .. req.path)
      end,
    })
    local base = "http://127.0.0.1:" .. srv:port()
    local ok, err = pcall(fn, base, srv, seen)
    srv:close()
    if not ok then error(err, 0) end
    return err
  end)
end

-- request() but returning the raised error (and failing if none is raised)
local function request_error(opts)
  local ok, err = pcall(http.request, opts)
  assert.is_false(ok, "the request should have failed")
  return err
end

describe("http.urlencode / encode_query", function()
  it("keeps RFC 3986 unreserved characters and encodes everything else", function()
    assert.equals("AZaz09-._~", http.urlencode("AZaz09-._~"))
    assert.equals("%2F", http.urlencode("/"))
    assert.equals("%3F", http.urlencode("?"))
    assert.equals("%23", http.urlencode("#"))
    assert.equals("%25", http.urlencode("%"))
    assert.equals("%20", http.urlencode(" "))
    assert.equals("%2B%26%3D", http.urlencode("+&="))
    assert.equals("%C3%A9t%C3%A9%20%E2%82%AC", http.urlencode("été €"))
    assert.equals("a%2F..%2Fb", http.urlencode("a/../b"))
  end)

  it("encodes values made only of dots entirely, so a segment cannot climb the path", function()
    assert.equals("%2E%2E", http.urlencode(".."))
    assert.equals("%2E", http.urlencode("."))
    assert.equals("..a", http.urlencode("..a"))
  end)

  it("accepts numbers and booleans, rejects other types with an error table", function()
    assert.equals("42", http.urlencode(42))
    assert.equals("true", http.urlencode(true))
    local ok, err = pcall(http.urlencode, {})
    assert.is_false(ok)
    assert.equals("invalid", err.kind)
    assert.matches("urlencode", tostring(err))
  end)

  it("encode_query sorts keys and encodes keys and values", function()
    assert.equals("a=1&b=x%20y&c=false&d%26=%3D",
      http.encode_query({ c = false, b = "x y", a = 1, ["d&"] = "=" }))
    assert.equals("", http.encode_query({}))
    local ok, err = pcall(http.encode_query, { a = { 1, 2 } })
    assert.is_false(ok)
    assert.matches("a", err.message)
  end)

  it("strip_credentials removes user:password from a url", function()
    assert.equals("http://h:1/x?y=@", http.strip_credentials("http://me:pw@h:1/x?y=@"))
    assert.equals("http://h/x", http.strip_credentials("http://h/x"))
  end)
end)

describe("http requests", function()
  it("GET returns status, body and lower-case headers", function()
    with_server(function(req, res)
      res:send(200, { ["X-Thing"] = "Some Value", ["Content-Type"] = "text/plain" }, "hello " .. req.method)
    end, function(base, _, seen)
      local status, body, headers = http.request{ url = base .. "/things/1" }
      assert.equals(200, status)
      assert.equals("hello GET", body)
      assert.equals("Some Value", headers["x-thing"])
      assert.equals("text/plain", headers["content-type"])
      assert.is_nil(headers["X-Thing"])
      assert.equals(1, #seen)
      assert.equals("GET", seen[1].method)
      assert.equals("/things/1", seen[1].path)
    end)
  end)

  it("raw_headers returns the header block as one string; parse_headers makes the same table", function()
    with_server(function(_, res)
      res:send(200, { ["X-Thing"] = "Some Value", ["Content-Type"] = "text/plain" }, "hi")
    end, function(base)
      local _, _, table_h = http.request{ url = base .. "/a" }
      local status, body, raw = http.request{ url = base .. "/a", raw_headers = true }
      assert.equals(200, status)
      assert.equals("hi", body)
      assert.is_string(raw)
      assert.matches("^HTTP/1%.1 200", raw)
      local parsed = http.parse_headers(raw)
      table_h.date, parsed.date = nil, nil
      assert.same(table_h, parsed)
      assert.equals("Some Value", parsed["x-thing"])
    end)
  end)

  it("POST sends the body and the headers", function()
    with_server(nil, function(base, _, seen)
      local status = http.request{ method = "POST", url = base .. "/p", body = '{"a":[1,2]}',
        headers = { ["Content-Type"] = "application/json", ["X-Request-Id"] = "abc 123" } }
      assert.equals(200, status)
      local r = seen[1]
      assert.equals("POST", r.method)
      assert.equals('{"a":[1,2]}', r.body)
      assert.equals("application/json", r.headers["content-type"])
      assert.equals("abc 123", r.headers["x-request-id"])
      assert.equals("11", r.headers["content-length"])
      assert.is_nil(r.headers["expect"])
    end)
  end)

  it("bodiless POST/PUT/DELETE send Content-Length: 0, DELETE can carry a body", function()
    with_server(nil, function(base, _, seen)
      assert.equals(200, (http.request{ method = "POST", url = base .. "/a" }))
      assert.equals(200, (http.request{ method = "PUT", url = base .. "/b" }))
      assert.equals(200, (http.request{ method = "DELETE", url = base .. "/c" }))
      assert.equals(200, (http.request{ method = "DELETE", url = base .. "/d", body = "gone",
        headers = { ["Content-Type"] = "text/plain" } }))
      assert.same({ "POST", "PUT", "DELETE", "DELETE" },
        { seen[1].method, seen[2].method, seen[3].method, seen[4].method })
      for i = 1, 3 do
        assert.equals("0", seen[i].headers["content-length"])
        assert.equals("", seen[i].body or "")
      end
      assert.equals("gone", seen[4].body)
      assert.equals("/d", seen[4].path)
    end)
  end)

  it("binary bodies go through byte for byte", function()
    local blob = {}
    for i = 0, 255 do blob[#blob + 1] = string.char(i) end
    blob = table.concat(blob):rep(40)
    with_server(function(req, res) res:send(200, {}, req.body) end, function(base)
      local status, body = http.request{ method = "PUT", url = base .. "/bin", body = blob,
        headers = { ["Content-Type"] = "application/octet-stream" } }
      assert.equals(200, status)
      assert.equals(#blob, #body)
      assert.is_true(body == blob)
    end)
  end)

  it("any HTTP status is a normal return, an empty body is \"\"", function()
    with_server(function(req, res)
      if req.path == "/missing" then res:send(404, { ["Content-Type"] = "application/json" }, '{"message":"nope"}')
      else res:send(204, {}, "") end
    end, function(base)
      local s1, b1 = http.request{ url = base .. "/missing" }
      assert.equals(404, s1)
      assert.equals('{"message":"nope"}', b1)
      local s2, b2 = http.request{ method = "DELETE", url = base .. "/empty" }
      assert.equals(204, s2)
      assert.equals("", b2)
    end)
  end)

  it("query tables are encoded and appended; paths are sent as given", function()
    with_server(nil, function(base, _, seen)
      http.request{ url = base .. "/q", query = { b = "x y", a = 1, c = "é/?" } }
      http.request{ url = base .. "/q?z=1", query = { a = true } }
      http.request{ url = base .. "/seg/" .. http.urlencode("..") .. "/" .. http.urlencode("a b") }
      local function rawquery(r)
        if type(r.query) == "string" then return r.query end
        return nil
      end
      -- the server may expose the query raw or decoded; check what it offers
      if rawquery(seen[1]) then
        assert.equals("a=1&b=x%20y&c=%C3%A9%2F%3F", rawquery(seen[1]))
        assert.equals("z=1&a=true", rawquery(seen[2]))
      else
        assert.same({ a = "1", b = "x y", c = "é/?" }, seen[1].query)
        assert.same({ z = "1", a = "true" }, seen[2].query)
      end
      assert.matches("^/seg/", seen[3].path)
      assert.is_nil(seen[3].path:find("/../", 1, true), "the dot segment must not be sent raw")
    end)
  end)

  it("basic auth reaches the server as an Authorization header, never in the url", function()
    with_server(nil, function(base, _, seen)
      http.request{ url = base .. "/auth", user = "me", password = "s3cret" }
      assert.equals("Basic bWU6czNjcmV0", seen[1].headers.authorization)
      http.request{ url = base .. "/noauth" }
      assert.is_nil(seen[2].headers.authorization)
      http.request{ url = base .. "/numeric", user = "me", password = 1234 }
      assert.equals("Basic bWU6MTIzNA==", seen[3].headers.authorization)
    end)
  end)

  it("200 requests in flight from 200 coroutines all complete with their own answer", function()
    with_server(function(req, res)
      -- answer after a delay that depends on the request, so that answers
      -- come back out of order
      local n = tonumber(req.path:match("%d+")) or 0
      core.timer((200 - n) % 7, function() res:send(200, {}, "answer" .. req.path) end)
    end, function(base, srv)
      local results, done, max_in_flight = {}, 0, 0
      for i = 1, 200 do
        ari.spawn(function()
          local ok, status, body = pcall(http.request, { url = base .. "/n/" .. i, timeout = 20000 })
          results[i] = ok and status == 200 and body or tostring(status)
          done = done + 1
        end)
      end
      max_in_flight = core.http_stats().in_flight
      while done < 200 do ari.sleep(5) end
      assert.equals(200, max_in_flight)
      for i = 1, 200 do assert.equals("answer/n/" .. i, results[i]) end
      assert.equals(0, core.http_stats().in_flight)
      -- [hardening] easy handles are pooled only where libcurl allows it (src/http.c http_pool_ok)
      assert.is_true(core.http_stats().idle_handles > 0 or not core.http_stats().pooling)
      -- several connections in parallel, within the default per-host limit
      local accepted = srv:stats().accepted
      assert.is_true(accepted > 1 and accepted <= 32, "accepted " .. tostring(accepted))
    end)
  end)

  it("sequential requests reuse a kept-alive connection", function()
    with_server(nil, function(base, srv)
      for i = 1, 30 do
        local status, body = http.request{ url = base .. "/k/" .. i }
        assert.equals(200, status)
        assert.equals("ok:/k/" .. i, body)
      end
      local st = srv:stats()
      assert.equals(30, st.requests)
      assert.is_true(st.accepted <= 2, "accepted " .. tostring(st.accepted) .. " connections for 30 requests")
    end)
  end)

  it("http_config limits connections per host; extra requests queue and complete", function()
    with_server(nil, function(base, srv)
      core.http_config{ max_host_connections = 1 }
      local done, bodies = 0, {}
      local ok, err = pcall(function()
        for i = 1, 10 do
          ari.spawn(function()
            local ok, _, body = pcall(http.request, { url = base .. "/c/" .. i })
            bodies[i] = ok and body or tostring(_)
            done = done + 1
          end)
        end
        while done < 10 do ari.sleep(5) end
      end)
      core.http_config{ max_host_connections = 32, max_total_connections = 256 }
      if not ok then error(err, 0) end
      for i = 1, 10 do assert.equals("ok:/c/" .. i, bodies[i]) end
      assert.equals(1, srv:stats().accepted)
    end)
  end)

  it("1,000 requests with max_host_connections = 4 wait in ari-lua's queue and all complete", function()
    with_server(nil, function(base, srv)
      core.http_config{ max_host_connections = 4 }
      local done, bodies, max_active, max_queued = 0, {}, 0, 0
      local ok, err = pcall(function()
        for i = 1, 1000 do
          core.http_request({ url = base .. "/q/" .. i }, function(status, body)
            bodies[i] = status == 200 and body or tostring(status)
            done = done + 1
          end)
          local st = core.http_stats()
          if st.active > max_active then max_active = st.active end
          if st.queued > max_queued then max_queued = st.queued end
        end
        while done < 1000 do ari.sleep(5) end
      end)
      core.http_config{ max_host_connections = 32, max_total_connections = 256 }
      if not ok then error(err, 0) end
      for i = 1, 1000 do assert.equals("ok:/q/" .. i, bodies[i]) end
      assert.equals(4, max_active)

      assert.equals(996, max_queued)
      assert.is_true(srv:stats().accepted <= 4, "accepted " .. srv:stats().accepted)
      local st = core.http_stats()
      assert.same({ 0, 0, 0 }, { st.in_flight, st.active, st.queued })
    end)
  end)

  it("a queued request keeps its own copy of every option until it starts", function()
    local held = {}
    with_server(function(req, res)
      held[#held + 1] = { req = req, res = res }
      if req.path ~= "/hold" then res:send(200, {}, "ok") end
    end, function(base)
      core.http_config{ max_host_connections = 1 }
      local ok, err = pcall(function()
        core.http_request({ url = base .. "/hold" }, function() end)
        local got
        do -- every string made here is garbage once the request is queued
          local opts = { method = "PUT", url = base .. "/q/" .. string.rep("p", 3), body = string.rep("b", 5000),
            user = "us" .. "er", password = "pa" .. "ss", headers = { ["X-Q"] = "v" .. 1 }, timeout = 5000 }
          core.http_request(opts, function(status, body) got = { status, body } end)
        end
        assert.equals(1, core.http_stats().queued)
        collectgarbage("collect"); collectgarbage("collect")
        while #held < 1 do ari.sleep(2) end
        held[1].res:send(200, {}, "released")
        while got == nil do ari.sleep(2) end
        assert.same({ 200, "ok" }, got)
        local r = held[2].req
        assert.equals("PUT", r.method)
        assert.equals("/q/ppp", r.path)
        assert.equals(string.rep("b", 5000), r.body)
        assert.equals("v1", r.headers["x-q"])
        assert.equals("Basic dXNlcjpwYXNz", r.headers["authorization"]) -- base64("user:pass")
      end)
      core.http_config{ max_host_connections = 32, max_total_connections = 256 }
      if not ok then error(err, 0) end
    end)
  end)

  it("a queued request can be cancelled; its total timeout counts the time queued", function()
    local held = {}
    with_server(function(_, res) held[#held + 1] = res end, function(base)
      core.http_config{ max_host_connections = 1 }
      local ok, err = pcall(function()
        local got = {}
        local first = core.http_request({ url = base .. "/hold" }, function(s, b) got.first = b end)
        local second = core.http_request({ url = base .. "/second" }, function() got.second = true end)
        local third = core.http_request({ url = base .. "/third" }, function(s, b) got.third = b end)
        while #held < 1 do ari.sleep(2) end
        assert.same({ in_flight = 3, active = 1, queued = 2 },
          { in_flight = core.http_stats().in_flight, active = core.http_stats().active, queued = core.http_stats().queued })
        assert.is_true(second:active())
        assert.is_true(second:cancel())
        assert.is_false(second:active())
        assert.equals(1, core.http_stats().queued)
        held[1]:send(200, {}, "held")
        while #held < 2 do ari.sleep(2) end
        assert.is_nil(got.second)
        assert.equals("held", got.first)
        assert.equals(2, #held) -- /second never reached the server
        held[2]:send(200, {}, "third")
        ari.sleep(20)
        assert.equals("third", got.third)
        assert.is_false(first:active())

        -- a request queued behind a hung one times out on its own deadline
        local t0 = core.now()
        core.http_request({ url = base .. "/hang" }, function() end)
        local e = request_error{ url = base .. "/late", timeout = 150 }
        assert.equals("timeout", e.kind)
        assert.matches("waiting for a connection", e.message)
        assert.is_true(core.now() - t0 >= 140)
      end)
      core.http_config{ max_host_connections = 32, max_total_connections = 256 }
      if not ok then error(err, 0) end
    end)
  end)
end)

describe("http failures", function()
  it("a handler that never answers ends in a timeout error", function()
    local held = {}
    with_server(function(_, res) held[#held + 1] = res end, function(base)
      local t0 = core.now()
      local err = request_error{ url = base .. "/never", timeout = 200 }
      assert.equals("timeout", err.kind)
      assert.is_nil(err.status)
      assert.equals(28, err.code)
      assert.is_string(err.message)
      assert.matches("timeout", tostring(err))
      assert.is_true(core.now() - t0 >= 190)
      assert.equals(0, core.http_stats().in_flight)
    end)
    assert.equals(1, #held)
  end)

  it("a closed port gives a connect error whose url carries no credentials", function()
    local port
    ari.run(function()
      local srv = core.server_listen({ host = "127.0.0.1", port = 0 }, { on_request = function() end })
      port = srv:port()
      srv:close()
    end)
    ari.run(function()
      local err = request_error{ url = "http://me:pw@127.0.0.1:" .. port .. "/x", user = "me", password = "pw" }
      assert.equals("connect", err.kind)
      assert.equals("http://127.0.0.1:" .. port .. "/x", err.url)
      assert.is_nil(tostring(err):find("pw", 1, true))
    end)
  end)

  it("a connection dropped mid-response is an error, not a hang", function()
    with_server(function(req, res)
      if req.path == "/headers" then
        res:raw("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Le")
      else
        res:raw("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part of it")
      end
      res:drop()
    end, function(base)
      local e1 = request_error{ url = base .. "/headers", timeout = 5000 }
      assert.equals("reset", e1.kind)
      local e2 = request_error{ url = base .. "/body", timeout = 5000 }
      assert.equals("reset", e2.kind)
      assert.equals(0, core.http_stats().in_flight)
    end)
  end)

  it("a body larger than max_body fails with kind too_large (announced or streamed)", function()
    local big = ("x"):rep(100000)
    with_server(function(req, res)
      if req.path == "/announced" then
        res:send(200, {}, big)
      else
        res:raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ = 1, 10 do res:raw(string.format("%x\r\n%s\r\n", 10000, big:sub(1, 10000))) end
        res:raw("0\r\n\r\n")
      end
    end, function(base)
      assert.equals("too_large", request_error{ url = base .. "/announced", max_body = 1000 }.kind)
      assert.equals("too_large", request_error{ url = base .. "/streamed", max_body = 1000 }.kind)
      -- under the limit it is fine
      local status, body = http.request{ url = base .. "/streamed", max_body = 100000 }
      assert.equals(200, status)
      assert.equals(100000, #body)
    end)
  end)

  it("a cancelled request never calls back and leaves nothing in flight", function()
    local held = {}
    with_server(function(_, res) held[#held + 1] = res end, function(base)
      local called = false
      local req = core.http_request({ url = base .. "/c1" }, function() called = true end)
      assert.is_true(req:active())
      while #held < 1 do ari.sleep(2) end
      assert.is_true(req:cancel())
      assert.is_false(req:active())
      assert.is_false(req:cancel())
      held[1]:send(200, {}, "late")
      ari.sleep(50)
      assert.is_false(called)
      assert.equals(0, core.http_stats().in_flight)
    end)
  end)

  it("cancelling the waiting coroutine cancels its transfer", function()
    local held = {}
    with_server(function(_, res) held[#held + 1] = res end, function(base)
      local caught
      local co = ari.spawn(function()
        local ok, err = pcall(http.request, { url = base .. "/c2" })
        caught = not ok and err
      end)
      while #held < 1 do ari.sleep(2) end
      assert.equals(1, core.http_stats().in_flight)
      sched.cancel(co, { hangup = true })
      assert.same({ hangup = true }, caught)
      assert.equals(0, core.http_stats().in_flight)
    end)
  end)

  it("bad options are refused with clear errors before anything is sent", function()
    ari.run(function()
      local e1 = request_error{ url = "http://127.0.0.1:1/", headers = { ["X-Evil"] = "a\r\nInjected: 1" } }
      assert.equals("invalid", e1.kind)
      assert.matches("CR", e1.message)
      local e2 = request_error{ url = "http://127.0.0.1:1/", method = "GE T" }
      assert.matches("method", e2.message)
      local e3 = request_error{}
      assert.matches("url", e3.message)
      assert.has_error(function() core.http_request({}, function() end) end)
      assert.has_error(function() core.http_request({ url = "http://x/", timeout = "soon" }, function() end) end)
      assert.equals(0, core.http_stats().in_flight)
    end)
  end)

  it("a non-http scheme is refused by the transfer, not silently fetched", function()
    ari.run(function()
      local err = request_error{ url = "file:///etc/passwd" }
      assert.equals("other", err.kind)
    end)
  end)
end)

describe("http teardown", function()
  it("closing the state with requests in flight and idle connections is clean", function()
    local script = [[
      package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
      package.cpath = (os.getenv("ARI_CPATH") or "") .. ";build/?.so;" .. package.cpath
      local ari = require "ari"
      local core = ari.core
      local http = require "ari.http"
      ari.run(function()
        local held = {} -- the unanswered responses: a collected one would close its connection
        local srv = core.server_listen({ host = "127.0.0.1", port = 0 }, { on_request = function(req, res)
          if req.path == "/ok" then res:send(200, {}, "ok") else held[#held + 1] = res end
        end })
        local base = "http://127.0.0.1:" .. srv:port()
        assert(http.request{ url = base .. "/ok" } == 200)
        for i = 1, 5 do
          core.http_request({ url = base .. "/hang/" .. i }, function(st, e)
            -- must not happen: say what ended the request early, if it does
            print("CALLED", i, st, type(e) == "table" and (tostring(e.kind) .. ": " .. tostring(e.message)) or e)
          end)
        end
        ari.sleep(50)
        assert(core.http_stats().in_flight == 5)
      end)
      print("END")
    ]]
    local f = io.popen("lua5.4 - 2>&1 <<'EOF_SCRIPT'\n" .. script .. "\nEOF_SCRIPT\necho \"rc=$?\"")
    local out = f:read("a")
    f:close()
    assert.matches("END\nrc=0", out)
    assert.is_nil(out:find("CALLED", 1, true))
  end)
end)

-- TLS: a self-signed certificate served by `openssl s_server -www`.
local function have_openssl()
  return os.execute("command -v openssl >/dev/null 2>&1") == true
end

describe("https", function()
  local dir, port, pid

  setup(function()
    if not have_openssl() then return end
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    assert(os.execute(string.format(
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/key.pem -out %s/cert.pem -days 1 " ..
      "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1", dir, dir)))
    assert(os.execute(string.format(
      "(timeout 60 openssl s_server -accept 127.0.0.1:0 -cert %s/cert.pem -key %s/key.pem -www " ..
      "> %s/out 2>&1 & echo $! > %s/pid)", dir, dir, dir, dir)))
    ari.run(function()
      for _ = 1, 500 do
        local f = io.open(dir .. "/out")
        local out = f and f:read("a") or ""
        if f then f:close() end
        port = out:match("ACCEPT 127%.0%.0%.1:(%d+)")
        if port then break end
        ari.sleep(10)
      end
    end)
    local f = io.open(dir .. "/pid")
    pid = f and tonumber(f:read("l"))
    if f then f:close() end
  end)

  teardown(function()
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    if dir then os.execute("rm -rf " .. dir) end
  end)

  it("verifies the peer by default, and accepts insecure=true or the right cainfo", function()
    if not port then
      pending("openssl CLI not available: no local TLS server")
      return
    end
    ari.run(function()
      local url = "https://127.0.0.1:" .. port .. "/"
      local err = request_error{ url = url, timeout = 5000 }
      assert.equals("tls", err.kind)
      local s1, b1 = http.request{ url = url, insecure = true, timeout = 5000 }
      assert.equals(200, s1)
      assert.matches("s_server", b1)
      local s2 = http.request{ url = url, cainfo = dir .. "/cert.pem", timeout = 5000 }
      assert.equals(200, s2)
      local err2 = request_error{ url = url, cainfo = dir .. "/missing.pem", timeout = 5000 }
      assert.equals("tls", err2.kind)
    end)
  end)
end)
