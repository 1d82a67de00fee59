-- Prometheus metrics and health checks (ari.metrics), scraped over HTTP
-- during a simulated load and checked against the simulator's transcript.
local ari = require "ari"
local config = require "ari.config"
local http = require "ari.http"
local metrics = require "ari.metrics"
local appmod = require "ari.app"
local simmod = require "ari.sim"
local scen = require "ari.sim.scenario"
local util = require "spec.support.util"

local wait_until = util.poll

local function start_sim(speed)
  local sim = simmod.new { speed = speed, scenario = { sounds = { ["short"] = 300, ["long"] = 60000 } } }
  sim:listen { host = "127.0.0.1", port = 0 }
  config.url, config.user, config.password = sim.url, sim.user, sim.password
  return sim
end

local function teardown(sim)
  ari.run(function()
    for _, a in ipairs(appmod.apps) do if a.accepting then a:shutdown(0) end end
  end)
  for i = #appmod.apps, 1, -1 do appmod.apps[i] = nil end
  if sim then sim:close() end
end

local function get(srv, path)
  return http.request { method = "GET", url = srv:url(path), timeout = 5000 }
end

-- Parse the text format: samples["name{labels}"] = value, plus the HELP
-- and TYPE of each family.
local function parse(text)
  local samples, types, helps = {}, {}, {}
  for line in text:gmatch("[^\n]+") do
    local n, h = line:match("^# HELP (%S+) (.+)$")
    if n then helps[n] = h
    else
      local tn, t = line:match("^# TYPE (%S+) (%S+)$")
      if tn then types[tn] = t
      else
        local key, v = line:match("^(.-) (%S+)$")
        assert(key, "bad sample line: " .. line)
        assert(samples[key] == nil, "duplicate sample " .. key)
        samples[key] = v == "+Inf" and math.huge or assert(tonumber(v), "bad value in " .. line)
      end
    end
  end
  return samples, types, helps
end

