-- ari.server: a small HTTP/1.1 + WebSocket server on the ari loop (a thin
-- layer over core.server_listen, see docs/architecture.md "server.c").
--
--   local server = require "ari.server"
--   local srv = assert(server.listen{
--     host = "127.0.0.1", port = 0,            -- loopback, ephemeral port
--     max_body = ..., max_message = ..., max_header = ...,
--     keep_alive = false,                      -- see M.listening

--     handler = function(req)                  -- plain HTTP requests
--       return 200, { ["Content-Type"] = "text/plain" }, "hello"
--     end,
--     on_websocket = function(req)             -- valid WebSocket upgrades
--       req:upgrade("proto-or-nil", {
--         on_message = function(ws, data, is_binary) ws:send(data) end,
--         on_close = function(ws, code, reason) end,
--       })
--     end,
--   })
--   srv:port(); srv:url(); srv:ws_url(path); srv:stats(); srv:close()
--
-- handler(req) runs as its own coroutine (it may sleep, make REST calls,
-- ...) and returns status, headers, body.  status defaults to 200; a table
-- body is sent as JSON (Content-Type application/json unless set).  A
-- handler that raises gives 500 with the JSON body {"message": ...} (or the
-- error's own `status` when it is a table with a 4xx/5xx status), and the
-- error is logged.
--
-- req = { method, path, query, version, headers (lower-case names), body,
-- remote, websocket } plus:
--   req:upgrade(protocol, handlers) -> ws   accept a WebSocket upgrade
--   req:json()                             decode the body (nil, err if bad)
--   req.res                                the raw core response (res:raw,
--                                          res:drop for fault injection)
-- WebSocket upgrade requests go to on_websocket when given, else to handler.
-- Either may call req:upgrade(); if it returns without upgrading, what it
-- returns is sent as a normal response (on_websocket defaults to 404).
-- on_message / on_close are called directly on the loop (not as coroutines):
-- spawn one (ari.spawn) if a message needs to wait for something.
-- ws: send(data [, binary]) -> true | nil, err; close([code [, reason]]);
-- ping([data]); buffered(); remote(); is_open().
local core = require "ari.core"
local sched = require "ari.sched"
local log = require "ari.log"
local errors = require "ari.errors"

local M = {}

local Req = {}
Req.__index = Req

function Req:upgrade(protocol, handlers)
  local ws, err = self.res:upgrade(protocol, handlers)
  if ws then self.upgraded = true end
  return ws, err
end

function Req:json()
  if self.body == "" then return nil, "empty body" end
  return core.json_decode(self.body)
end

local function first_line(s)
  s = tostring(s)
  return s:match("^[^\n]*")
end

local function error_response(err)
  local status, message = 500, nil
  if type(err) == "table" then
    if math.type(err.status) == "integer" and err.status >= 400 and err.status <= 599 then
      status = err.status
    end
    message = err.message ~= nil and tostring(err.message) or first_line(err)
  else
    message = first_line(err)
  end
  return status, { ["Content-Type"] = "application/json" }, core.json_encode({ message = message })
end

local function has_header(headers, name)
  for k in pairs(headers) do
    if type(k) == "string" and k:lower() == name then return true end
  end
  return false
end

-- Send what a handler returned.
local function respond(req, status, headers, body)
  local res = req.res
  if req.upgraded then return end
  if status == nil then status = 200 end
  if math.type(status) ~= "integer" or status < 100 or status > 599 then
    log.error("server: %s %s: handler returned an invalid status %s", req.method, req.path, tostring(status))
    return res:send(error_response("handler returned an invalid status"))
  end
  if headers ~= nil and type(headers) ~= "table" then
    log.error("server: %s %s: handler returned non-table headers", req.method, req.path)
    return res:send(error_response("handler returned invalid headers"))
  end
  local h = {}
  if headers then for k, v in pairs(headers) do h[k] = v end end
  if type(body) == "table" then
    local ok, text = pcall(core.json_encode, body)
    if not ok then
      log.error("server: %s %s: cannot encode the response body: %s", req.method, req.path, tostring(text))
      return res:send(error_response("cannot encode the response body"))
    end
    body = text
    if not has_header(h, "content-type") then h["Content-Type"] = "application/json" end
  elseif body ~= nil and type(body) ~= "string" then
    body = tostring(body)
  end
  local ok, err = pcall(res.send, res, status, h, body)
  if not ok then
    log.error("server: %s %s: %s", req.method, req.path, tostring(err))
    res:send(error_response("handler returned an invalid response"))
  end
end

local function run_handler(fn, req, default_status)
  sched.spawn(fn, function(ok, ...)
    if ok then
      if select("#", ...) == 0 and default_status then return respond(req, default_status) end
      return respond(req, ...)
    end
    local err = ...
    log.error("server: %s %s: handler failed: %s", req.method, req.path, tostring(err))
    if not req.upgraded then req.res:send(error_response(err)) end
  end, req)
end

local Server = {}
Server.__index = Server

function Server:port() return self.core:port() end
function Server:stats() return self.core:stats() end
function Server:close()
  M.open[self] = nil
  return self.core:close()
end

-- [one-shot] The servers a script has open (weak: a server collected without
-- close() is gone): the host does not exit by itself while one listens
-- (lua/ari/cli.lua).  keep_alive = false (the host's own --metrics server)
-- leaves a server out.
M.open = setmetatable({}, { __mode = "k" })

--- How many servers listen that keep a one-shot host running.
function M.listening()
  local n = 0
  for srv in pairs(M.open) do
    local ok, st = pcall(srv.core.stats, srv.core)
    if ok and st.listening then n = n + 1 else M.open[srv] = nil end
  end
  return n
end

local function url_host(host)
  if host:find(":", 1, true) then return "[" .. host .. "]" end
  return host
end

function Server:url(path)
  return "http://" .. url_host(self.host) .. ":" .. self:port() .. (path or "")
end

function Server:ws_url(path)
  return "ws://" .. url_host(self.host) .. ":" .. self:port() .. (path or "")
end

--- Start a server.  Returns the server object, or nil, err when the
-- address cannot be bound.
function M.listen(opts)
  opts = opts or {}
  local handler, on_ws = opts.handler, opts.on_websocket
  if handler ~= nil and type(handler) ~= "function" then error(errors.usage("server.listen: handler must be a function", 2), 0) end
  if on_ws ~= nil and type(on_ws) ~= "function" then error(errors.usage("server.listen: on_websocket must be a function", 2), 0) end
  local host = opts.host or "127.0.0.1"
  if host == "localhost" then host = "127.0.0.1" end
  local s, err = core.server_listen({
    host = host, port = opts.port or 0,
    max_body = opts.max_body, max_message = opts.max_message, max_header = opts.max_header,
  }, {
    on_request = function(req, res)
      req.res = res
      setmetatable(req, Req)
      if req.websocket and on_ws then
        run_handler(on_ws, req, 404)
      elseif handler then
        run_handler(handler, req)
      else
        res:send(404, { ["Content-Type"] = "application/json" }, '{"message":"not found"}')
      end
    end,
  })
  if not s then return nil, err end
  local srv = setmetatable({ core = s, host = host }, Server)
  if opts.keep_alive ~= false then M.open[srv] = true end
  return srv
end

return M
