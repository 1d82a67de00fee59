-- REST over the ARI WebSocket (ari.wstransport): RESTRequest out,
-- RESTResponse back, against the simulated Asterisk and a fake socket.
local ari = require "ari"
local core = require "ari.core"
local wst = require "ari.wstransport"
local util = require "spec.support.util"

local with_sim = util.with_sim
local wait_until = util.waiter(3000)

local function connect(sim, app)
  return ari.connect { url = sim.url, user = "asterisk", password = "asterisk", app = app, transport = "websocket" }
end

-- A transport over a fake socket: sent messages are decoded into `sent`.
local function fake(opts)
  local sent = {}
  local t = wst.new {
    send = function(text) sent[#sent + 1] = core.json_decode(text); return true end,
    timeout = opts and opts.timeout, fallback = opts and opts.fallback,
    transaction_id = opts and opts.transaction_id,
  }
  return t, sent
end

local function reply(t, req, status, body, ctype)
  return t:handle(core.json_decode(core.json_encode {
    type = "RESTResponse", transaction_id = req.transaction_id, request_id = req.request_id,
    status_code = status, reason_phrase = "x", uri = req.uri, content_type = ctype or (body and "application/json"),
    message_body = body, application = "a", timestamp = "2026-01-01T00:00:00.000+0000",
  }))
end

describe("REST over WebSocket against the simulator", function()
  it("runs operations as RESTRequest/RESTResponse on the events socket", function()
    with_sim(function(sim)
      local c = connect(sim, "rws")
      local pong = c.asterisk.ping()
      assert.equals("pong", pong.ping)
      assert.equals(sim.asterisk_id, pong.asterisk_id)
      assert.equals(1, c.rest_ws.stats.responses)
      -- a typed model from message_body (JSON text decoded a second time)
      local ch = c.channels.create { endpoint = "PJSIP/x", app = "rws", channelId = "rws-1" }
      assert.equals("rws-1", ch.id)
      assert.equals("Channel", ari.model_of(ch))
      -- 204: true, no body
      assert.is_true(c.channels.setChannelVar { channelId = "rws-1", variable = "FOO", value = "bar" })
      local v = c.channels.getChannelVar { channelId = "rws-1", variable = "FOO" }
      assert.equals("bar", v.value)
      assert.equals(4, c.rest_ws.stats.responses)
      c:close()
    end)
  end)

  it("raises ARI errors with Asterisk's status and message", function()
    with_sim(function(sim)
      local c = connect(sim, "rws")
      local ok, err = pcall(c.channels.get, { channelId = "nope" })
      assert.is_false(ok)
      assert.equals(404, err.status)
      assert.equals("Channel not found", err.message)
      assert.matches("channels.get", tostring(err), 1, true)
      c:close()
    end)
  end)

  it("drives a whole call through ari.app{ transport = 'websocket' }", function()
    with_sim(function(sim)
      local app = ari.app { app = "rwsapp", url = sim.url, user = "asterisk", password = "asterisk",
        transport = "websocket" }
      local done
      app:on_call(function(call)
        call:answer()
        call:play("sound:beep")
        done = call.id
        call:hangup()
      end)
      wait_until(function() return sim:app_active("rwsapp") end, 3000, "app registered")
      -- a caller dialling into the app (a channel made with /channels/create
      -- would be Down, which Asterisk refuses to answer: 412)
      require("ari.sim.scenario").place_call(sim, { channel_id = "in-1", from = "1001",
        script = { { "wait_hangup", timeout = 100000 } } }, "rwsapp")
      wait_until(function() return done ~= nil and app:active() == 0 end, 5000, "call done")
      assert.equals("in-1", done)
      assert.is_nil(sim.channels["in-1"])
      assert.is_true(app.client.rest_ws.stats.requests >= 3) -- answer, play, hangup
      app.client:close()
    end)
  end)

  it("sends binary downloads over HTTP", function()
    with_sim(function(sim)
      local c = connect(sim, "rws")
      local before = c.rest_ws.stats.requests
      local ok, err = pcall(c.recordings.getStoredFile, { recordingName = "missing" })
      assert.is_false(ok)
      assert.equals(404, err.status)
      assert.equals(1, c.rest_ws.stats.fallbacks)
      assert.equals(before, c.rest_ws.stats.requests)
      c:close()
    end)
  end)
end)

describe("the default REST transport", function()
  local function client(sim, extra)
    local o = { url = sim.url, user = "asterisk", password = "asterisk", app = "rwsdef" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return ari.connect(o)
  end

  it("is the events socket where the server offers it, HTTP while that socket is not open", function()
    with_sim(function(sim)
      local c = client(sim)
      assert.equals("websocket", c.transport_name)
      -- sent before the socket opened: over HTTP, not held back
      local st = c.rest_ws.stats
      assert.is_table(c.asterisk.getInfo {})
      assert.equals(1, st.fallbacks + st.requests)
      wait_until(function() return sim:app_active("rwsdef") end, 3000, "app registered")
      local f0, r0 = st.fallbacks, st.requests
      assert.equals("pong", c.asterisk.ping().ping)
      assert.equals(r0 + 1, st.requests)
      assert.equals(f0, st.fallbacks)
      -- a reply is not an event: no client handler sees it
      local seen = {}
      c:on("*", function(ev) seen[#seen + 1] = ev.type end)
      local events0 = c.stats.events
      assert.equals("pong", c.asterisk.ping().ping)
      assert.equals(events0, c.stats.events)
      assert.same({}, seen)
      c:close()
    end)
  end)

  it("lets requests in flight get their answers when the client closes", function()
    with_sim(function(sim)
      local c = client(sim)
      wait_until(function() return sim:app_active("rwsdef") end, 3000, "app registered")
      local got, r0 = nil, c.rest_ws.stats.requests
      ari.spawn(function() got = { pcall(c.asterisk.ping) } end)
      assert.equals(r0 + 1, c.rest_ws.stats.requests) -- sent, not yet answered
      c:close()
      wait_until(function() return got ~= nil end, 3000, "the answer")
      assert.is_true(got[1], tostring(got[2]))
      assert.equals("pong", got[2].ping)
      wait_until(function() return not sim:app_active("rwsdef") end, 3000, "the socket to close")
    end)
  end)

  it("is HTTP when forced, without an events socket, or where the server lacks it", function()
    with_sim(function(sim)
      local forced = client(sim, { transport = "http" })
      assert.equals("http", forced.transport_name)
      assert.is_nil(forced.rest_ws)
      local bare = client(sim, { events = false })
      assert.equals("http", bare.transport_name)
      assert.is_nil(bare.rest_ws)
      local old = client(sim, { server = { ari_version = "6.0.1", asterisk_version = "18.26.4" } })
      assert.equals("http", old.transport_name)
      assert.is_nil(old.rest_ws)
      local early22 = client(sim, { server = { ari_version = "10.0.0", asterisk_version = "22.3.0" } })
      assert.equals("http", early22.transport_name)
      local unknown = client(sim, { server = { ari_version = "10.0.0" } }) -- 22.0-22.3 lack it
      assert.equals("http", unknown.transport_name)
      local new23 = client(sim, { server = { ari_version = "11.0.0" } })
      assert.equals("websocket", new23.transport_name)
      for _, c in ipairs { forced, bare, old, early22, unknown, new23 } do c:close() end
    end)
  end)

  it("says in the log which one it chose", function()
    local restws_offered = require("ari.client").restws_offered
    -- (major: the Asterisk major, as in client.server)
    assert.is_true(restws_offered { major = 22, asterisk_version = "22.4.0" })
    assert.is_true(restws_offered { major = 20, asterisk_version = "20.14.1" })
    assert.is_false((restws_offered { major = 20, asterisk_version = "20.13.0" }))
    assert.is_false((restws_offered { major = 18, asterisk_version = "18.26.4" }))
    assert.is_nil((restws_offered { major = 21 }))
    assert.is_true(restws_offered { major = 23 })
    with_sim(function(sim)
      local log = require "ari.log"
      local lines = {}
      log.set_output { write = function(_, ...) for _, v in ipairs { ... } do lines[#lines + 1] = v end end,
        flush = function() end }
      local ok, a, b = pcall(function()
        return client(sim), client(sim, { server = { ari_version = "6.0.1", asterisk_version = "18.26.4" } })
      end)
      log.set_output(nil)
      assert(ok, a)
      local text = table.concat(lines)
      assert.matches("REST over the events WebSocket", text, 1, true)
      assert.matches("REST over HTTP (libcurl): Asterisk 18.26.4", text, 1, true)
      a:close(); b:close()
    end)
  end)
end)

describe("ari.wstransport", function()
  it("takes a reply (or a closed socket) that comes while the request is being sent", function()
    ari.run(function()
      local t
      t = wst.new {
        send = function(text)
          local req = core.json_decode(text)
          if req.uri == "channels/closing" then t:fail_all("reset", "socket closed") -- before the wait
          else reply(t, req, 200, '{"id":"sync"}') end
          return true
        end,
      }
      local s, body = t:request { method = "GET", path = "/channels/sync", query_string = "" }
      assert.equals(200, s)
      assert.equals('{"id":"sync"}', body)
      local ok, err = pcall(t.request, t, { method = "GET", path = "/channels/closing", query_string = "" })
      assert.is_false(ok)
      assert.equals("reset", err.kind)
      assert.equals(0, t:in_flight())
    end)
  end)

  it("correlates responses that arrive out of order by request_id", function()
    ari.run(function()
      local t, sent = fake()
      local results = {}
      for i = 1, 3 do
        ari.spawn(function()
          local s, body = t:request { method = "GET", path = "/channels/c" .. i, query_string = "" }
          results[i] = { s, body }
        end)
      end
      wait_until(function() return #sent == 3 end)
      for i = 1, 3 do
        assert.equals("RESTRequest", sent[i].type)
        assert.equals("channels/c" .. i, sent[i].uri)
        assert.equals("GET", sent[i].method)
      end
      assert.are_not.equal(sent[1].request_id, sent[2].request_id)
      for i = 3, 1, -1 do assert.is_true(reply(t, sent[i], 200, '{"id":"c' .. i .. '"}')) end
      wait_until(function() return results[1] and results[2] and results[3] end)
      for i = 1, 3 do
        assert.equals(200, results[i][1])
        assert.equals('{"id":"c' .. i .. '"}', results[i][2])
      end
      -- an unknown request id is counted, not delivered
      assert.is_true(reply(t, { request_id = "other", transaction_id = "x", uri = "u" }, 200))
      assert.equals(1, t.stats.unmatched)
      assert.is_false(t:handle { type = "StasisStart" })
    end)
  end)

  it("puts the query in the uri and JSON bodies in message_body", function()
    ari.run(function()
      local t, sent = fake()
      ari.spawn(function()
        t:request { method = "POST", path = "/channels/x/variable", query_string = "variable=A&value=b%20c",
          body = '{"variables":{"X":"1"}}' }
      end)
      wait_until(function() return #sent == 1 end)
      assert.equals("channels/x/variable?variable=A&value=b%20c", sent[1].uri)
      assert.equals("application/json", sent[1].content_type)
      assert.equals('{"variables":{"X":"1"}}', sent[1].message_body)
      reply(t, sent[1], 204)
    end)
  end)

  it("times out, and fails requests in flight when the socket closes", function()
    ari.run(function()
      local t = fake { timeout = 50 }
      local ok, err = pcall(t.request, t, { method = "GET", path = "/asterisk/ping", query_string = "" })
      assert.is_false(ok)
      assert.equals("timeout", err.kind)
      local res
      ari.spawn(function()
        res = table.pack(pcall(t.request, t, { method = "GET", path = "/asterisk/ping", query_string = "", timeout = 5000 }))
      end)
      assert.equals(1, t:in_flight())
      t:fail_all("reset", "gone")
      wait_until(function() return res ~= nil end)
      assert.is_false(res[1])
      assert.equals("reset", res[2].kind)
      assert.equals(0, t:in_flight())
    end)
  end)

  it("a timer of an answered request never times out a later one (the timers are reused)", function()
    ari.run(function()
      local t, sent = fake { timeout = 60 }
      for i = 1, 3 do
        local res
        ari.spawn(function() res = table.pack(pcall(t.request, t, { method = "GET", path = "/asterisk/ping", query_string = "" })) end)
        wait_until(function() return #sent == i end)
        reply(t, sent[i], 200, '{"ping":"pong"}')
        wait_until(function() return res ~= nil end)
        assert.is_true(res[1])
      end
      -- a long request after them: still waiting well past their 60 ms
      local res
      ari.spawn(function() res = table.pack(pcall(t.request, t, { method = "GET", path = "/asterisk/ping", query_string = "", timeout = 5000 })) end)
      local t0 = core.now()
      while core.now() - t0 < 200 do ari.sleep(10) end
      assert.is_nil(res)
      assert.equals(1, t:in_flight())
      reply(t, sent[4], 200, '{"ping":"pong"}')
      wait_until(function() return res ~= nil end)
      assert.is_true(res[1])
      -- and a short one after that still times out on time
      local ok, err = pcall(t.request, t, { method = "GET", path = "/asterisk/ping", query_string = "", timeout = 50 })
      assert.is_false(ok)
      assert.equals("timeout", err.kind)
    end)
  end)

  it("quotes whatever the ids, method and URI hold (the message is built as text)", function()
    ari.run(function()
      local t, sent = fake { transaction_id = 'tx "1" \\ é' }
      local res
      ari.spawn(function()
        res = table.pack(pcall(t.request, t, { method = "POST", path = '/a"b\\c', query_string = "x=1",
          body = '{"k":"v \\"q\\""}' }))
      end)
      wait_until(function() return #sent == 1 end)
      local m = sent[1]
      assert.equals("RESTRequest", m.type)
      assert.equals('tx "1" \\ é', m.transaction_id)
      assert.equals('tx "1" \\ é-1', m.request_id)
      assert.equals("POST", m.method)
      assert.equals('a"b\\c?x=1', m.uri)
      assert.equals('{"k":"v \\"q\\""}', m.message_body)
      assert.equals("application/json", m.content_type)
      reply(t, m, 204)
      wait_until(function() return res ~= nil end)
      assert.is_true(res[1])
    end)
  end)

  it("retries a 406 (binary refused) over the fallback", function()
    ari.run(function()
      local fell
      local t, sent = fake { fallback = function(req) fell = req.path; return 200, "RIFF", {} end }
      local res
      ari.spawn(function()
        res = table.pack(t:request { method = "GET", path = "/some/thing", query_string = "" })
      end)
      wait_until(function() return #sent == 1 end)
      reply(t, sent[1], 406, '{"message":"Not Acceptable. Use HTTP GET"}')
      wait_until(function() return res ~= nil end)
      assert.equals(200, res[1])
      assert.equals("RIFF", res[2])
      assert.equals("/some/thing", fell)
      -- known binary operations skip the socket
      local s = t:request { method = "GET", path = "/recordings/stored/r1/file", query_string = "" }
      assert.equals(200, s)
      assert.equals(1, #sent)
      assert.equals(2, t.stats.fallbacks)
    end)
  end)
end)
