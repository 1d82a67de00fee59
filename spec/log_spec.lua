-- ari.log: levels, per-call prefixes, JSON lines, and no credentials.
local log = require "ari.log"

local function capture(fn)
  local lines = {}
  local sink = {
    write = function(self, ...) lines[#lines + 1] = table.concat({ ... }); return self end,
    flush = function(self) return self end,
  }
  local level = log.get_level()
  log.set_output(sink)
  local ok, err = pcall(fn)
  log.set_output(nil)
  log.set_format("text")
  log.set_level(level)
  assert(ok, err)
  return table.concat(lines)
end

describe("ari.log", function()
  it("drops lines below the level", function()
    local out = capture(function()
      log.set_level("warn")
      log.info("quiet %d", 1)
      log.debug("quieter")
      log.warn("loud %s", "yes")
      log.error("louder")
      assert.is_false(log.enabled("info"))
      assert.is_true(log.enabled("warn"))
    end)
    assert.is_nil(out:find("quiet", 1, true))
    assert.matches("WARN loud yes", out)
    assert.matches("ERROR louder", out)
  end)

  it("rejects unknown levels and formats", function()
    assert.has_error(function() log.set_level("chatty") end)
    assert.has_error(function() log.set_format("xml") end)
  end)

  it("prefixes a call's lines with its channel", function()
    local out = capture(function()
      log.set_level("info")
      local l = log.new("1700000000.1 PJSIP/alice-00000001")
      l:info("answered after %d ms", 12)
    end)
    assert.matches("INFO %[1700000000%.1 PJSIP/alice%-00000001%] answered after 12 ms\n", out)
  end)

  it("writes JSON lines with time, level, call and msg", function()
    local out = capture(function()
      log.set_level("debug")
      log.set_format("json")
      log.new("c1"):debug('a "quoted"\tline')
      log.warn("plain")
    end)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equals(2, #lines)
    local core = require "ari.core"
    local a = assert(core.json_decode(lines[1]))
    assert.equals("debug", a.level)
    assert.equals("c1", a.call)
    assert.equals('a "quoted"\tline', a.msg)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", a.time)
    local b = assert(core.json_decode(lines[2]))
    assert.equals("warn", b.level)
    assert.is_nil(b.call)
  end)

  it("never prints a registered password, user:password or its Basic encoding", function()
    log.add_credentials("alice", "pa55-w0rd!")
    local out = capture(function()
      log.set_level("info")
      log.info("password pa55-w0rd! userinfo alice:pa55-w0rd! basic %s", log._base64("alice:pa55-w0rd!"))
    end)
    assert.is_nil(out:find("pa55", 1, true))
    assert.is_nil(out:find(log._base64("alice:pa55-w0rd!"), 1, true))
    assert.matches("password %*%*%*", out)
  end)

  it("hides Authorization values, api_key and URL passwords even when not registered", function()
    local out = capture(function()
      log.set_level("info")
      log.info("Authorization: Basic Zm9vOmJhcg==")
      log.info('headers { authorization = "Bearer tok.en" }')
      log.info("GET /ari/channels?api_key=u:p&x=1")
      log.info("connecting to ws://bob:hunter2@pbx:8088/ari/events")
    end)
    for _, secret in ipairs { "Zm9vOmJhcg==", "tok.en", "u:p", "hunter2" } do
      assert.is_nil(out:find(secret, 1, true), secret)
    end
    assert.matches("api_key=%*%*%*&x=1", out)
    assert.matches("ws://bob:%*%*%*@pbx:8088", out)
  end)

  it("base64 encodes like RFC 4648", function()
    assert.equals("", log._base64(""))
    assert.equals("Zg==", log._base64("f"))
    assert.equals("Zm8=", log._base64("fo"))
    assert.equals("Zm9v", log._base64("foo"))
    assert.equals("YXN0ZXJpc2s6YXN0ZXJpc2s=", log._base64("asterisk:asterisk"))
  end)
end)

describe("ari-lua --log-format json", function()
  it("logs JSON lines with the call, and no credentials anywhere in the output or transcript", function()
    local bin = os.getenv("ARI_LUA_BIN") or "./ari-lua"
    local err, tr = os.tmpname(), os.tmpname()
    local p = io.popen(bin .. " --sim --sim-speed 20 --log-level debug --log-format json --transcript " .. tr
      .. " examples/hello.lua 2>" .. err .. "; echo rc=$?")
    local out = p:read("a")
    p:close()
    local f = assert(io.open(err)); local logtext = f:read("a"); f:close()
    f = assert(io.open(tr)); local trtext = f:read("a"); f:close()
    os.remove(err); os.remove(tr)
    assert.matches("rc=0", out)
    local core = require "ari.core"
    local n, with_call = 0, 0
    for line in logtext:gmatch("[^\n]+") do
      local v = core.json_decode(line)
      assert.is_table(v, line)
      assert.is_string(v.level)
      assert.is_string(v.msg)
      n = n + 1
      if v.call and v.msg:find("call from", 1, true) then with_call = with_call + 1 end
    end
    assert.is_true(n >= 2)
    assert.equals(1, with_call)
    -- the simulator's credentials are asterisk/asterisk
    for _, text in ipairs { out, logtext, trtext } do
      assert.is_nil(text:find("YXN0ZXJpc2s6YXN0ZXJpc2s=", 1, true))
      assert.is_nil(text:find("asterisk:asterisk", 1, true))
      assert.is_nil(text:lower():find("authorization", 1, true))
    end
  end)
end)

-- [versions] what the client logs at debug (a real Asterisk: spec/asterisk/logging_spec.lua)
describe("client debug log", function()
  it("connecting, the server, each REST request with status and time, each event; no password", function()
    local ari = require "ari"
    local client = require "ari.client"
    local models = require "ari.models"
    local sim = require("ari.sim").new { logger = function() end, password = "Dbg-Pw-4242" }
    local out = capture(function()
      log.set_level("debug")
      ari.run(function()
        sim:listen { host = "127.0.0.1", port = 0 }
        client._server_cache[client.normalize_url(sim.url)] = nil
        local c = ari.connect { url = sim.url, user = "asterisk", password = "Dbg-Pw-4242", app = "dbg" }
        c.asterisk.getInfo()
        local ok = pcall(c.channels.get, { channelId = "nope" })
        assert.is_false(ok)
        client.event_seen(models.decode('{"type":"StasisStart","application":"dbg","timestamp":"t","args":[],'
          .. '"channel":{"id":"ch-1","name":"n","state":"Up","protocol_id":"","caller":{"name":"","number":""},'
          .. '"connected":{"name":"","number":""},"accountcode":"","dialplan":{"context":"c","exten":"s",'
          .. '"priority":1,"app_name":"","app_data":""},"creationtime":"t","language":"en"}}'))
        c:close()
        sim:close()
      end)
    end)
    assert.matches("DEBUG connecting to " .. sim.url:gsub("%p", "%%%0") .. "/ari as user 'asterisk'", out)
    assert.matches("DEBUG REST GET /api%-docs/resources%.json %-> 200 %(%d+%.%d ms%)", out)
    assert.matches("INFO connected to Asterisk 22%.[%d.]+ %(ARI %d+%.%d+%.%d+%)", out)
    assert.matches("INFO REST over the events WebSocket", out)
    assert.matches("DEBUG REST GET /asterisk/info %-> 200 %(%d+%.%d ms%)", out)
    assert.matches("DEBUG REST GET /channels/nope %-> 404 %(%d+%.%d ms%)", out)
    assert.matches("DEBUG event StasisStart channel=ch%-1", out)
    assert.is_nil(out:find("Dbg-Pw-4242", 1, true))
  end)

  it("at info: no REST or event lines", function()
    local ari = require "ari"
    local sim = require("ari.sim").new { logger = function() end, password = "Dbg-Pw-4243" }
    local out = capture(function()
      log.set_level("info")
      ari.run(function()
        sim:listen { host = "127.0.0.1", port = 0 }
        local c = ari.connect { url = sim.url, user = "asterisk", password = "Dbg-Pw-4243", events = false }
        c.asterisk.getInfo()
        c:close()
        sim:close()
      end)
    end)
    assert.is_nil(out:find("REST ", 1, true))
  end)
end)
