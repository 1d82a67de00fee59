-- The simulated Asterisk over real HTTP + WebSocket on loopback.
local ari = require "ari"
local core = require "ari.core"
local http = require "ari.http"
local json = require "ari.sim.json"
local util = require "spec.support.util"

local with_sim = util.with_sim

describe("sim over HTTP", function()
  it("requires credentials (basic auth or api_key)", function()
    with_sim(function(sim)
      local s, body = http.request { url = sim.url .. "/ari/asterisk/ping" }
      assert.equals(401, s)
      assert.is_string(json.decode(body).message)
      s = http.request { url = sim.url .. "/ari/asterisk/ping", user = "asterisk", password = "wrong" }
      assert.equals(401, s)
      s, body = http.request { url = sim.url .. "/ari/asterisk/ping", user = "asterisk", password = "asterisk" }
      assert.equals(200, s)
      assert.equals("pong", json.decode(body).ping)
      s = http.request { url = sim.url .. "/ari/asterisk/ping?api_key=asterisk:asterisk" }
      assert.equals(200, s)
      s, body = http.request { url = sim.url .. "/ari/channels/nope?api_key=asterisk:asterisk" }
      assert.equals(404, s)
      assert.equals("Channel not found", json.decode(body).message)
    end)
  end)

  it("serves api-docs with basePath rewritten to the listening address", function()
    with_sim(function(sim)
      local s, body = http.request { url = sim.url .. "/ari/api-docs/resources.json", user = "asterisk", password = "asterisk" }
      assert.equals(200, s)
      local doc = json.decode(body)
      assert.equals(sim.url .. "/ari", doc.basePath)
      assert.equals(11, #doc.apis)
      s, body = http.request { url = sim.url .. "/ari/api-docs/channels.json", user = "asterisk", password = "asterisk" }
      assert.equals(200, s)
      doc = json.decode(body)
      assert.equals(sim.url .. "/ari", doc.basePath)
      assert.is_table(doc.models.Channel)
      local nicks = {}
      for _, a in ipairs(doc.apis) do for _, o in ipairs(a.operations) do nicks[o.nickname] = true end end
      assert.is_true(nicks.originate and nicks.answer and nicks.play)
    end)
  end)

  it("streams events over the WebSocket", function()
    with_sim(function(sim)
      local got = {}
      local opened = false
      local conn = core.ws_connect({ url = sim.url:gsub("^http", "ws") .. "/ari/events?app=wsapp&api_key=asterisk:asterisk" }, {
        on_open = function() opened = true end,
        on_message = function(msg) got[#got + 1] = json.decode(msg) end,
        on_close = function() end, on_error = function() end,
      })
      local deadline = ari.now() + 3000
      while not opened and ari.now() < deadline do ari.sleep(5) end
      assert.is_true(opened)
      while not sim:app_active("wsapp") and ari.now() < deadline do ari.sleep(5) end
      local s = http.request { method = "POST", url = sim.url .. "/ari/channels/create?endpoint=PJSIP/x&app=wsapp&channelId=w1",
        user = "asterisk", password = "asterisk" }
      assert.equals(200, s)
      while #got == 0 or got[#got].type ~= "StasisStart" do
        assert.is_true(ari.now() < deadline, "no StasisStart")
        ari.sleep(5)
      end
      assert.equals("w1", got[#got].channel.id)
      assert.equals("wsapp", got[#got].application)
      conn:close()
    end)
  end)
end)
