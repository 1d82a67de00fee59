-- ari.ws: WebSocket client (a thin layer over core.ws_connect, see
-- docs/architecture.md "ws.c").
--
--   local ws = require "ari.ws"
--   local conn = ws.connect{
--     url = "ws://127.0.0.1:8088/ari/events?app=demo",
--     user = "asterisk", password = "secret",  -- Authorization: Basic
--     headers = { ["X-Extra"] = "1" },         -- more handshake headers
--     protocol = nil,                          -- subprotocol
--     json = true,                             -- decode text messages
--     max_message = 16 MiB, ping_interval = 15000, pong_timeout = 5000,
--     reconnect = true, backoff_min = 250, backoff_max = 30000,
--     connect_timeout = 5000, insecure = false, cainfo = nil,
--     on_open = function() end,
--     on_message = function(msg, err, raw) end, -- json: (value) or (nil, err, text)
--                                              -- else: (text, is_binary)
--     on_close = function(code, reason, reconnecting) end,
--     on_error = function(msg) end,
--   }
--   conn:send(text) -> true | nil, err  -- a text frame (valid UTF-8 expected)
--   conn:send(data, true)               -- a binary frame
--   conn:close()                 -- no more reconnects; on_close(..., false)
--   conn:state()                 -- "connecting" | "open" | "waiting" | "closed"
--   conn:stats()                 -- { reconnects, messages, dropped, queued }
--   conn:wait_open([timeout_ms]) -- in a coroutine: true, or nil, err
--
-- Handlers run on the loop (not as coroutines): spawn one (ari.spawn) to
-- wait inside a handler.  Without on_close / on_error, closes and errors are
-- logged.  Errors are ari.errors values (kind = "websocket").
local core = require "ari.core"
local sched = require "ari.sched"
local log = require "ari.log"
local errors = require "ari.errors"

local type, pairs, tostring, setmetatable, error = type, pairs, tostring, setmetatable, error

local M = {}

--- Base64 (standard alphabet, padded).
M.base64 = require "ari.base64"

local function ws_error(message, fields)
  local e = { kind = "websocket", operation = "ws", message = message }
  for k, v in pairs(fields or {}) do e[k] = v end
  return errors.new(e)
end
M.error = ws_error

local Conn = {}
Conn.__index = Conn
Conn.__name = "ari.ws.conn"

function Conn:send(text, binary)
  if type(text) ~= "string" then error(ws_error("send: text must be a string"), 2) end
  return self.core:send(text, binary and true or false)
end

function Conn:close() return self.core:close() end
function Conn:state() return self.core:state() end
function Conn:stats() return self.core:stats() end
function Conn.__tostring(self) return tostring(self.core) end

--- Wait (in a coroutine) until the connection is open.  Returns true, or
-- nil and an error (kind "websocket"; `timeout = true` on timeout, `closed =
-- true` when the connection closed for good).
function Conn:wait_open(timeout_ms)
  local st = self.core:state()
  if st == "open" then return true end
  if st == "closed" then
    return nil, ws_error("connection is closed", { closed = true, url = self.url })
  end
  local timer, mine
  local ok, a, b = pcall(sched.suspend, function(wake)
    mine = wake
    self._waiters[wake] = true
    if timeout_ms then
      timer = core.timer(timeout_ms, function()
        wake(nil, ws_error("timed out waiting for the connection", { timeout = true, url = self.url }))
      end)
    end
  end)
  if timer then timer:stop() end
  if mine then self._waiters[mine] = nil end
  if not ok then error(a, 0) end
  return a, b
end

local function wake_all(self, ...)
  local ws = self._waiters
  self._waiters = {}
  for w in pairs(ws) do w(...) end
end

local known = {
  url = true, user = true, password = true, headers = true, protocol = true, json = true,
  max_message = true, ping_interval = true, pong_timeout = true, reconnect = true,
  backoff_min = true, backoff_max = true, connect_timeout = true, insecure = true, cainfo = true,
  on_open = true, on_message = true, on_close = true, on_error = true,
}

--- Open a connection (it connects, and reconnects, in the background).
-- Raises an ari error for invalid options.
function M.connect(opts)
  if type(opts) ~= "table" then error(ws_error("ws.connect: options table expected"), 2) end
  if type(opts.url) ~= "string" then error(ws_error("ws.connect: url is required"), 2) end
  for k in pairs(opts) do
    if not known[k] then error(ws_error("ws.connect: unknown option " .. tostring(k)), 2) end
  end
  for _, h in ipairs { "on_open", "on_message", "on_close", "on_error" } do
    if opts[h] ~= nil and type(opts[h]) ~= "function" then
      error(ws_error("ws.connect: " .. h .. " must be a function"), 2)
    end
  end
  local headers = {}
  if opts.headers ~= nil then
    if type(opts.headers) ~= "table" then error(ws_error("ws.connect: headers must be a table"), 2) end
    for k, v in pairs(opts.headers) do headers[k] = v end
  end
  if opts.user ~= nil then
    headers.Authorization = "Basic " .. M.base64(tostring(opts.user) .. ":" .. tostring(opts.password or ""))
  end
  local copts = {
    url = opts.url, headers = headers, protocol = opts.protocol, json = opts.json,
    max_message = opts.max_message, ping_interval = opts.ping_interval,
    pong_timeout = opts.pong_timeout, reconnect = opts.reconnect, backoff_min = opts.backoff_min,
    backoff_max = opts.backoff_max, connect_timeout = opts.connect_timeout,
    insecure = opts.insecure, cainfo = opts.cainfo,
  }
  local self = setmetatable({ url = opts.url, _waiters = {} }, Conn)
  local on_open, on_message, on_close, on_error = opts.on_open, opts.on_message, opts.on_close, opts.on_error
  local url = opts.url:gsub("%?.*$", "")
  local handlers = {
    on_open = function()
      -- the handler first: a waiter woken by wait_open sees what on_open did
      local ok, err = true, nil
      if on_open then ok, err = pcall(on_open) end
      wake_all(self, true)
      if not ok then error(err, 0) end
    end,
    on_message = on_message,
    on_close = function(code, reason, reconnecting)
      if not reconnecting then
        wake_all(self, nil, ws_error("connection closed: " .. tostring(code) .. " " .. tostring(reason),
          { closed = true, code = code, reason = reason, url = self.url }))
      end
      if on_close then
        on_close(code, reason, reconnecting)
      else
        log.info("ws %s closed (%s %s)%s", url, tostring(code), tostring(reason),
          reconnecting and ", reconnecting" or "")
      end
    end,
    on_error = function(msg)
      if on_error then on_error(msg) else log.warn("ws %s: %s", url, tostring(msg)) end
    end,
  }
  local ok, conn, err = pcall(core.ws_connect, copts, handlers)
  if not ok then error(ws_error(tostring(conn)), 2) end
  if not conn then error(ws_error("ws.connect: " .. tostring(err), { url = opts.url }), 2) end
  self.core = conn
  return self
end

return M