-- The simulator's counts for app `name`: events by type, REST by pattern.
local function sim_counts(sim, name)
  local ev, rest = {}, {}
  for _, e in ipairs(sim.transcript) do
    if e.kind == "event" and e.app == name then ev[e.type] = (ev[e.type] or 0) + 1
    elseif e.kind == "rest" then rest[#rest + 1] = e end
  end
  return ev, rest
end

local function count_rest(rest, method, pattern)
  local n = 0
  for _, e in ipairs(rest) do if e.method == method and e.path:match(pattern) then n = n + 1 end end
  return n
end

local function op_total(s, op)
  local n = 0
  for k, v in pairs(s) do
    if k:match('^ari_lua_rest_requests_total{operation="' .. op:gsub("%.", "%%.") .. '",') then n = n + v end
  end
  return n
end

local APP = [[
local ari = require "ari"
local app = ari.app "metricsload"
app:on_call(function(call, args)
  call:answer()
  if args[1] == "fail" then error("deliberate failure") end
  call:play(args[1] == "long" and "sound:long" or "sound:short")
  call:hangup()
end)
return app
]]

describe("metrics", function()
  it("counts calls, events and REST requests as the simulator saw them, scraped during a load", function()
    local N = 300
    local sim = start_sim(10)
    metrics.stop() -- (a failed test before may have left it running)
    local srv = assert(metrics.start { host = "127.0.0.1", port = 0 })
    local during, final, final_types, final_helps, ready_status
    local logf = io.tmpfile()
    ari.log.set_output(logf) -- N/3 deliberate script errors: keep their tracebacks out of the output
    local app
    ari.run(function()
      app = assert(load(APP, "=app", "t", setmetatable({}, { __index = _G })))()
      wait_until(function() local a = sim.apps.metricsload; return a and next(a.sessions) ~= nil end, "the app to connect")
      local ended = 0
      for i = 1, N do
        local c = { from = tostring(3000 + i) }
        if i % 3 == 0 then
          -- the caller hangs up in the middle of a long prompt
          c.args = "long"
          c.script = { { "wait_answer" }, { "wait_playback_start" }, { "sleep", 200 }, { "hangup" } }
        elseif i % 3 == 1 then
          c.args = "fail"
          c.script = { { "wait_answer" }, { "wait_hangup", timeout = 60000 } }
        else
          c.script = { { "wait_answer" }, { "wait_hangup", timeout = 60000 } }
        end
        scen.place_call(sim, c, "metricsload", function() ended = ended + 1 end)
      end
      -- scrape while the calls are running
      local st, body = get(srv, "/metrics")
      assert.equals(200, st)
      during = parse(body)
      local rst = get(srv, "/readyz")
      ready_status = rst
      wait_until(function() return ended == N and app:active() == 0 end, "the calls to end", 60000)
      -- events still in flight on the socket: wait until our total reaches the simulator's
      local sim_ev = sim_counts(sim, "metricsload")
      local want = 0
      for _, n in pairs(sim_ev) do want = want + n end
      wait_until(function()
        local got = 0
        for _, n in pairs(metrics.events) do got = got + n end
        return got >= want
      end, "every event to arrive")
      local body2
      st, body2 = get(srv, "/metrics")
      assert.equals(200, st)
      final, final_types, final_helps = parse(body2)
    end)
    ari.log.set_output(nil)
    logf:seek("set")
    local logged = select(2, logf:read("a"):gsub("script error: app:5: deliberate failure", ""))
    logf:close()
    assert.equals(N / 3, logged)
    assert.equals(200, ready_status)
    local L = '{app="metricsload"}'
    local function outcome(o) return final['ari_lua_calls_ended_total{app="metricsload",outcome="' .. o .. '"}'] end
    -- calls
    assert.equals(N, final["ari_lua_calls_started_total" .. L])
    assert.equals(0, final["ari_lua_calls_active" .. L])
    assert.equals(N / 3, outcome("normal"))
    assert.equals(N / 3, outcome("hangup"))
    assert.equals(N / 3, outcome("error"))
    assert.is_true(during["ari_lua_calls_started_total" .. L] <= N)
    -- events, type by type, against what the simulator sent to the app
    local sim_ev, sim_rest = sim_counts(sim, "metricsload")
    local types = 0
    for t, n in pairs(sim_ev) do
      types = types + 1
      assert.equals(n, final['ari_lua_events_received_total{type="' .. t .. '"}'], t)
      local d = during['ari_lua_events_received_total{type="' .. t .. '"}'] or 0
      assert.is_true(d <= n, t)
    end
    assert.is_true(types >= 6)
    for k in pairs(final) do
      local t = k:match('^ari_lua_events_received_total{type="(.-)"}$')
      if t then assert.is_not_nil(sim_ev[t], "counted an event the simulator did not send: " .. t) end
    end
    -- REST, operation by operation, against the requests the simulator answered
    assert.equals(count_rest(sim_rest, "POST", "^/ari/channels/[^/]+/answer$"), op_total(final, "channels.answer"))
    assert.equals(N, op_total(final, "channels.answer"))
    assert.equals(count_rest(sim_rest, "POST", "^/ari/channels/[^/]+/play/[^/]+$"), op_total(final, "channels.playWithId"))
    assert.equals(count_rest(sim_rest, "DELETE", "^/ari/channels/[^/]+$"), op_total(final, "channels.hangup"))
    local total, by_status = 0, {}
    for k, v in pairs(final) do
      local s = k:match('^ari_lua_rest_requests_total{operation=".-",status="(.-)"}$')
      if s then total = total + v; by_status[s] = (by_status[s] or 0) + v end
    end
    assert.equals(#sim_rest, total)
    local sim_by_status = {}
    for _, e in ipairs(sim_rest) do sim_by_status[tostring(e.status)] = (sim_by_status[tostring(e.status)] or 0) + 1 end
    for s, n in pairs(by_status) do
      if s ~= "cancelled" then assert.is_true(n <= (sim_by_status[s] or 0), "status " .. s) end
    end
    -- the latency histogram agrees with the counts
    for _, op in ipairs { "channels.answer", "channels.playWithId", "channels.hangup" } do
      local l = '{operation="' .. op .. '"'
      local count = final["ari_lua_rest_request_duration_seconds_count" .. l .. "}"]
      assert.equals(op_total(final, op), count)
      assert.equals(count, final["ari_lua_rest_request_duration_seconds_bucket" .. l .. ',le="+Inf"}'])
      local prev = 0
      for _, b in ipairs(metrics.BUCKETS) do
        local v = final[string.format('ari_lua_rest_request_duration_seconds_bucket%s,le="%g"}', l, b)]
        assert.is_true(v >= prev)
        prev = v
      end
      assert.is_true(final["ari_lua_rest_request_duration_seconds_sum" .. l .. "}"] > 0)
    end
    -- the events socket and the runtime
    local W = string.format('{url="%s/ari",app="metricsload"}', sim.url)
    assert.equals(1, final["ari_lua_ws_connected" .. W])
    assert.equals(1, final["ari_lua_ws_connects_total" .. W])
    assert.equals(0, final["ari_lua_ws_reconnects_total" .. W])
    assert.is_true(final["ari_lua_ws_connected_seconds" .. W] > 0)
    assert.is_true(final["ari_lua_coroutines"] >= 0)
    assert.is_true(final["ari_lua_lua_memory_bytes"] > 0)
    if require("ari.core").memory() then
      assert.is_true(final['ari_lua_c_heap_bytes{state="in_use"}'] >= final["ari_lua_lua_memory_bytes"])
      assert.is_true(final['ari_lua_c_heap_bytes{state="free"}'] >= 0)
    end
    assert.equals(0, final['ari_lua_event_queue_depth{queue="handlers"}'])
    -- Prometheus conventions: prefix, HELP and TYPE for every family, _total counters
    for name, t in pairs(final_types) do
      assert.matches("^ari_lua_", name)
      assert.is_not_nil(final_helps[name], name)
      if t == "counter" then assert.matches("_total$", name) end
    end
    for k in pairs(final) do
      local fam = k:match("^([%w_]+)")
      local base = fam:gsub("_bucket$", ""):gsub("_sum$", ""):gsub("_count$", "")
      assert.is_true(final_types[fam] ~= nil or final_types[base] == "histogram", "no TYPE for " .. k)
    end
    metrics.stop()
    teardown(sim)
  end)

  it("/healthz, /readyz (503 until every events socket is open), 404 and 405", function()
    local sim = start_sim(10)
    metrics.stop() -- (a failed test before may have left it running)
    local srv = assert(metrics.start { host = "127.0.0.1", port = 0 })
    ari.run(function()
      local st, body = get(srv, "/healthz")
      assert.equals(200, st)
      assert.equals("ok\n", body)
      st, body = get(srv, "/readyz")
      assert.equals(503, st)          -- no client yet
      assert.matches("no ARI events socket", body)
      local app = ari.app "metricsready"
      app:on_call(function(call) call:hangup() end)
      wait_until(function() return (get(srv, "/readyz")) == 200 end, "ready")
      st, body = get(srv, "/readyz")
      assert.matches("^up ", body)
      -- a second Asterisk that is not there: not ready
      local down = ari.app { app = "metricsdown", url = "http://127.0.0.1:1" }
      st, body = get(srv, "/readyz")
      assert.equals(503, st)
      assert.matches("down http://127.0.0.1:1/ari", body, 1, true)
      down.client:close()
      wait_until(function() return (get(srv, "/readyz")) == 200 end, "ready again once the client is closed")
      -- the Asterisk goes away
      sim:close()
      wait_until(function() return (get(srv, "/readyz")) == 503 end, "not ready after the events socket dropped")
      st = get(srv, "/nothing")
      assert.equals(404, st)
      st = http.request { method = "POST", url = srv:url("/metrics"), body = "", timeout = 5000 }
      assert.equals(405, st)
    end)
    metrics.stop()
    teardown(nil)
  end)

  it("parses listen addresses and refuses a bad one", function()
    assert.same({ "127.0.0.1", 9464 }, { metrics.parse_address("127.0.0.1:9464") })
    assert.same({ "0.0.0.0", 80 }, { metrics.parse_address("0.0.0.0:80") })
    assert.same({ "::1", 9464 }, { metrics.parse_address("[::1]:9464") })
    assert.same({ "127.0.0.1", 9464 }, { metrics.parse_address(":9464") })
    assert.same({ "127.0.0.1", 9464 }, { metrics.parse_address("9464") })
    assert.is_nil(metrics.parse_address("localhost"))
    assert.is_nil(metrics.parse_address("1.2.3.4:99999"))
    local srv, err = metrics.start("nonsense")
    assert.is_nil(srv)
    assert.equals("param", err.kind)
    assert.equals("metrics: 'nonsense' is not HOST:PORT, [IPv6]:PORT or PORT", tostring(err))
  end)

  it("serves /metrics from the ari-lua host (--metrics), with a run that ends on its own", function()
    local bin = os.getenv("ARI_LUA_BIN") or "./ari-lua"
    local out = os.tmpname()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    -- the app scrapes its own metrics endpoint before hanging up
    f:write([[
local ari = require "ari"
local http = require "ari.http"
local metrics = require "ari.metrics"
local app = ari.app "hostmetrics"
app:on_call(function(call)
  call:answer()
  local _, body = http.request { method = "GET", url = metrics.url("/metrics") }
  io.stdout:write("SCRAPE ", body:match("ari_lua_calls_active{app=\"hostmetrics\"} %d+") or "none", "\n")
  call:hangup()
end)
]])
    f:close()
    local port = 0
    local ok = os.execute(string.format("%s --sim --sim-speed 10 --metrics 127.0.0.1:%d %s > %s 2>&1",
      bin, port, script, out))
    local o = io.open(out):read("a")
    os.remove(out); os.remove(script)
    assert.is_true(ok, o)
    assert.matches('SCRAPE ari_lua_calls_active{app="hostmetrics"} 1', o, 1, true)
  end)
end)
