-- ari.wstransport: REST over the ARI WebSocket (Asterisk 20.14 / 21.9 / 22.4
-- and later).  A `transport` for ari.client: each operation goes out as a
-- RESTRequest message and comes back as a RESTResponse event.
--
--   local wst = require "ari.wstransport"
--   local t = wst.new{ send = fn(text, req) -> true [, tag] | nil, err,  -- the socket
--                      wait_ready = fn(timeout_ms) -> true | nil, err,  -- optional
--                      fallback = fn(req) -> status, body, headers,     -- optional (HTTP)
--                      is_open = fn() -> bool,    -- optional: false sends to fallback
--                      timeout = 30000 }
--   client = ari.connect{ ..., transport = t }   -- t:request(req)
--   t:handle(msg)         -- feed every message read from the socket; true if it was ours
--   t:fail_all(kind, msg [, tag]) -- a socket went away: its pending requests raise
--                         (those whose send returned that tag; all without tag)
--
--   ari.connect{ transport = "websocket", ... } installs one on the
--   client's own events socket (wst.install), HTTP kept for binary downloads;
--   so does ari.connect{} where the server offers it, HTTP then also
--   carrying what is sent while the socket is not open.
--
-- Correlation: every request carries a fresh request_id (and the
-- transaction_id of the transport, or req.transaction_id); the response with
-- that request_id wakes the waiting coroutine.  message_body is JSON text
-- inside the JSON message; it is handed to the client as the response body
-- (so it is decoded a second time, typed, like an HTTP body).
-- Binary responses (recordings.getStoredFile) cannot travel this way:
-- Asterisk answers 406; such operations go to `fallback` (HTTP) directly,
-- and a 406 is retried there too.
local core = require "ari.core"
local sched = require "ari.sched"
local schema = require "ari.schema"
local uuid = require "ari.uuid"
local log = require "ari.log"
local errors = require "ari.errors"

local type, tostring, setmetatable, pairs, error, next = type, tostring, setmetatable, pairs, error, next
local byte, sub, find = string.byte, string.sub, string.find
local json_encode = core.json_encode

-- [perf] A JSON string: quoted as it is unless it has a quote or a
-- backslash (plain finds: no pattern matching per request).  For text
-- without control characters: the URI (its parameters are URL-encoded by
-- the client), the method, the request ids (uuids and numbers).
local function jstr(v)
  if find(v, '"', 1, true) or find(v, "\\", 1, true) then return json_encode(v) end
  return '"' .. v .. '"'
end

local M = {}
M._jstr = jstr -- (spec)

local T = {}
T.__index = T
M.Transport = T

-- Paths of operations whose response is binary, as Lua patterns.
local binary_paths = {}
for _, op in ipairs(schema.operations) do
  if op.response == "binary" then
    local pat = "^" .. op.path:gsub("[%-%.%+%*%?%[%]%^%$%%]", "%%%0"):gsub("{[^}]+}", "[^/]+") .. "$"
    binary_paths[#binary_paths + 1] = { method = op.method, pattern = pat }
  end
end

local function is_binary(req)
  local known = req.binary -- [perf] ari.client's requests say so; others: by path
  if known ~= nil then return known end
  for _, b in ipairs(binary_paths) do
    if b.method == req.method and req.path:match(b.pattern) then return true end
  end
  return false
end
M.is_binary = is_binary

local function terr(kind, message) return errors.new { kind = kind, message = message } end

--- New transport.  opts: send (required), wait_ready, fallback, timeout,
-- transaction_id.
function M.new(opts)
  if type(opts) ~= "table" or type(opts.send) ~= "function" then
    error(errors.usage("ari.wstransport.new: opts.send must be a function", 2), 0)
  end
  local tid = opts.transaction_id or uuid.new()
  if type(tid) ~= "string" then error(errors.usage("ari.wstransport.new: opts.transaction_id must be a string", 2), 0) end
  return setmetatable({
    send = opts.send, wait_ready = opts.wait_ready, fallback = opts.fallback, is_open = opts.is_open,
    timeout = opts.timeout or 30000, transaction_id = tid,
    pending = {}, seq = 0, stats = { requests = 0, responses = 0, fallbacks = 0, unmatched = 0 },
    -- [perf] its JSON, once (any text: the encoder), and the same quoted
    -- as the start of every request id (tid .. "-" .. seq)
    _tid_json = json_encode(tid), _rid_json = sub(json_encode(tid .. "-"), 1, -2),
  }, T)
end

-- Wait for the RESTResponse of a request already sent (T:handle wakes us
-- with it); the timer wakes us with nothing when the time is up.  A reply
-- (or a failure) that came while sending, before there was a wake to call,
-- is in entry.early.  [perf] The request is sent before the wait, not from
-- inside it: the deepest point of the REST path stays within the parked
-- call coroutine's stack (80 slots; past it Lua doubles the stack, and a
-- parked call keeps the doubled size).
-- [perf] The requests' timeouts: re-armable timers (timer:again), kept in
-- a pool between requests rather than a new core.timer per request.  A
-- cell times one request at a time (cell.entry); a timer that fires for a
-- request already over finds no entry and does nothing.
local pool, pool_n = {}, 0
local POOL_MAX = 256 -- what a burst of requests leaves beyond it is freed

