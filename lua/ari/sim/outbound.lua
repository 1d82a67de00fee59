-- ari.sim.outbound: the simulator's outbound ARI WebSockets (ari.conf
-- `type = outbound_websocket` + websocket_client.conf).
--
--   require("ari.sim.outbound").attach(sim, {
--     { name = "conn1", type = "persistent" | "per_call_config",
--       uri = "ws://127.0.0.1:8090", username = "u", password = "p",
--       apps = { "ivr" }, subscribe_all = false,
--       connection_timeout = 500, reconnect_interval = 500, reconnect_attempts = 5 },
--   }) -> handle { stats = { connects, failures, sessions }, count(), unregister(name), close() }
--
-- persistent: the apps are registered at once (as at Asterisk start-up) and
-- the simulator connects out; while the connection is down it retries every
-- reconnect_interval and queues the apps' events, sent after the
-- ApplicationRegistered of the next connection.
-- per_call_config: when a channel enters Stasis(app) for one of `apps`, the
-- simulator connects out, registers the ephemeral app "app:<channel name>"
-- (ApplicationRegistered, then StasisStart), and closes the connection when
-- the channel leaves Stasis.  After reconnect_attempts failed attempts the
-- channel gets STASISSTATUS=FAILED and is hung up (the dialplan goes on and
-- ends).  A per-call connection that breaks mid-call is retried the same
-- way with events queued; when that fails too the channel is hung up
-- (assumed: Asterisk documents the retries, not what happens after them).
--
-- Every connection answers RESTRequest with RESTResponse (REST over
-- WebSocket is the only way back in this mode).
local ws = require "ari.ws"
local json = require "ari.sim.json"
local util = require "ari.sim.util"

local M = {}
local obj = json.obj

local function app_event(sim, etype, app)
  return json.encode(obj { "type", etype, "timestamp", sim:timestamp(), "application", app,
    "asterisk_id", sim.asterisk_id })
end

local rest_reply = util.rest_reply

