-- Security: TLS verification at the ari.connect level (REST and the events
-- WebSocket, through a socat TLS front of the simulated Asterisk), no
-- credentials in errors, logs or transcripts, ids percent-encoded so they
-- cannot reach another URL, the simulator on loopback, bounded sizes, and
-- the fuzz regressions of the URL and HTTP targets.
local ari = require "ari"
local core = require "ari.core"
local log = require "ari.log"
local client_mod = require "ari.client"
local simmod = require "ari.sim"
local util = require "spec.support.util"

local function sh_ok(cmd) return os.execute(cmd .. " >/dev/null 2>&1") == true end
local read = util.read

local function ls(dir)
  local out = {}
  local p = io.popen("ls -1 " .. dir .. " 2>/dev/null")
  for name in p:lines() do out[#out + 1] = name end
  p:close()
  return out
end

local free_port = require("spec.support.util").free_port

-- Capture log lines written while fn runs.
local function capture_log(fn)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  log.set_output(f)
  local ok, err = pcall(fn)
  log.set_output(io.stderr)
  f:close()
  local text = read(path) or ""
  os.remove(path)
  if not ok then error(err, 0) end
  return text
end

describe("TLS through ari.connect", function()
  local dir, pid, sim, tls_port

  setup(function()
    if not (sh_ok("command -v openssl") and sh_ok("command -v socat")) then return end
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    assert(sh_ok(string.format(
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/key.pem -out %s/cert.pem -days 1 " ..
      "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost", dir, dir)))
  end)

  teardown(function()
    if dir then os.execute("rm -rf " .. dir) end
  end)

  -- run fn(https_url, wss_base) with a sim behind a socat TLS front
  local function with_tls(fn)
    ari.run(function()
      sim = simmod.new { speed = 20, logger = function() end }
      sim:listen { host = "127.0.0.1", port = 0 }
      local plain = sim.url:match(":(%d+)")
      tls_port = free_port()
      assert(os.execute(string.format(
        "(timeout 60 socat OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,verify=0,cert=%s/cert.pem,key=%s/key.pem " ..
        "TCP:127.0.0.1:%s >/dev/null 2>&1 & echo $! > %s/pid)", tls_port, dir, dir, plain, dir)))
      pid = tonumber((read(dir .. "/pid") or ""):match("%d+"))
      -- wait until socat listens
      for _ = 1, 200 do
        if sh_ok("bash -c 'exec 3<>/dev/tcp/127.0.0.1/" .. tls_port .. "'") then break end
        ari.sleep(10)
      end
      local ok, err = pcall(fn, "https://127.0.0.1:" .. tls_port)
      if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
      sim:close()
      if not ok then error(err, 0) end
    end)
  end

  it("REST: a self-signed server is refused by default, accepted with its CA or insecure = true", function()
    if not dir then pending("openssl or socat not available") return end
    with_tls(function(url)
      local c = client_mod.connect { url = url, user = "asterisk", password = "asterisk", events = false, timeout = 5000 }
      local ok, err = pcall(c.asterisk.getInfo)
      assert.is_false(ok)
      assert.equals("transport", err.kind)
      assert.equals("tls", err.transport)
      c:close()
      local c2 = client_mod.connect { url = url, user = "asterisk", password = "asterisk", events = false,
        cainfo = dir .. "/cert.pem", timeout = 5000 }
      local info = c2.asterisk.getInfo()
      assert.is_table(info.system)
      c2:close()
      local c3 = client_mod.connect { url = url, user = "asterisk", password = "asterisk", events = false,
        insecure = true, timeout = 5000 }
      assert.is_table(c3.asterisk.getInfo().system)
      c3:close()
      -- a wrong CA file: refused too
      local c4 = client_mod.connect { url = url, user = "asterisk", password = "asterisk", events = false,
        cainfo = "/etc/ssl/certs/ca-certificates.crt", timeout = 5000 }
      local ok4, err4 = pcall(c4.asterisk.getInfo)
      assert.is_false(ok4)
      assert.equals("transport", err4.kind)
      c4:close()
    end)
  end)

  it("events WebSocket (wss): refused by default, opened with the CA", function()
    if not dir then pending("openssl or socat not available") return end
    with_tls(function(url)
      local function try(opts)
        local c = client_mod.connect(opts)
        local t0 = ari.now()
        while c.stats.connects == 0 and ari.now() - t0 < 1500 do ari.sleep(20) end
        local n = c.stats.connects
        c:close()
        return n
      end
      local base = { url = url, user = "asterisk", password = "asterisk", app = "sec" }
      assert.equals(0, try(base))
      local with_ca = {}
      for k, v in pairs(base) do with_ca[k] = v end
      with_ca.cainfo = dir .. "/cert.pem"
      assert.equals(1, try(with_ca))
    end)
  end)
end)

describe("credentials", function()
  it("never appear in REST errors, their tostring, or log lines", function()
    ari.run(function()
      local secret = "s3cr3t-Pw!"
      log.add_secret(secret)
      local text = capture_log(function()
        -- connection refused (nothing listens on the port)
        local port = free_port()
        local c = client_mod.connect { url = "http://127.0.0.1:" .. port, user = "asterisk", password = secret,
          events = false, timeout = 2000 }
        local ok, err = pcall(c.channels.list)
        assert.is_false(ok)
        local s = tostring(err)
        assert.is_nil(s:find(secret, 1, true))
        for k, v in pairs(err) do
          assert.is_nil(tostring(v):find(secret, 1, true), "field " .. tostring(k))
        end
        log.error("failed: %s (%s)", s, secret)
        c:close()
        -- 401 from the simulator with a wrong password
        local sim = simmod.new { logger = function() end }
        sim:listen { host = "127.0.0.1", port = 0 }
        local c2 = client_mod.connect { url = sim.url, user = "asterisk", password = secret, events = false }
        local ok2, err2 = pcall(c2.channels.list)
        assert.is_false(ok2)
        assert.equals(401, err2.status)
        assert.is_nil(tostring(err2):find(secret, 1, true))
        for k, v in pairs(err2) do
          if type(v) == "string" then assert.is_nil(v:find(secret, 1, true), "field " .. tostring(k)) end
        end
        log.warn("%s", tostring(err2))
        c2:close()
        sim:close()
      end)
      assert.is_truthy(text:find("failed:", 1, true))
      assert.is_nil(text:find(secret, 1, true))
    end)
  end)

  it("never appear in the --sim transcript or output", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local app = dir .. "/app.lua"
    local f = assert(io.open(app, "w"))
    f:write([[
local ari = require "ari"
local app = ari.app "sec"
app:on_call(function(call) call:answer(); call:hangup() end)
]])
    f:close()
    local cmd = string.format("%s --sim --sim-speed 20 --transcript %s/t.jsonl %s 2>&1", os.getenv("ARI_LUA_BIN") or "./ari-lua", dir, app)
    local p = io.popen(cmd)
    local out = p:read("a")
    p:close()
    local tr = read(dir .. "/t.jsonl") or ""
    os.execute("rm -rf " .. dir)
    assert.is_truthy(tr:find("/ari/channels/", 1, true), "transcript has the call")
    -- the simulator's credentials (asterisk/asterisk) in any form
    for _, s in ipairs { tr, out } do
      assert.is_nil(s:find("asterisk:asterisk", 1, true))
      assert.is_nil(s:find("YXN0ZXJpc2s6YXN0ZXJpc2s", 1, true)) -- base64 of it
      assert.is_nil(s:find("api_key", 1, true))
    end
  end)
end)

describe("ids and values are percent-encoded", function()
  local check = dofile("spec/fuzz/url_check.lua")

  it("the URL invariants hold for every input of the url fuzz corpus", function()
    local names = ls("spec/fuzz/corpus/url")
    assert.is_true(#names >= 10)
    for _, n in ipairs(names) do
      local s = read("spec/fuzz/corpus/url/" .. n)
      local ok, err = pcall(check, s)
      assert(ok, n .. ": " .. tostring(err))
    end
  end)

  it("the invariant checker rejects an encoder that lets '/' through", function()
    local http = require "ari.http"
    local orig = http.urlencode
    http.urlencode = function(s) return (orig(s):gsub("%%2F", "/")) end
    local ok = pcall(check, "a/b")
    http.urlencode = orig
    assert.is_false(ok)
  end)

  it("ids with / ? # % .. reach only their own resource (capturing server)", function()
    ari.run(function()
      local seen = {}
      local srv = assert(core.server_listen({ host = "127.0.0.1", port = 0 }, {
        on_request = function(req, res)
          seen[#seen + 1] = { method = req.method, path = req.path, query = req.query }
          res:send(204, {}, "")
        end,
      }))
      -- probe = false: only the requests below reach the capturing server (no api-docs request at connect)
      local c = client_mod.connect { url = "http://127.0.0.1:" .. srv:port(), user = "u", password = "p", events = false,
        probe = false }
      local ids = { "a/b", "x?y=1", "h#frag", "100%", "..", ".", "../../asterisk/info", "a b", "%2e%2e" }
      for _, id in ipairs(ids) do c.channels.hangup { channelId = id } end
      c.channels.setChannelVar { channelId = "c", variable = "A&b=c", value = "#?/" }
      for i, id in ipairs(ids) do
        local s = seen[i]
        assert.equals("DELETE", s.method)
        local seg = s.path:match("^/ari/channels/([^/]+)$")
        assert.is_truthy(seg, "path " .. s.path .. " for " .. id)
        assert.equals(id, (seg:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)))
        assert.is_true(s.query == nil or s.query == "")
      end
      local last = seen[#ids + 1]
      assert.equals("/ari/channels/c/variable", last.path)
      assert.equals("value=%23%3F%2F&variable=A%26b%3Dc", last.query)
      c:close()
      srv:close()
    end)
  end)
end)

describe("the simulator", function()
  it("binds loopback unless told otherwise", function()
    ari.run(function()
      local sim = simmod.new { logger = function() end }
      sim:listen {}
      assert.matches("^http://127%.0%.0%.1:%d+", sim.url)
      sim:close()
      local sim2 = simmod.new { logger = function() end }
      sim2:listen { port = 0 }
      assert.matches("^http://127%.0%.0%.1:%d+", sim2.url)
      sim2:close()
    end)
  end)
end)

describe("sizes are bounded", function()
  it("a REST response over max_body is a too_large transport error", function()
    ari.run(function()
      local srv = assert(core.server_listen({ host = "127.0.0.1", port = 0 }, {
        on_request = function(_, res) res:send(200, { ["content-type"] = "application/json" }, string.rep("x", 200000)) end,
      }))
      local http = require "ari.http"
      local ok, err = pcall(http.request, { url = "http://127.0.0.1:" .. srv:port() .. "/", max_body = 1000, timeout = 5000 })
      assert.is_false(ok)
      assert.equals("too_large", err.kind)
      srv:close()
    end)
  end)

  it("the server refuses a body over max_body and a WebSocket message over max_message", function()
    ari.run(function()
      local got = 0
      local srv = assert(core.server_listen({ host = "127.0.0.1", port = 0, max_body = 1000, max_message = 1000 }, {
        on_request = function(req, res)
          if req.websocket then
            res:upgrade(nil, { on_message = function() got = got + 1 end })
          else
            res:send(200, {}, "ok")
          end
        end,
      }))
      local http = require "ari.http"
      local status = http.request { method = "POST", url = "http://127.0.0.1:" .. srv:port() .. "/", body = string.rep("b", 5000), timeout = 5000 }
      assert.equals(413, status)
      local closed
      local ws = require("ari.ws").connect { url = "ws://127.0.0.1:" .. srv:port() .. "/e", reconnect = false,
        on_close = function(code) closed = code end, on_error = function() end }
      assert.is_true(ws:wait_open(3000))
      ws:send(string.rep("m", 5000))
      local t0 = ari.now()
      while closed == nil and ari.now() - t0 < 3000 do ari.sleep(10) end
      assert.equals(1009, closed)
      assert.equals(0, got)
      ws:close()
      srv:close()
    end)
  end)
end)

describe("fuzz regressions (http)", function()
  it("a folded first header after a reused connection is handled (libcurl #11620)", function()
    ari.run(function()
      local fh = dofile("spec/fuzz/http_check.lua")
      local names = ls("spec/fuzz/corpus/http")
      local n = 0
      for _, name in ipairs(names) do
        local bytes = read("spec/fuzz/corpus/http/" .. name)
        if bytes:sub(1, 1) == "R" then
          -- a normal response first, so the next one may reuse the handle
          for _, body in ipairs { "HTTP/1.1 200 OK\r\nX-A: b\r\nContent-Length: 0\r\n\r\n", bytes:sub(2) } do
            fh.start(body)
            local t0 = ari.now()
            while not fh.done and ari.now() - t0 < 3000 do ari.sleep(2) end
            assert.is_true(fh.done, name)
            fh.finish()
          end
          n = n + 1
        end
      end
      assert.is_true(n >= 5)
    end)
  end)
end)