local function cell_fired(cell)
  local entry = cell.entry
  if entry then
    cell.entry = nil
    local wake = entry.wake
    if wake then wake() end -- nothing: the time is up
  end
end

local function start_request(wake, self, entry)
  local early = entry.early
  if early then
    entry.early = nil
    wake(early[1], early[2])
    return
  end
  entry.wake = wake
  local left = entry.deadline - core.now()
  local cell
  if pool_n > 0 then
    cell = pool[pool_n]
    pool[pool_n] = nil
    pool_n = pool_n - 1
  else
    cell = {}
    cell.timer = core.timer(0, function() cell_fired(cell) end) -- armed by the again() below, before any loop turn
  end
  cell.entry = entry
  entry.timer = cell
  cell.timer:again(left > 0 and left or 0)
end

-- Hand a reply (msg) or a failure (nil, err) to the waiting request.
local function deliver(entry, msg, err)
  local wake = entry.wake
  if wake then wake(msg, err) else entry.early = { msg, err } end
end

-- Nothing in flight any more: run the on_idle hook (set by a client closing
-- while requests were in flight), once.
local function idle_check(self)
  local f = self.on_idle
  if f and next(self.pending) == nil then
    self.on_idle = nil
    f()
  end
end

-- The wait is over (answered, timed out, or cancelled by a hang-up).
local function end_request(self, entry)
  self.pending[entry.rid] = nil
  local cell = entry.timer
  if cell then
    entry.timer = nil
    cell.entry = nil
    if pool_n < POOL_MAX then
      cell.timer:pause()
      pool_n = pool_n + 1
      pool[pool_n] = cell
    else
      cell.timer:stop()
    end
  end
  if self.on_idle then idle_check(self) end
end

-- Send req as a RESTRequest; returns its pending entry, or nil and why when
-- it could not be sent (nothing went out).  [perf] A function
-- of its own, so that its locals are not on the stack during the wait.
local function send_request(self, req, timeout)
  if self.wait_ready and not self.is_open then -- (is_open: open, checked by the caller)
    local ok, err = self.wait_ready(timeout)
    if not ok then
      error(terr("connect", "no WebSocket to Asterisk: " .. tostring(err)), 0)
    end
  end
  self.seq = self.seq + 1
  local rid = self.transaction_id .. "-" .. self.seq
  local path = req.path
  local uri = byte(path, 1) == 47 and sub(path, 2) or path -- without the leading "/"
  if req.query_string and req.query_string ~= "" then uri = uri .. "?" .. req.query_string end
  -- [perf] the message as text: no table, no generic encode
  local body = req.body
  local rtid = req.transaction_id
  local text = '{"type":"RESTRequest","transaction_id":' .. (rtid and json_encode(rtid) or self._tid_json)
    .. ',"request_id":' .. self._rid_json .. self.seq .. '","method":"' .. req.method .. '","uri":' .. jstr(uri)
    .. (body and (',"content_type":"application/json","message_body":' .. json_encode(body) .. "}") or "}")
  -- [perf] one table per request, the pending entry (T:request waits with
  -- the static start_request/end_request: no closure, no pcall frame)
  local entry = { rid = rid, deadline = core.now() + timeout }
  self.pending[rid] = entry
  local sok, serr, tag = self.send(text, req)
  entry.tag = tag
  if not sok then
    self.pending[rid] = nil
    return nil, serr
  end
  self.stats.requests = self.stats.requests + 1
  return entry
end

