-- ari.outbound: accept Asterisk's outbound ARI WebSockets (Asterisk 20.15 /
-- 21.10 / 22.5 and later: ari.conf `type = outbound_websocket`).
--
--   ari-lua --listen 127.0.0.1:8090 app.lua      -- or ari.app{ app = "ivr", listen = "127.0.0.1:8090" }
--
-- Asterisk connects to us with the `ari` subprotocol and Basic credentials
-- (websocket_client.conf username/password, checked against --user /
-- --password).  Events arrive on that socket, and REST goes back on it as
-- RESTRequest/RESTResponse (ari.wstransport): in this mode the socket is the
-- only way back to Asterisk, unless --url is also given (then binary
-- downloads use HTTP).
--
-- Persistent connections carry the app's events (ApplicationRegistered
-- first, after every reconnect; Asterisk keeps the app registered and
-- queues its events while we are away).  Per-call connections carry one
-- channel each, for the ephemeral app "<app>:<channel name>"; there may be
-- many at once.  Every connection feeds the same ari.client (so the app's
-- routing by channel id works unchanged); a request goes out on the
-- connection that carries the channel it names, else the persistent one,
-- else the newest.
--
--   local l = outbound.listen{ listen = "127.0.0.1:8090" | { host, port },
--                              user = "u", password = "p",       -- required credentials (nil: none)
--                              client = c,                       -- ari.client to feed (events = false)
--                              orphan_timeout = 5000 }
--   l:port(), l:close(), l.sessions (set), l.stats, l.registered[app] = true|false
--   outbound.client(opts, app_name, listen) -> ari.client fed by a new listener
local core = require "ari.core"
local sched = require "ari.sched"
local server = require "ari.server"
local wst = require "ari.wstransport"
local config = require "ari.config"
local log = require "ari.log"
local base64 = require "ari.base64"
local errors = require "ari.errors"

local M = {}

local L = {}
L.__index = L
M.Listener = L

--- "host:port", "[IPv6]:port", ":port", "port" or { host, port } -> host,
-- port (ari.config.parse_address); raises its error (kind "param").
function M.parse_listen(v)
  local host, port = config.parse_address(v, "listen")
  if not host then error(port, 3) end
  return host, port
end

local function offers_ari(h)
  if h == nil then return false end
  for p in h:gmatch("[^,%s]+") do if p == "ari" then return true end end
  return false
end

-- A session is one accepted connection.
local function channel_of(ev)
  local ch = ev.channel
  return type(ch) == "table" and ch.id or nil
end

function L:_pick(req)
  -- the session that carries a channel named in the request
  local owner = self.owner
  if next(owner) then
    local s
    local function look(id)
      local o = owner[id]
      if o and o.open then s = o end
    end
    for seg in req.path:gmatch("[^/]+") do look(seg); if s then return s end end
    if req.query_string then
      for v in req.query_string:gmatch("=([^&]+)") do look(v); if s then return s end end
    end
  end
  if self.persistent and self.persistent.open then return self.persistent end
  return self.newest and self.newest.open and self.newest or nil
end

function L:_wait_ready(timeout)
  if next(self.sessions) then return true end
  local timer
  local ok, res, err = pcall(sched.suspend, function(wake)
    self.ready_waiters[wake] = true
    timer = core.timer(timeout, function() wake(nil, "no connection from Asterisk within " .. timeout .. " ms") end)
  end)
  if timer then timer:stop() end
  if not ok then error(res, 0) end
  return res, err
end

function L:_opened(s)
  self.sessions[s] = true
  self.newest = s
  self.stats.connections = self.stats.connections + 1
  local w = self.ready_waiters
  self.ready_waiters = {}
  for wake in pairs(w) do wake(true) end
end