-- One outbound connection (a persistent one, or one call's).  `apps`: the
-- app names it carries.  on_up() after each (re)connection's
-- ApplicationRegistered; on_giveup() when reconnect_attempts are spent.
local function new_link(h, cfg, apps, subscribe_all, on_up, on_giveup)
  local sim = h.sim
  local link = { queue = {}, open = false, attempts = 0, closed = false, apps = apps }
  local session = sim:connect_events(apps, subscribe_all, function(text)
    if link.open and link.conn then
      local ok = link.conn:send(text)
      if ok then return end
    end
    link.queue[#link.queue + 1] = text
  end, function() link.close() end)
  link.session = session
  local connect
  local function retry()
    if link.closed then return end
    link.attempts = link.attempts + 1
    h.stats.failures = h.stats.failures + 1
    local max = cfg.reconnect_attempts
    if cfg.type ~= "persistent" and max and link.attempts > max then
      link.close()
      if on_giveup then on_giveup() end
      return
    end
    link.timer = sim:after(cfg.reconnect_interval or 500, connect)
  end
  connect = function()
    link.timer = nil
    if link.closed then return end
    local ok, conn = pcall(ws.connect, {
      url = cfg.uri, protocol = "ari", user = cfg.username, password = cfg.password,
      reconnect = false, connect_timeout = cfg.connection_timeout or 500, json = false,
      on_open = function()
        if link.closed then return end
        link.open = true
        link.attempts = 0
        h.stats.connects = h.stats.connects + 1
        for _, a in ipairs(apps) do link.conn:send(app_event(sim, "ApplicationRegistered", a)) end
        local q = link.queue
        link.queue = {}
        for _, text in ipairs(q) do link.conn:send(text) end
        if on_up then
          local f = on_up
          on_up = nil -- first connection only
          f()
        end
      end,
      on_message = function(text, binary)
        if binary or not link.open then return end
        local reply = rest_reply(sim, text, apps[1])
        if reply and link.conn then link.conn:send(reply) end
      end,
      on_close = function()
        local was = link.open
        link.open = false
        link.conn = nil
        if link.closed then return end
        if was then sim:log("info", "outbound %s: connection lost", cfg.name or cfg.uri) end
        retry()
      end,
      on_error = function(msg) sim:log("info", "outbound %s: %s", cfg.name or cfg.uri, tostring(msg)) end,
    })
    if not ok then
      sim:log("warn", "outbound %s: %s", cfg.name or cfg.uri, tostring(conn))
      retry()
      return
    end
    link.conn = conn
  end
  function link.close()
    link.closed = true
    if link.timer then link.timer.stop(); link.timer = nil end
    session.close()
    local c = link.conn
    link.conn, link.open = nil, false
    if c then pcall(c.close, c) end
    h.links[link] = nil
  end
  --- Close once everything sent so far has gone out (Asterisk writes its
  -- last events and responses before it drops a per-call connection).
  function link.close_drained(then_fn)
    local tries = 0
    local function check()
      local c = link.conn
      local ok, st = pcall(function() return c and c:stats() end)
      if c and ok and st and (st.queued or 0) > 0 and tries < 200 then
        tries = tries + 1
        require("ari.core").timer(5, check)
        return
      end
      link.close()
      if then_fn then then_fn() end
    end
    check()
  end
  h.links[link] = true
  connect()
  return link
end

--- Attach outbound connections to a simulator (see the header).
function M.attach(sim, conns)
  local h = { sim = sim, links = {}, percall = {}, by_name = {}, stats = { connects = 0, failures = 0, sessions = 0 } }
  for _, cfg in ipairs(conns) do
    local apps = cfg.apps
    if type(apps) == "string" then
      local list = {}
      for a in apps:gmatch("[^,%s]+") do list[#list + 1] = a end
      apps = list
    end
    if cfg.type == "persistent" then
      h.stats.sessions = h.stats.sessions + 1
      local link = new_link(h, cfg, apps, cfg.subscribe_all)
      h.by_name[cfg.name or cfg.uri] = link
    else
      for _, a in ipairs(apps) do h.percall[a] = cfg end
    end
  end
  -- per-call: Stasis(app) for a per-call app connects out first
  local orig_start = sim.stasis_start
  sim.stasis_start = function(self, ch, appname, args, extra)
    local cfg = h.percall[appname]
    if cfg == nil or self:app_active(appname) then return orig_start(self, ch, appname, args, extra) end
    local eph = appname .. ":" .. ch.name
    h.stats.sessions = h.stats.sessions + 1
    self:note(ch.call, "per-call connection for %s", eph)
    local link
    link = new_link(h, cfg, { eph }, cfg.subscribe_all, function()
      if ch.alive then orig_start(self, ch, eph, args, extra)
      else link.close() end
    end, function()
      -- no connection (or it broke and could not be re-established)
      if ch.alive then
        self:note(ch.call, "per-call connection for %s failed", eph)
        self:set_var(ch, "STASISSTATUS", "FAILED", true)
        self:hangup(ch, 16)
      end
    end)
    ch.percall_link = link
    return true
  end
  -- the connection ends when the channel leaves Stasis (after the events of
  -- its hang-up have gone out)
  local orig_end = sim.stasis_end
  sim.stasis_end = function(self, ch)
    orig_end(self, ch)
    local link = ch.percall_link
    if link then
      ch.percall_link = nil
      self:after(0, function() link.close_drained(function()
        for _, a in ipairs(link.apps) do
          self.apps[a] = nil
          for i, n in ipairs(self.app_order) do if n == a then table.remove(self.app_order, i); break end end
        end
      end) end)
    end
  end
  --- A reload that drops the persistent connection `name` from ari.conf:
  -- ApplicationUnregistered for its apps, then the connection closes.
  function h.unregister(name)
    local link = h.by_name[name]
    if not link then return false end
    h.by_name[name] = nil
    link.session.close()
    if link.conn and link.open then
      for _, a in ipairs(link.apps) do link.conn:send(app_event(sim, "ApplicationUnregistered", a)) end
    end
    link.close_drained()
    return true
  end
  function h.close()
    for link in pairs(h.links) do link.close() end
    sim.stasis_start, sim.stasis_end = nil, nil
  end
  function h.count()
    local n = 0
    for link in pairs(h.links) do if link.open then n = n + 1 end end
    return n
  end
  return h
end

return M