--- The client calls this (from a coroutine) for every operation.
function T:request(req)
  local fallback = self.fallback
  local is_open = self.is_open
  if fallback and (is_binary(req) or (is_open and not is_open())) then
    self.stats.fallbacks = self.stats.fallbacks + 1
    return fallback(req)
  end
  local timeout = req.timeout or self.timeout
  local entry, serr = send_request(self, req, timeout)
  if entry == nil then
    -- nothing went out: where HTTP stands in while the socket is not open
    -- (the default transport), the socket closing under us is the same case
    if fallback and self.is_open then
      self.stats.fallbacks = self.stats.fallbacks + 1
      return fallback(req)
    end
    error(terr("reset", "cannot send the request: " .. tostring(serr)), 0)
  end
  local resp, err = sched.suspend(start_request, self, entry, end_request)
  end_request(self, entry)
  if resp == nil then
    if err == nil and self.stats.responses == 0 then
      -- Asterisk before 20.14 / 21.9 / 22.4 ignores RESTRequest silently
      err = terr("timeout", "no RESTResponse within " .. timeout .. " ms, and none yet on this WebSocket: "
        .. "REST over the WebSocket needs Asterisk 20.14, 21.9, 22.4 or later")
    end
    error(err or terr("timeout", "no RESTResponse within " .. timeout .. " ms"), 0)
  end
  local status = resp.status_code
  if status == 406 and self.fallback then
    self.stats.fallbacks = self.stats.fallbacks + 1
    return self.fallback(req)
  end
  local headers -- only an error keeps the headers: no table per reply
  if status ~= nil and (status < 200 or status > 299) then
    headers = {}
    if resp.content_type then headers["content-type"] = resp.content_type end
  end
  local body = resp.message_body
  if type(body) ~= "string" then body = nil end
  return status, body, headers
end

--- Offer one decoded message from the socket.  Returns true when it was a
-- RESTResponse (ours or not).
function T:handle(msg)
  if type(msg) ~= "table" or msg.type ~= "RESTResponse" then return false end
  local entry = self.pending[msg.request_id]
  if entry then
    self.pending[msg.request_id] = nil
    self.stats.responses = self.stats.responses + 1
    deliver(entry, msg)
    if self.on_idle then idle_check(self) end
  else
    self.stats.unmatched = self.stats.unmatched + 1
    log.debug("ari: RESTResponse for an unknown request %s", tostring(msg.request_id))
  end
  return true
end

--- Fail every request in flight (the socket closed: Asterisk will not
-- answer them on another connection).
function T:fail_all(kind, message, tag)
  local p = self.pending
  local failed = {}
  for rid, entry in pairs(p) do
    if tag == nil or entry.tag == tag then failed[#failed + 1] = entry; p[rid] = nil end
  end
  for _, entry in ipairs(failed) do deliver(entry, nil, terr(kind or "reset", message or "WebSocket closed")) end
  idle_check(self)
end

--- Call fn once nothing is in flight (at once if nothing is).
function T:when_idle(fn)
  self.on_idle = fn
  idle_check(self)
end

--- Number of requests waiting for their response.
function T:in_flight()
  local n = 0
  for _ in pairs(self.pending) do n = n + 1 end
  return n
end

--- Put REST over the client's own events socket (ari.connect{ transport =
-- "websocket" }, or by default where the server offers it).  Called by
-- ari.client before the socket is opened.  http_while_closed: while the
-- socket is not open (before it first opens, while it reconnects) requests
-- go over HTTP instead of waiting for it (the default transport: a script's
-- first requests are not held back until calls start to arrive).
function M.install(client, opts, http_while_closed)
  local http_transport = opts and opts.http_transport or function(req) return require("ari.http").request(req) end
  local conn
  local t
  t = M.new {
    timeout = client._timeout,
    send = function(text)
      if conn == nil then return nil, "events socket not open" end
      return conn:send(text)
    end,
    wait_ready = function(timeout)
      if conn == nil then return nil, "no events socket (give app =)" end
      if conn.wait_open then return conn:wait_open(timeout) end
      return true
    end,
    fallback = http_transport,
    is_open = http_while_closed and function()
      return conn ~= nil and (conn.state == nil or conn:state() == "open")
    end or nil,
  }
  client._transport = function(req) return t:request(req) end
  client.rest_ws = t
  -- client:dispatch hands every RESTResponse to t:handle (client.rest_ws)
  -- before any router or handler, and does not dispatch it as an event
  local open = client._websocket
  client._websocket = function(o)
    local on_close = o.on_close
    o.on_close = function(code, reason, reconnecting)
      t:fail_all("reset", "events socket closed (" .. tostring(code) .. ")")
      if on_close then on_close(code, reason, reconnecting) end
    end
    conn = open(o)
    return conn
  end
  return t
end

return M