function L:_message(s, text)
  local ev, err = core.json_decode(text)
  if type(ev) ~= "table" then
    log.warn("ari.outbound: undecodable message: %s", tostring(err))
    return
  end
  self.stats.messages = self.stats.messages + 1
  if self.transport:handle(ev) then return end
  local t = ev.type
  local app = ev.application
  if t == "ApplicationRegistered" and type(app) == "string" then
    self.registered[app] = true
    s.apps[app] = true
    if app:find(":", 1, true) then s.per_call = true
    else
      s.per_call = false
      self.persistent = s
      if not s.counted then self:_persistent_up(s) end
    end
    log.info("ari.outbound: %s registered (%s connection from %s)", app, s.per_call and "per-call" or "persistent",
      tostring(s.remote))
  elseif t == "ApplicationUnregistered" and type(app) == "string" then
    self.registered[app] = false
    s.apps[app] = nil
    log.info("ari.outbound: %s unregistered", app)
  end
  local id = channel_of(ev)
  if id then
    -- a per-call connection's channel that left Stasis is no longer its
    -- to carry (Asterisk closes the connection after StasisEnd, before
    -- ChannelDestroyed): its close must not orphan the call
    if t == "ChannelDestroyed" or (t == "StasisEnd" and s.per_call and self.owner[id] == s) then
      self.owner[id] = nil
      s.channels[id] = nil
    elseif self.owner[id] ~= s and (t == "StasisStart" or s.per_call) then
      local prev = self.owner[id]
      if prev then prev.channels[id] = nil end
      self.owner[id] = s
      s.channels[id] = true
      self.orphans[id] = nil
    end
  end
  if self.client then self.client:dispatch(ev) end
end

