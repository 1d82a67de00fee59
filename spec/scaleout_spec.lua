-- Scaling out past one process, with engines that already exist:
--  (a) per-call outbound WebSockets through nginx to three `ari-lua --listen`
--      workers; one worker is killed mid-run; every call not on it completes.
--  (b) call claiming with three `ari-lua` workers (inbound mode); one is
--      killed mid-run; every call runs exactly once, and the calls offered
--      after the kill are all taken by the others.
-- The simulated Asterisk runs in this process; workers and nginx are child
-- processes on loopback, ended by pid.
local ari = require "ari"
local http = require "ari.http"
local simmod = require "ari.sim"
local simout = require "ari.sim.outbound"
local broadcast = require "ari.sim.broadcast"
local scenario = require "ari.sim.scenario"
local util = require "spec.support.util"

local ROOT
do
  local p = io.popen("pwd")
  ROOT = p:read("l") or "."
  p:close()
end
-- the host under test (make check: the sanitized one), relative to ROOT
local BIN = os.getenv("ARI_LUA_BIN") or "./ari-lua"

local wait_until = util.waiter(5000, 10)

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Start a command in the background; returns its pid.
local function spawn(cmd, log)
  local p = io.popen("exec 3>&1; (" .. cmd .. ") > " .. sh_quote(log) .. " 2>&1 3>&- & echo $!")
  local pid = tonumber(p:read("l"))
  p:close()
  assert(pid, "could not start: " .. cmd)
  return pid
end

local function kill(pid, sig)
  os.execute("kill -" .. (sig or "TERM") .. " " .. pid .. " 2>/dev/null")
end

local free_port = require("spec.support.util").free_port

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. sh_quote(d)))
  return d
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- Wait until an HTTP server answers on the port.
local function wait_port(port, ms)
  wait_until(function()
    local ok, s = pcall(http.request, { url = "http://127.0.0.1:" .. port .. "/", timeout = 500 })
    return ok and type(s) == "number"
  end, ms or 10000, "port " .. port)
end

local function have(cmd)
  return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == true
end

local WORKER = [[
local ari = require "ari"
local app = ari.app(os.getenv("WORKER_APP"))
local id = os.getenv("WORKER_ID")
if os.getenv("WORKER_CLAIM") then app:on_broadcast(true) end
app:on_call(function(call)
  call:answer()
  call:set_var("WORKER", id)
  call:play("sound:silence/3")
  call:set_var("DONE", id)
  call:hangup()
end)
]]

