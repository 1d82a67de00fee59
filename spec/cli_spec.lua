-- The ari-lua host: options, exit codes, signals.
local BIN = os.getenv("ARI_LUA_BIN") or "./ari-lua"

local function run(args, script)
  local path
  if script then
    path = os.tmpname()
    local f = assert(io.open(path, "w")); f:write(script); f:close()
  end
  local out = os.tmpname()
  local cmd = string.format("%s %s %s > %s 2>&1", BIN, args or "", path or "", out)
  local ok, how, code = os.execute(cmd)
  local f = io.open(out); local text = f:read("a"); f:close()
  os.remove(out); if path then os.remove(path) end
  return (how == "exit" and code or -1), text
end

describe("ari-lua host", function()
  it("prints its version", function()
    local rc, out = run("--version")
    assert.equals(0, rc)
    assert.matches("^ari%-lua %d+%.%d+%.%d+", out)
  end)

  it("prints help", function()
    local rc, out = run("--help")
    assert.equals(0, rc)
    assert.matches("usage: ari%-lua", out)
  end)

  it("exits 2 on an unknown option", function()
    local rc, out = run("--no-such-thing")
    assert.equals(2, rc)
    assert.matches("unknown option", out)
  end)

  it("exits 2 when no script is given", function()
    assert.equals(2, (run("")))
  end)

  it("exits 2 on a bad option value", function()
    local rc, out = run("--log-level loud", "")
    assert.equals(2, rc)
    assert.matches("log level", out)
  end)

  it("runs a script with its arguments and exits 0", function()
    local rc, out = run("", "print('args', ...)")
    assert.equals(0, rc)
    assert.matches("args", out)
  end)

  it("keeps running while timers are pending", function()
    local rc, out = run("", [[
      local ari = require "ari"
      ari.timer(30, function() print("late timer") end)
      print("script done")
    ]])
    assert.equals(0, rc)
    assert.matches("script done.*late timer", out)
  end)

  it("exits 1 with message and traceback on a script error", function()
    local rc, out = run("", "local function f() error('kaput') end f()")
    assert.equals(1, rc)
    assert.matches("kaput", out)
    assert.matches("traceback", out)
  end)

  it("exits 1 on a syntax error", function()
    local rc, out = run("", "this is not lua")
    assert.equals(1, rc)
    assert.matches("syntax error", out)
  end)

  it("stops cleanly on SIGTERM within the grace period and exits 0", function()
    local rc, out = run("--shutdown-grace 200", [[
      local ari = require "ari"
      ari.on_shutdown(function() print("shutdown handler ran") end)
      ari.timer(50, function() os.execute("kill -TERM " .. io.open("/proc/self/stat"):read("n")) end)
      ari.sleep(60000)
    ]])
    assert.equals(0, rc)
    assert.matches("shutdown handler ran", out)
  end)

  it("exposes flags through ari.config", function()
    local rc, out = run("--url http://127.0.0.1:9999 --user u --app demo", [[
      local c = require "ari.config"
      print(c.url, c.user, c.app)
    ]])
    assert.equals(0, rc)
    assert.matches("http://127.0.0.1:9999\tu\tdemo", out)
  end)
end)

-- [versions] first contact and --transcript, against the built-in simulator
-- (a real Asterisk: spec/asterisk/first_contact_spec.lua, logging_spec.lua)
describe("ari-lua host: first contact", function()
  it("a URL without scheme and with a trailing /ari/ is accepted (client.normalize_url)", function()
    local n = require("ari.client").normalize_url
    assert.equals("http://127.0.0.1:8088/ari", n("127.0.0.1:8088"))
    assert.equals("http://127.0.0.1:8088/ari", n("127.0.0.1:8088/ari/"))
    assert.equals("http://h:8088/ari", n("http://h:8088/"))
    assert.equals("https://h:8089/ari", n("wss://h:8089/ari"))
    assert.equals("http://h/base/ari", n(" http://h/base "))
  end)

  it("nothing listening: a clear message and exit 1 at start-up, not a retry loop", function()
    local s = assert(require("ari.core").server_listen({ host = "127.0.0.1", port = 0 }, { on_request = function() end }))
    local port = s:port()
    s:close()
    local rc, out = run("--url 127.0.0.1:" .. port .. " --user u --password pw-secret-1",
      "local ari = require 'ari'\nari.connect { app = 'x' }\nprint('NOT REACHED')\n")
    assert.equals(1, rc, out)
    assert.matches("cannot connect to http://127.0.0.1:" .. port .. "/ari: connection refused", out, 1, true)
    assert.is_nil(out:find("NOT REACHED", 1, true))
    assert.is_nil(out:find("pw-secret-1", 1, true))
  end)

  it("with --sim: a script learns the (simulated) server's versions at connect", function()
    local rc, out = run("--sim --sim-speed 1000", [[
      local ari = require "ari"
      local c = ari.connect { app = "demo" }
      print("ARI " .. c.server.ari_version .. " major " .. c.server.major)
      c:close()
    ]])
    assert.equals(0, rc, out)
    assert.matches("ARI " .. require("ari.schema").api_version:gsub("%.", "%%.") .. " major %d+", out)
  end)

  it("help: --transcript works without --sim, --url without scheme", function()
    local _, out = run("--help")
    assert.matches("--transcript FILE", out, 1, true)
    assert.matches("else the REST requests and events the client saw", out, 1, true)
    assert.matches("http:// is", out, 1, true)
  end)
end)