-- A persistent connection registered its apps: for the client that is
-- its events socket (re)connecting.  Asterisk queues an app's events while
-- no connection is up, but a restarted Asterisk has forgotten them, and its
-- channels with them: after the first connection, the client's reconnect
-- hooks run (ari.app's resync ends the calls whose channels are gone).
-- Real Asterisk sends the queued events before ApplicationRegistered, so
-- they are in by then.
function L:_persistent_up(s)
  s.counted = true
  self.had_persistent = true
  local client = self.client
  if not client or not client.stats then return end
  client.stats.connects = (client.stats.connects or 0) + 1
  if client.stats.connects > 1 and client._reconnect_hooks then
    for _, fn in ipairs(client._reconnect_hooks) do sched.spawn(fn, nil, client) end
  end
end

function L:_closed(s, code)
  if not s.open then return end
  s.open = false
  self.sessions[s] = nil
  if self.persistent == s then self.persistent = nil end
  if self.newest == s then self.newest = next(self.sessions) end
  self.transport:fail_all("reset", "Asterisk's WebSocket closed (" .. tostring(code) .. ")", s)
  log.info("ari.outbound: connection from %s closed (%s)", tostring(s.remote), tostring(code))
  -- channels this (per-call) connection carried: if no other connection
  -- takes them over within orphan_timeout, their calls end.
  for id in pairs(s.channels) do
    if self.owner[id] == s then
      self.owner[id] = nil
      if s.per_call and not self.closed then self.orphans[id] = true end
    end
  end
  if s.per_call and next(self.orphans) and self.client and not self.closed then
    local ids = {}
    for id in pairs(s.channels) do if self.orphans[id] then ids[#ids + 1] = id end end
    if #ids > 0 then
      local t = core.timer(self.orphan_timeout, function()
        if self.closed then return end -- our own close: no call to end
        for _, id in ipairs(ids) do
          if self.orphans[id] and not self.owner[id] then
            self.orphans[id] = nil
            log.warn("ari.outbound: channel %s lost with its connection; ending its call", id)
            self.client:dispatch(core.json_decode(core.json_encode {
              type = "StasisEnd", timestamp = "", application = "", channel = { id = id, name = "", state = "Down" },
            }))
          end
        end
      end)
      t:unref()
    end
  end
end

--- Start listening (see the header).  Raises when the address is busy.
function M.listen(opts)
  opts = opts or {}
  local host, port = M.parse_listen(opts.listen or { host = opts.host, port = opts.port })
  local self = setmetatable({
    sessions = {}, owner = {}, orphans = {}, registered = {}, ready_waiters = {},
    client = opts.client, user = opts.user, password = opts.password,
    orphan_timeout = opts.orphan_timeout or 5000,
    stats = { connections = 0, messages = 0, refused = 0 },
  }, L)
  self.transport = wst.new {
    timeout = opts.timeout,
    send = function(text, req)
      local s = self:_pick(req)
      if s == nil then return nil, "no connection from Asterisk" end
      local ok, err = s.ws:send(text)
      if not ok then return nil, err end
      return true, nil, s
    end,
    wait_ready = function(timeout) return self:_wait_ready(timeout) end,
    fallback = opts.fallback,
  }
  local srv, err = server.listen {
    host = host, port = port,
    handler = function() return 426, { ["Content-Type"] = "application/json" }, { message = "WebSocket required" } end,
    on_websocket = function(req)
      if self.password ~= nil then
        local b = (req.headers["authorization"] or ""):match("^%s*[Bb]asic%s+(%S+)")
        local up = b and base64.decode(b)
        if up ~= (self.user or "") .. ":" .. self.password then
          self.stats.refused = self.stats.refused + 1
          log.warn("ari.outbound: refused a connection from %s (bad credentials)", tostring(req.remote))
          return 401, { ["WWW-Authenticate"] = 'Basic realm="ari-lua"', ["Content-Type"] = "application/json" },
            { message = "Authentication required" }
        end
      end
      if not offers_ari(req.headers["sec-websocket-protocol"]) then
        self.stats.refused = self.stats.refused + 1
        log.warn("ari.outbound: refused a connection from %s (no 'ari' subprotocol)", tostring(req.remote))
        return 400, { ["Content-Type"] = "application/json" }, { message = "the 'ari' WebSocket subprotocol is required" }
      end
      local s = { open = true, apps = {}, channels = {}, remote = req.remote, path = req.path }
      local ws = req:upgrade("ari", {
        on_message = function(_, text, binary)
          if not binary then self:_message(s, text) end
        end,
        on_close = function(_, code) self:_closed(s, code) end,
      })
      if not ws then return 500 end
      s.ws = ws
      self:_opened(s)
    end,
  }
  if not srv then
    error(errors.new { kind = "listen", operation = "ari.outbound", host = host, port = port,
      message = "cannot listen on " .. host .. ":" .. tostring(port) .. ": " .. tostring(err) }, 2)
  end
  self.server = srv
  self.host = host
  log.info("ari.outbound: listening on %s:%d", host, srv:port())
  return self
end

function L:port() return self.server:port() end

--- "open" while listening, except while a persistent connection that was
-- up is down ("waiting": Asterisk will connect again); "closed" after close.
-- Per-call connections come and go with the calls: between calls the
-- listener is ready.
function L:state()
  if self.closed then return "closed" end
  if self.had_persistent and not (self.persistent and self.persistent.open) then return "waiting" end
  return "open"
end

--- Number of open connections.
function L:count()
  local n = 0
  for _ in pairs(self.sessions) do n = n + 1 end
  return n
end

function L:close()
  if self.closed then return end
  self.closed = true
  for s in pairs(self.sessions) do pcall(s.ws.close, s.ws, 1001, "going away") end
  self.server:close()
  self.transport:fail_all("reset", "listener closed")
end

--- An ari.client without an events socket of its own, fed by a new
-- listener on `listen` (ari.app's hook for `listen =`).
function M.client(opts, name, listen)
  local user = opts.user or config.user
  local password = opts.password or config.password
  local url = opts.url or config.url
  local l
  local t = {
    request = function(_, req) return l.transport:request(req) end,
  }
  local client = require("ari.client").connect {
    url = url or "http://asterisk.invalid:8088", user = user, password = password,
    app = name, events = false, transport = t, timeout = opts.timeout,
  }
  l = M.listen {
    listen = listen, user = user, password = password, client = client,
    orphan_timeout = opts.orphan_timeout, timeout = opts.timeout,
    fallback = url and function(req) return require("ari.http").request(req) end or nil,
  }
  client.outbound = l
  -- closing the client closes the listener (client:close closes its sockets)
  -- ... and stands in for its events socket (ari.metrics' /readyz asks its state)
  client._sockets[#client._sockets + 1] = {
    close = function() l:close() end,
    state = function() return l:state() end,
    stats = function() return { reconnects = math.max(0, (client.stats.connects or 0) - 1) } end,
  }
  return client
end

return M