describe("scaling out", function()
  local pids, dir = {}, nil
  before_each(function()
    pids = {}
    dir = tmpdir()
    write(dir .. "/worker.lua", WORKER)
  end)
  after_each(function()
    for _, pid in ipairs(pids) do kill(pid, "KILL") end
    os.execute("rm -rf " .. sh_quote(dir))
  end)

  it("per-call outbound WebSockets behind nginx: a killed worker loses only its own calls", function()
    if not have("nginx") and not os.execute("test -x /usr/sbin/nginx") then
      pending("nginx is not installed (tools/deps.sh --test installs nginx-light)")
      return
    end
    local nginx = have("nginx") and "nginx" or "/usr/sbin/nginx"
    ari.run(function()
      local ports = { free_port(), free_port(), free_port() }
      local lb = free_port()
      for i, port in ipairs(ports) do
        pids[#pids + 1] = spawn(string.format(
          "cd %s && WORKER_APP=pc WORKER_ID=%d exec %s --listen 127.0.0.1:%d --user ast --password secret --log-level warn %s",
          sh_quote(ROOT), i, sh_quote(BIN), port, sh_quote(dir .. "/worker.lua")), dir .. "/worker" .. i .. ".log")
      end
      local servers = {}
      for _, port in ipairs(ports) do servers[#servers + 1] = "    server 127.0.0.1:" .. port .. " max_fails=1 fail_timeout=30s;" end
      write(dir .. "/nginx.conf", table.concat({
        "worker_processes 1;", "daemon off;", "pid " .. dir .. "/nginx.pid;", "error_log " .. dir .. "/nginx-error.log;",
        "events { worker_connections 512; }",
        "http {", "  access_log off;",
        "  client_body_temp_path " .. dir .. "/t-body;", "  proxy_temp_path " .. dir .. "/t-proxy;",
        "  fastcgi_temp_path " .. dir .. "/t-fcgi;", "  uwsgi_temp_path " .. dir .. "/t-uwsgi;",
        "  scgi_temp_path " .. dir .. "/t-scgi;",
        "  upstream workers {", table.concat(servers, "\n"), "  }",
        "  server {", "    listen 127.0.0.1:" .. lb .. ";",
        "    location / {", "      proxy_pass http://workers;", "      proxy_http_version 1.1;",
        "      proxy_set_header Upgrade $http_upgrade;", '      proxy_set_header Connection "upgrade";',
        "      proxy_read_timeout 600s;", "      proxy_next_upstream error timeout;",
        "      proxy_connect_timeout 2s;",
        "    }", "  }", "}", "" }, "\n"))
      pids[#pids + 1] = spawn(nginx .. " -e " .. sh_quote(dir .. "/nginx-error.log") .. " -p " .. sh_quote(dir) ..
        " -c " .. sh_quote(dir .. "/nginx.conf"), dir .. "/nginx.log")
      for _, port in ipairs(ports) do wait_port(port) end
      wait_port(lb)

      local sim = simmod.new { speed = 10 }
      local h = simout.attach(sim, { { name = "lb", type = "per_call_config", uri = "ws://127.0.0.1:" .. lb .. "/",
        username = "ast", password = "secret", apps = { "pc" }, reconnect_interval = 300, reconnect_attempts = 3,
        connection_timeout = 2000 } })
      local ended, N = {}, 24
      local function place(i)
        scenario.place_call(sim, { from = tostring(3000 + i), channel_id = "lb-" .. i,
          script = { { "wait_hangup", timeout = 15000 } } }, "pc", function(ch) ended[#ended + 1] = ch end)
      end
      -- the first half, then kill worker 2 while it has calls, then the rest
      for i = 1, N // 2 do place(i) end
      local function live_on(w)
        local n = 0
        for _, id in ipairs(sim.channel_order) do
          local ch = sim.channels[id]
          if ch and ch.vars.WORKER == tostring(w) and not ch.vars.DONE then n = n + 1 end
        end
        return n
      end
      wait_until(function() return live_on(2) > 0 end, 10000, "a call on worker 2")
      -- doomed: on worker 2; in flight: its per-call connection was still being
      -- made (no worker yet) when the worker died, so it may have reached it
      local doomed, in_flight = {}, {}
      for _, id in ipairs(sim.channel_order) do
        local ch = sim.channels[id]
        if ch and ch.vars.WORKER == "2" then doomed[id] = true
        elseif ch and ch.vars.WORKER == nil then in_flight[id] = true end
      end
      kill(pids[2], "KILL")
      for i = N // 2 + 1, N do place(i) end
      wait_until(function() return #ended == N end, 40000, "all calls ended")
      local done_by, lost = { 0, 0, 0 }, 0
      for _, ch in ipairs(ended) do
        if doomed[ch.id] or (in_flight[ch.id] and not ch.vars.DONE) then
          if not ch.vars.DONE then lost = lost + 1 end
        else
          assert.is_not_nil(ch.vars.DONE, "call " .. ch.id .. " (worker " .. tostring(ch.vars.WORKER) .. ") did not complete")
          local w = tonumber(ch.vars.DONE)
          done_by[w] = done_by[w] + 1
        end
      end
      assert.is_true(lost > 0, "the killed worker had calls in progress")
      -- the surviving workers shared the calls
      assert.is_true(done_by[1] > 0 and done_by[3] > 0)
      print(string.format("\n  scale-out (nginx, per-call): %d calls, %d lost with the killed worker, done by workers: %d / %d / %d",
        N, lost, done_by[1], done_by[2], done_by[3]))
      h.close()
      sim:close()
    end)
  end)

  it("call claiming: every call runs exactly once, a killed worker loses only its own calls", function()
    ari.run(function()
      local sim = simmod.new { speed = 10 }
      sim:listen { host = "127.0.0.1", port = 0 }
      for i = 1, 3 do
        pids[#pids + 1] = spawn(string.format(
          "cd %s && WORKER_APP=ivr-%d WORKER_ID=%d WORKER_CLAIM=1 exec %s --url %s --user asterisk --password asterisk --log-level warn %s",
          sh_quote(ROOT), i, i, sh_quote(BIN), sim.url, sh_quote(dir .. "/worker.lua")), dir .. "/claim" .. i .. ".log")
      end
      wait_until(function()
        return sim:app_active("ivr-1") and sim:app_active("ivr-2") and sim:app_active("ivr-3")
      end, 10000, "workers registered")
      local ended, N = {}, 24
      local function place(i)
        broadcast.place_call(sim, { from = tostring(4000 + i), to = "555", channel_id = "cl-" .. i, timeout = 3000,
          app_filter = "^ivr%-", script = { { "wait_hangup", timeout = 15000 } } },
          function(ch) ended[#ended + 1] = ch end)
      end
      for i = 1, N // 2 do place(i) end
      -- kill the worker that has the most calls in progress
      local victim
      wait_until(function()
        local live = { 0, 0, 0 }
        for _, id in ipairs(sim.channel_order) do
          local ch = sim.channels[id]
          local w = ch and not ch.vars.DONE and tonumber(ch.vars.WORKER)
          if w then live[w] = live[w] + 1 end
        end
        for w = 1, 3 do if live[w] > 0 and (victim == nil or live[w] > live[victim]) then victim = w end end
        return victim ~= nil
      end, 10000, "a call in progress")
      local doomed = {}
      for _, id in ipairs(sim.channel_order) do
        if sim.channels[id].claimed_by == "ivr-" .. victim then doomed[id] = true end
      end
      kill(pids[victim], "KILL")
      wait_until(function() return not sim:app_active("ivr-" .. victim) end, 5000, "killed worker gone")
      for i = N // 2 + 1, N do place(i) end
      wait_until(function() return #ended == N end, 40000, "all calls ended")
      -- exactly once: one answer per channel, by the app that claimed it
      local answers = {}
      for _, e in ipairs(sim.transcript) do
        if e.kind == "rest" and e.path and e.path:match("/answer$") then
          local id = e.path:match("/channels/([^/]+)/answer$")
          answers[id] = (answers[id] or 0) + 1
        end
      end
      local lost = 0
      for _, ch in ipairs(ended) do
        assert.is_not_nil(ch.claimed_by, ch.id .. " was not claimed")
        assert.equals(1, answers[ch.id], ch.id .. " answered " .. tostring(answers[ch.id]) .. " times")
        if doomed[ch.id] then
          if not ch.vars.DONE then lost = lost + 1 end
        else
          assert.is_not_nil(ch.vars.DONE, ch.id .. " did not complete")
          assert.equals(ch.claimed_by, "ivr-" .. ch.vars.DONE)
        end
      end
      assert.is_true(lost > 0, "the killed worker had calls in progress")
      local claimed = { 0, 0, 0 }
      for _, ch in ipairs(ended) do
        local w = tonumber(ch.claimed_by:match("%d+$"))
        claimed[w] = claimed[w] + 1
      end
      print(string.format("\n  scale-out (claiming): %d calls, %d lost with killed worker %d, claimed by workers: %d / %d / %d",
        N, lost, victim, claimed[1], claimed[2], claimed[3]))
      sim:close()
    end)
  end)
end)
