-- ari.client: one Asterisk's ARI as Lua objects.
--
--   local client = ari.connect{ url = "http://127.0.0.1:8088", user = "u", password = "p",
--                               app = "name" | {"a", "b"}, subscribe_all = false,
--                               events = true, transport = nil, timeout = 10000,
--                               cainfo = nil, insecure = false,   -- TLS: peer verified unless insecure
--                               strict = config.strict, probe = true, server = nil }
--   client.server                                 -- { ari_version, asterisk_version, major } (see connect)
--   client:supports("channels.progress" [, param [, value]])
--   client.channels.answer{ channelId = id }      -- every operation: client.<resource>.<nickname>(params)
--   client:on("StasisStart", fn) / :once / :off / :wait(type, filter, timeout_ms)
--   channel:on("ChannelDtmfReceived", fn)         -- per-object routing (see ari.models)
--   client:dispatch(event)  client:add_router(fn)  client:close()
--
-- Operations are called with a dot and one table of parameters keyed by
-- the spec's names (`client.channels:answer{...}` works too).  Parameters
-- are checked before anything is sent; failures raise ari.errors values.
-- Results: the typed response (model object or list of them), the raw bytes
-- for binary responses, `true` for no content.
--
-- transport: nil (the events socket where the server offers REST over it
-- and the client opens its own, else HTTP; logged at connect, see
-- client.transport_name), "http" (REST via ari.http), "websocket" (RESTRequest
-- messages on the events socket, ari.wstransport), or a function(req) -> status, body,
-- headers where req = { method, url, path, query_string, headers, body, binary
-- (true for a binary download), user, password, timeout } (path without the "/ari" base, query string without
-- "?"; user, password, timeout and the TLS options are read through req's
-- metatable, so pairs(req) does not list them; req.headers is shared between
-- requests: read it, do not change it).
-- It must raise on transport failure.
-- websocket: nil (ari.ws.connect), or a function(opts) -> connection with
-- :close(), called with { url, user, password, json = true, on_message,
-- on_open } for the events socket.
--
-- Events: client:on handlers each run in their own coroutine, started in
-- arrival order.  obj:on handlers for one object run one after another, in
-- arrival order, in one coroutine per object (a handler that waits holds
-- back later events of that object only).  Routers (add_router) are called
-- synchronously before any handler.
local schema = require "ari.schema"
local models = require "ari.models"
local errors = require "ari.errors"
local sched = require "ari.sched"
local config = require "ari.config"
local log = require "ari.log"

local type, pairs, ipairs, tostring, setmetatable, getmetatable, rawget =
  type, pairs, ipairs, tostring, setmetatable, getmetatable, rawget
local format, concat = string.format, table.concat

local M = {}

local core = require "ari.core"
local json_decode, json_encode, json_null = core.json_decode, core.json_encode, core.json_null
M.json_decode, M.json_encode = json_decode, json_encode

local urlencode = require("ari.http").urlencode

local Client = {}
Client.__index = Client
M.Client = Client

-- Operations by resource, with the parameter table indexed by name.
local ops_by_resource = {}
for _, op in ipairs(schema.operations) do
  local byname = {}
  for _, p in ipairs(op.params) do byname[p.name] = p end
  op.byname = op.byname or byname
  op.fullname = op.resource .. "." .. op.nickname
  -- [versions] does any part of it (the operation, a parameter, a value) need a newer server than the oldest known?
  local vs = op.since ~= nil
  for _, p in ipairs(op.params) do if p.since or p.values_since then vs = true end end
  op.version_sensitive = vs or nil
  local r = ops_by_resource[op.resource]
  if not r then r = {}; ops_by_resource[op.resource] = r end
  r[op.nickname] = op
end
M.operations = ops_by_resource

-- Parameter checking --------------------------------------------------------

local function type_ok(t, v)
  local vt = type(v)
  if t == "string" then return vt == "string"
  elseif t == "int" or t == "long" then return vt == "number" and math.tointeger(v) ~= nil
  elseif t == "double" then return vt == "number"
  elseif t == "boolean" then return vt == "boolean"
  elseif t == "object" or t == "containers" then return vt == "table"
  elseif t:match("^List%[") then return vt == "table"
  end
  return true
end

local function check_scalar(op, p, v)
  if not type_ok(p.type, v) then
    error(errors.param(op, p.name, format("parameter '%s' must be %s, got %s", p.name,
      p.type, type(v) == "number" and (math.type(v) .. " " .. tostring(v)) or type(v))), 0)
  end
  local a = p.allowed
  if a then
    if a.values then
      local found = false
      for _, x in ipairs(a.values) do if x == v then found = true; break end end
      if not found then
        error(errors.param(op, p.name, format("parameter '%s': %s is not one of %s", p.name,
          tostring(v), concat(a.values, ", "))), 0)
      end
    elseif type(v) == "number" then
      if (a.min and v < a.min) or (a.max and v > a.max) then
        error(errors.param(op, p.name, format("parameter '%s': %s is out of range [%s, %s]", p.name,
          tostring(v), tostring(a.min or "-inf"), tostring(a.max or "inf"))), 0)
      end
    end
  end
end

local function str(v)
  if type(v) == "boolean" then return v and "true" or "false" end
  if math.type(v) == "integer" then return format("%d", v) end
  if math.type(v) == "float" then
    local i = math.tointeger(v)
    if i then return format("%d", i) end
    return format("%.17g", v)
  end
  return v
end

-- [perf] An operation's path split once into literal pieces (odd indices)
-- and parameter names (even), and its query parameters' encoded names.
local path_parts_of = setmetatable({}, { __mode = "k" })
local function path_parts(op)
  local parts = path_parts_of[op]
  if parts == nil then
    parts = {}
    local path, pos = op.path, 1
    while true do
      local a, b, name = path:find("{([^}]+)}", pos)
      if not a then parts[#parts + 1] = path:sub(pos); break end
      parts[#parts + 1] = path:sub(pos, a - 1)
      parts[#parts + 1] = name
      pos = b + 1
    end
    path_parts_of[op] = parts
  end
  return parts
end
local qname_of = setmetatable({}, { __mode = "k" })

--- Check params against op and build the request: returns path (without
-- the /ari base), query string, body text or nil.  Raises ari.errors.
local function build(op, params)
  if params == nil then params = {} end
  if type(params) ~= "table" then
    error(errors.param(op, nil, "parameters must be a table, got " .. type(params)), 0)
  end
  local byname = op.byname
  for k in pairs(params) do
    if type(k) ~= "string" or byname[k] == nil then
      error(errors.param(op, tostring(k), format("unknown parameter '%s'", tostring(k))), 0)
    end
  end
  for _, p in ipairs(op.params) do
    local v = params[p.name]
    if v == nil or v == json_null then
      if p.required then
        error(errors.param(op, p.name, format("missing required parameter '%s'", p.name)), 0)
      end
    elseif p.multiple and type(v) == "table" and p.type ~= "containers" and p.type ~= "object" then
      if #v == 0 and p.required then
        error(errors.param(op, p.name, format("missing required parameter '%s' (empty list)", p.name)), 0)
      end
      for i = 1, #v do check_scalar(op, p, v[i]) end
      for k in pairs(v) do
        if math.type(k) ~= "integer" or k < 1 or k > #v then
          error(errors.param(op, p.name, format("parameter '%s' must be a list", p.name)), 0)
        end
      end
    else
      check_scalar(op, p, v)
    end
  end
  -- path
  local parts = path_parts(op)
  local path = parts[1]
  if #parts > 1 then
    local buf = {}
    for i = 1, #parts do
      local piece = parts[i]
      if i % 2 == 0 then
        local v = params[piece]
        if v == "" then
          error(errors.param(op, piece, format("parameter '%s' must not be empty (it is a path segment)", piece)), 0)
        end
        piece = urlencode(v)
      end
      buf[i] = piece
    end
    path = concat(buf)
  end
  -- query (parameters sorted by name) and body
  local q, body
  for _, p in ipairs(op.params) do
    local v = params[p.name]
    if v ~= nil and v ~= json_null then
      if p.where == "query" then
        local s
        if type(v) == "table" then
          local parts = {}
          for i = 1, #v do parts[i] = urlencode(str(v[i])) end
          s = concat(parts, ",")
        else
          s = urlencode(str(v))
        end
        q = q or {}
        local qn = qname_of[p]
        if qn == nil then qn = urlencode(p.name) .. "="; qname_of[p] = qn end
        q[#q + 1] = qn .. s
      elseif p.where == "body" then
        if p.type == "object" then body = v   -- the body is the object itself (applications.filter)
        else
          body = body or {}
          body[p.name] = v
        end
      end
    end
  end
  local text
  if body ~= nil then
    local ok, t = pcall(json_encode, body)
    if not ok then
      error(errors.param(op, nil, "body cannot be encoded as JSON: " .. tostring(t)), 0)
    end
    text = t
  end
  return path, q and concat(q, "&") or "", text
end
M.build = build

-- Calling --------------------------------------------------------------------

local TRANSPORT_KINDS = { connect = true, timeout = true, reset = true, tls = true,
  too_large = true, other = true, closed = true }

M.base64 = require "ari.base64"

-- The events socket.
local function default_websocket(o)
  return require("ari.ws").connect(o)
end

local function default_transport(req)
  return require("ari.http").request(req)
end

local HEADERS = { ["Accept"] = "application/json" }
local HEADERS_BODY = { ["Accept"] = "application/json", ["Content-Type"] = "application/json" }

-- Server versions [versions] -------------------------------------------------
-- schema.versions lists the releases whose api-docs gave the `since` facts
-- (the lowest Asterisk major having an operation, parameter or value).
-- Asterisk's ARI major is its own major minus 12 (ARI 6 = Asterisk 18,
-- 8 = 20, 10 = 22, 11 = 23).

local version_by_major = {}
for _, v in ipairs(schema.versions or {}) do version_by_major[v.asterisk] = v end
M.versions = schema.versions

local function major_of(v) return math.tointeger(tonumber(tostring(v or ""):match("^(%d+)"))) end

--- { ari_version, asterisk_version (nil if unknown), major } for an ARI
-- apiVersion ("6.0.1") and, if known, the Asterisk version ("18.26.4").
function M.server_info(ari_version, asterisk_version)
  local am = major_of(ari_version)
  if am == nil then return nil end
  return { ari_version = tostring(ari_version), asterisk_version = asterisk_version, major = am + 12 }
end

local function describe_server(srv)
  if srv.asterisk_version then return format("Asterisk %s (ARI %s)", srv.asterisk_version, srv.ari_version) end
  return format("ARI %s (Asterisk %d)", srv.ari_version, srv.major)
end
M.describe_server = describe_server

local function needs(since)
  local v = version_by_major[since]
  if v then return format("ARI %s (Asterisk %d)", v.ari, since) end
  return format("Asterisk %d", since)
end

local function unsupported(self, op, what, since, param)
  error(errors.new { kind = "unsupported", operation = op.fullname, method = op.method, path = op.path,
    parameter = param, since = since,
    message = format("%sneeds %s; this server is %s", what and (what .. " ") or "", needs(since),
      describe_server(self.server)) }, 0)
end

local function check_version(self, op, params)
  local major = self.server.major
  if op.since and major < op.since then unsupported(self, op, nil, op.since) end
  if type(params) ~= "table" then return end
  for k, v in pairs(params) do
    local p = op.byname[k]
    if p then
      if p.since and major < p.since then
        unsupported(self, op, format("parameter '%s'", k), p.since, k)
      end
      local vs = p.values_since
      if vs and v ~= nil and v ~= json_null then
        local s = vs[tostring(v)]
        if s and major < s then
          unsupported(self, op, format("parameter %s = %s", k, tostring(v)), s, k)
        end
      end
    end
  end
end

--- Does the server have this operation ("channels.progress"), parameter
-- or parameter value?  True when the server's version is unknown.
function Client:supports(opname, param, value)
  local res, nick = tostring(opname):match("^([^.]+)%.(.+)$")
  local op = res and ops_by_resource[res] and ops_by_resource[res][nick]
  if op == nil then return false end
  local srv = self.server
  if srv == nil then return true end
  if op.since and srv.major < op.since then return false end
  if param ~= nil then
    local p = op.byname[param]
    if p == nil then return false end
    if p.since and srv.major < p.since then return false end
    if value ~= nil and p.values_since then
      local s = p.values_since[tostring(value)]
      if s and srv.major < s then return false end
    end
  end
  return true
end

-- Transcript and debug log of what the client sees [versions] -----------------
-- M.transcript: nil, or a function(entry) given { kind = "rest" | "event" |
-- "note", ... } (the ari-lua host sets it for --transcript FILE).
M.transcript = nil

local hrtime = core.hrtime

local function jstr(v)
  if v == nil then return nil end
  if type(v) == "number" then return math.type(v) == "integer" and format("%d", v) or format("%.3f", v) end
  return (json_encode(tostring(v)))
end

--- Open FILE for the transcript (JSON lines, one per REST request, event
-- and connection note; credentials redacted).  Returns true or nil, err.
function M.open_transcript(path)
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  f:setvbuf("line")
  local t0 = hrtime()
  local KEYS = { "t", "kind", "app", "type", "method", "path", "status", "ms", "channel", "bridge", "summary" }
  M.transcript = function(e)
    e.t = (hrtime() - t0) // 1000000
    local parts = {}
    for _, k in ipairs(KEYS) do
      local v = jstr(e[k])
      if v then parts[#parts + 1] = '"' .. k .. '":' .. v end
    end
    f:write(log.redact("{" .. concat(parts, ",") .. "}"), "\n")
  end
  M.transcript_file = f
  return true
end

function M.close_transcript()
  if M.transcript_file then M.transcript_file:close() end
  M.transcript_file, M.transcript = nil, nil
end

local function note(fmt, ...)
  local tr = M.transcript
  if tr then tr { kind = "note", summary = format(fmt, ...) } end
end

local function rest_seen(req, ok, status, t0)
  local ms = (hrtime() - t0) / 1e6
  local path = req.path .. ((req.query_string and req.query_string ~= "") and ("?" .. req.query_string) or "")
  local st = ok and status or nil
  local what = ok and tostring(status) or ("failed: " .. tostring(type(status) == "table" and status.message or status))
  if log.enabled("debug") then log.debug("REST %s %s -> %s (%.1f ms)", req.method, path, what, ms) end
  local tr = M.transcript
  if tr then
    tr { kind = "rest", method = req.method, path = path, status = st, ms = math.floor(ms * 10 + 0.5) / 10,
      summary = format("%s %s -> %s", req.method, path, what) }
  end
end

local ID_FIELDS = { { "channel", "channel" }, { "peer", "peer" }, { "bridge", "bridge" },
  { "playback", "playback" }, { "recording", "recording" }, { "endpoint", "endpoint" } }

local function event_seen(ev)
  if type(ev) ~= "table" then return end
  local t = rawget(ev, "type")
  local ids = {}
  local ch, br
  for _, f in ipairs(ID_FIELDS) do
    local o = rawget(ev, f[1])
    if type(o) == "table" then
      local id = rawget(o, "id") or rawget(o, "name") or rawget(o, "resource")
      if id ~= nil then
        ids[#ids + 1] = f[2] .. "=" .. tostring(id)
        if f[1] == "channel" then ch = tostring(id) elseif f[1] == "bridge" then br = tostring(id) end
      end
    end
  end
  local extra = rawget(ev, "digit") and (" digit=" .. tostring(rawget(ev, "digit"))) or ""
  if log.enabled("debug") then
    log.debug("event %s%s%s", tostring(t), #ids > 0 and (" " .. concat(ids, " ")) or "", extra)
  end
  local tr = M.transcript
  if tr then
    tr { kind = "event", app = rawget(ev, "application"), type = t, channel = ch, bridge = br,
      summary = tostring(t) .. (#ids > 0 and (" " .. concat(ids, " ")) or "") .. extra }
  end
end
M.event_seen = event_seen

-- First contact [versions] -----------------------------------------------------

--- The base URL as ari.connect uses it: a scheme is added when missing
-- (http://), ws:// and wss:// become http:// and https://, and a trailing
-- "/" or "/ari" is tolerated ("http://h:8088", "h:8088/ari/" -> "http://h:8088/ari").
function M.normalize_url(url)
  url = tostring(url):match("^%s*(.-)%s*$")
  if not url:find("^%a[%w+.%-]*://") then url = "http://" .. url end
  url = url:gsub("^[Ww][Ss]://", "http://"):gsub("^[Ww][Ss][Ss]://", "https://")
  url = url:gsub("/+$", "")
  if not url:find("/ari$") then url = url .. "/ari" end
  return url
end

local CHECK = "Check the URL (--url / ARI_URL), that Asterisk is running, and that its http.conf has "
  .. "enabled = yes with this bindaddr and bindport"

local function connect_error(self, reason, message, extra)
  local e = { kind = "connect", reason = reason, operation = "ari.connect", url = self._base,
    user = self._user, message = message }
  for k, v in pairs(extra or {}) do e[k] = v end
  return errors.new(e)
end

local function user_desc(self)
  return self._user and format("user '%s'", tostring(self._user)) or "no user"
end

-- a transport failure of the first request, as a first-contact error
local function transport_contact_error(self, e)
  local msg = tostring(e.message)
  local reason, text
  if e.kind == "connect" and (e.code == 6 or msg:find("resolve")) then
    reason, text = "resolve", format("cannot resolve the host of %s (%s). %s", self._base, msg, CHECK)
  elseif e.kind == "connect" then
    reason, text = "refused", format("cannot connect to %s: connection refused (%s). %s", self._base, msg, CHECK)
  elseif e.kind == "timeout" then
    reason, text = "timeout", format("no answer from %s within %d ms (%s). %s", self._base, self._timeout, msg, CHECK)
  elseif e.kind == "tls" then
    reason, text = "tls", format("TLS failure talking to %s (%s): check the server's certificate, cainfo, "
      .. "or insecure = true for a test server", self._base, msg)
  else
    reason, text = e.kind, format("cannot talk to %s (%s). %s", self._base, msg, CHECK)
  end
  return connect_error(self, reason, text, { transport = e.kind, code = e.code })
end

local function auth_error(self, status, where)
  return connect_error(self, "auth", format("authentication failed for %s at %s%s: check the user "
    .. "and password (--user/--password, ARI_USER/ARI_PASSWORD) against Asterisk's ari.conf",
    user_desc(self), self._base, where or ""), { status = status })
end

local function parse_server_header(h)
  if type(h) == "string" then return h:match("[Ss][Ee][Rr][Vv][Ee][Rr]:%s*Asterisk/([^%s;]+)") end
  if type(h) == "table" then
    local s = h.server or h.Server
    return type(s) == "string" and s:match("Asterisk/([^%s;]+)") or nil
  end
end

-- base URL -> what probe learned (one request per server and process)
local server_cache = {}
M._server_cache = server_cache

--- Learn the server's versions with one request (GET /ari/api-docs/resources.json:
-- its apiVersion, and the Asterisk version from the Server header), in a
-- coroutine.  Returns client.server, or nil and a first-contact error
-- (kind "connect", reason "refused" | "resolve" | "timeout" | "tls" |
-- "auth" | "not_ari").  Called by connect (see M.connect).
function Client:probe()
  if self.server then return self.server end
  local tp = self._probe_transport
  if tp == nil then return nil, connect_error(self, "custom", "a custom transport cannot be probed") end
  local path = "/api-docs/resources.json"
  local req = setmetatable({ method = "GET", url = self._base .. path, path = path, query_string = "",
    headers = HEADERS }, self._req_mt)
  local t0 = hrtime()
  local ok, status, body, headers = pcall(tp, req)
  rest_seen(req, ok, status, t0)
  if not ok then
    local e = status
    if type(e) == "table" and TRANSPORT_KINDS[e.kind] then return nil, transport_contact_error(self, e) end
    error(e, 0)
  end
  if status == 401 or status == 403 then return nil, auth_error(self, status) end
  local doc = status == 200 and type(body) == "string" and json_decode(body) or nil
  local av = type(doc) == "table" and doc.apiVersion
  local srv = type(av) == "string" and M.server_info(av, parse_server_header(headers))
  if not srv then
    return nil, connect_error(self, "not_ari", format("%s is not an Asterisk ARI server (GET %s%s answered %s): "
      .. "check the URL's path (http://host:port, optionally ending in /ari) and that Asterisk loads res_ari "
      .. "(ari.conf: enabled = yes)", self._base, self._base, path,
      status == 200 and "200 without an ARI apiVersion" or tostring(status)), { http_status = status })
  end
  self.server = srv
  server_cache[self._base] = srv
  local oldest = schema.versions and schema.versions[1]
  log.info("connected to %s at %s as %s", describe_server(srv), self._base, user_desc(self))
  note("connected to %s at %s as %s", describe_server(srv), self._base, user_desc(self))
  if oldest and srv.major < oldest.asterisk then
    log.warn("%s is older than the oldest ARI ari-lua knows (%s, Asterisk %d): some operations may be missing",
      describe_server(srv), oldest.ari, oldest.asterisk)
  end
  return srv
end

-- REST over the WebSocket came with Asterisk 20.14, 21.9 and 22.4 (the
-- schema's RESTRequest model gives the major).
local RESTWS_SINCE = schema.models.RESTRequest and schema.models.RESTRequest.since or 20
local RESTWS_MINOR = { [20] = 14, [21] = 9, [22] = 4 }

-- Whether srv offers REST over the WebSocket: false and why when it does
-- not, nil when it cannot tell (its ARI major has it, but the Asterisk
-- release is unknown and a release of that major may predate it).
local function restws_offered(srv)
  if srv.major < RESTWS_SINCE then return false, "its ARI predates RESTRequest" end
  local v = srv.asterisk_version
  local maj, min
  if v then maj, min = v:match("^(%d+)%.(%d+)") end
  maj, min = tonumber(maj), tonumber(min)
  local need = RESTWS_MINOR[maj or srv.major]
  if need == nil then return true end
  if min == nil then return nil, "its Asterisk release is unknown (no Server header)" end
  if min < need then return false, format("RESTRequest came with %d.%d", maj, need) end
  return true
end
M.restws_offered = restws_offered

local function check_restws(self)
  local srv = self.server
  if srv == nil then return end
  if restws_offered(srv) == false then
    error(errors.new { kind = "unsupported", operation = "ari.connect", since = RESTWS_SINCE,
      message = format("REST over the WebSocket (transport = \"websocket\") needs %s or later (20.14, 21.9, "
        .. "22.4); this server is %s: use transport = \"http\"", needs(RESTWS_SINCE), describe_server(srv)) }, 0)
  end
end

-- The request table for op(params).  [perf] A function of its own, so that
-- its locals are not on the stack while the transport waits.
local function make_request(self, op, params)
  local path, query, body = build(op, params)
  local url = self._base .. path
  if query ~= "" then url = url .. "?" .. query end
  -- [perf] shared, read-only request headers (transports must not change them);
  -- what is the same for every request of this client (user, password,
  -- timeout, TLS options, raw_headers) is read through the request's
  -- metatable: a smaller table per request
  -- binary: a binary download (ari.wstransport sends those over HTTP; a
  -- seventh field still fits the table's 8 hash slots)
  return setmetatable({ method = op.method, url = url, path = path, query_string = query,
    headers = body and HEADERS_BODY or HEADERS, body = body, binary = op.response == "binary" }, self._req_mt)
end

local function call(self, op, params)
  if self._closed then
    error(errors.new { kind = "transport", operation = op.fullname, method = op.method, path = op.path,
      message = "client is closed" }, 0)
  end
  if op.version_sensitive and self.server then check_version(self, op, params) end -- [versions]
  local req = make_request(self, op, params)
  local obs = M.observer -- [ari.metrics] sees every REST request: obs.start() -> t0; obs.done(...)
  local t0 = obs and obs.start()
  local seen = (M.transcript or log.debug_on) and hrtime() -- [versions] debug log, transcript
  local ok, status, rbody, rheaders = pcall(self._transport, req)
  if obs then obs.done(self, op.fullname, t0, ok, status) end -- [/ari.metrics]
  if seen then rest_seen(req, ok, status, seen) end
  if not ok then
    local e = status
    if type(e) == "table" and TRANSPORT_KINDS[e.kind] then
      local msg = e.message
      -- [versions] a refused or unresolvable server: say what to check
      if e.kind == "connect" and self._probe_transport then msg = transport_contact_error(self, e).message end
      error(errors.new { kind = "transport", transport = e.kind, code = e.code, message = msg,
        operation = op.fullname, method = op.method, path = req.path }, 0)
    end
    error(e, 0) -- a cancel (hang-up) or a bug: unchanged
  end
  if type(status) ~= "number" then
    error(errors.new { kind = "transport", operation = op.fullname, method = op.method, path = req.path,
      message = "transport returned no status" }, 0)
  end
  if status >= 200 and status < 300 then
    if op.response == "binary" then return rbody or "" end
    if status == 204 or op.response == "void" or rbody == nil or rbody == "" then return true end
    local v, err = json_decode(rbody, op.response) -- typed by the C decoder when it can
    if v == nil then
      error(errors.new { kind = "decode", status = status, operation = op.fullname, method = op.method,
        path = req.path, body = rbody, message = "response is not JSON: " .. tostring(err) }, 0)
    end
    -- [perf] typed by C as this model already: nothing for cast to do
    if getmetatable(v) ~= models.mt[op.response] or getmetatable(v) == nil then models.cast(v, op.response) end
    models.attach(v, self)
    return v
  end
  local decoded
  if type(rbody) == "string" and rbody:find("^%s*{") then decoded = json_decode(rbody) end
  if type(rheaders) == "string" then rheaders = core.http_parse_headers(rheaders) end
  error(errors.new { kind = "http", status = status, message = errors.message_for(status, decoded, op),
    operation = op.fullname, method = op.method, path = req.path, body = rbody, headers = rheaders }, 0)
end

local function resource_table(self, rname)
  local res = {}
  for nick, op in pairs(ops_by_resource[rname]) do
    local f
    if op.upgrade == "websocket" then
      f = function(a, b)
        if a == res then a = b end
        return self:_open_events(op, a)
      end
    else
      f = function(a, b)
        if a == res then a = b end -- called with ':'
        return call(self, op, a)
      end
    end
    res[nick] = f
  end
  return res
end

-- Events ---------------------------------------------------------------------

-- event type -> list of { field, model } for the fields that name routable
-- objects (derived from the schema).
local routes = {}
for name, m in pairs(schema.models) do
  if m.extends == "Event" then
    local r = {}
    for f, p in pairs(m.properties) do
      if models.route_key[p.type] then r[#r + 1] = { f, p.type } end
    end
    table.sort(r, function(a, b) return a[1] < b[1] end)
    if #r > 0 then routes[name] = r end
  end
end
M.routes = routes

-- events after which an object's registrations are dropped
local final = { ChannelDestroyed = "channel", BridgeDestroyed = "bridge", PlaybackFinished = "playback",
  RecordingFinished = "recording", RecordingFailed = "recording" }

-- objects whose early events (arriving before the REST reply that created
-- them) are kept briefly and replayed to late subscribers
local EARLY_KINDS = { Playback = true, LiveRecording = true }
local EARLY_MAX = 64

local function traceback_handler(e) return sched.traceback_handler(e) end
local spawn_handler = sched.spawn_handler
local route_key = models.route_key

local function run_queue(entry)
  local q = entry.q
  while entry.head <= entry.tail do
    local i = entry.head
    local item = q[i]
    q[i] = nil
    entry.head = i + 1
    local fns, ev = item[1], item[2]
    for j = 1, #fns do
      local ok, err = xpcall(fns[j], traceback_handler, ev)
      if not ok then sched.on_error(err) end
    end
  end
  entry.running = false
end

local function collect(list, out, etype_matches)
  if list == nil then return out end
  for i = 1, #list do
    local h = list[i]
    if not h.dead then
      out = out or {}
      out[#out + 1] = h.fn
      if h.once then h.dead = true; list.dirty = true end
    end
  end
  return out
end

-- after collect: drop the once handlers it used up (nothing to do, and no
-- walk, in the usual case of plain handlers)
local function prune_used(list)
  if list ~= nil and list.dirty then
    list.dirty = nil
    for i = #list, 1, -1 do if list[i].dead then table.remove(list, i) end end
  end
end

local function prune(list)
  if list == nil then return end
  for i = #list, 1, -1 do if list[i].dead then table.remove(list, i) end end
end

local function filter_match(filter, ev)
  if filter == nil then return true end
  if type(filter) == "function" then return filter(ev) end
  for k, v in pairs(filter) do
    local x = ev[k]
    if type(v) == "table" and type(x) == "table" then
      if not filter_match(v, x) then return false end
    elseif x ~= v then return false end
  end
  return true
end

local function wait_on(self, list_holder, key, filter, timeout)
  local w = { filter = filter }
  local timer
  local lst = list_holder[key]
  if not lst then lst = {}; list_holder[key] = lst end
  lst[#lst + 1] = w
  local ok, ev, err = pcall(sched.suspend, function(wake)
    w.wake = wake
    if timeout then
      timer = require("ari.core").timer(timeout, function() wake(nil, "timeout") end)
    end
  end)
  w.dead = true
  if timer then timer:stop() end
  for i = #lst, 1, -1 do if lst[i] == w then table.remove(lst, i) end end
  if #lst == 0 and list_holder[key] == lst then list_holder[key] = nil end
  if not ok then error(ev, 0) end
  return ev, err
end

local function wake_waiters(lst, ev)
  if lst == nil then return end
  for i = 1, #lst do
    local w = lst[i]
    if not w.dead and w.wake then
      local ok, m = pcall(filter_match, w.filter, ev)
      if ok and m then w.dead = true; w.wake(ev) end
    end
  end
end

-- Did an earlier routing field of this event name the same object?  (An
-- object is given each event once, e.g. one channel in two legs.)
local function delivered_to(r, i, ev, kind, key)
  for j = 1, i - 1 do
    if r[j][2] == kind then
      local o = rawget(ev, r[j][1])
      if type(o) == "table" and models.route_key[kind](o) == key then return true end
    end
  end
  return false
end

--- Deliver one event (a decoded ARI message).  The WebSocket path calls
-- this; tests may too.
function Client:dispatch(ev)
  if type(ev) ~= "table" then return end
  local t = rawget(ev, "type")
  if type(t) ~= "string" then return end
  -- [perf] REST over the events socket: a reply is not an event (no
  -- routers, handlers or event counters)
  if t == "RESTResponse" then
    local rw = self.rest_ws
    if rw and rw:handle(ev) then return end
  end
  if self._closed then return end -- (a socket kept open for answers in flight)
  if getmetatable(ev) == nil and models.mt[t] then models.cast(ev, "Message") end
  self.stats.events = self.stats.events + 1
  -- [versions] --log-level debug, --transcript: every event, whichever way it came
  if M.transcript or log.debug_on then event_seen(ev) end
  local routers = self._routers
  for i = 1, #routers do
    local ok, err = xpcall(routers[i], traceback_handler, ev)
    if not ok then sched.on_error(err) end
  end
  local attached = false
  -- client-wide handlers and waiters
  local on = self._on
  local l1, l2 = on[t], on["*"]
  local fns = l1 and collect(l1, nil)
  if l2 then fns = collect(l2, fns) end
  if fns then
    models.attach(ev, self); attached = true
    for i = 1, #fns do spawn_handler(fns[i], ev) end
    prune_used(l1); prune_used(l2)
  end
  local w = self._waits[t]
  if w then
    if not attached then models.attach(ev, self); attached = true end
    wake_waiters(w, ev)
  end
  -- per-object handlers
  local r = routes[t]
  if r then
    local objs = self._objs
    for i = 1, #r do
      local field, kind = r[i][1], r[i][2]
      local o = rawget(ev, field)
      local reg = objs[kind]
      -- no per-object work for kinds nobody subscribed to (except the
      -- early-event ring of Playback/LiveRecording)
      if type(o) == "table" and (EARLY_KINDS[kind] or next(reg) ~= nil) then
        local key = route_key[kind](o)
        if key ~= nil then
          local entry = reg[key]
          if entry and (i == 1 or not delivered_to(r, i, ev, kind, key)) then
            local efns = collect(entry.on[t], nil)
            efns = collect(entry.on["*"], efns)
            if efns then
              if not attached then models.attach(ev, self); attached = true end
              prune_used(entry.on[t]); prune_used(entry.on["*"])
              entry.tail = entry.tail + 1
              entry.q[entry.tail] = { efns, ev }
              if not entry.running then
                entry.running = true
                spawn_handler(run_queue, entry)
              end
            end
            local ew = entry.waits[t]
            if ew then
              if not attached then models.attach(ev, self); attached = true end
              wake_waiters(ew, ev)
            end
          end
          if EARLY_KINDS[kind] then
            local early = self._early
            early.n = early.n + 1
            -- [perf] the ring's entries are reused once it is full
            local slot = early.n % EARLY_MAX + 1
            local e = early[slot]
            if e then e[1], e[2], e[3], e[4] = kind, key, t, ev
            else early[slot] = { kind, key, t, ev } end
          end
          if final[t] == field then reg[key] = nil end
        end
      end
    end
  end
end

local function obj_entry(self, kind, key, create)
  local reg = self._objs[kind]
  local e = reg[key]
  if e == nil and create then
    e = { on = {}, waits = {}, q = {}, head = 1, tail = 0, running = false }
    reg[key] = e
  end
  return e
end

local function early_events(self, kind, key, etype)
  local early, out = self._early, nil
  local first = math.max(1, early.n - EARLY_MAX + 1)
  for n = first, early.n do
    local e = early[n % EARLY_MAX + 1]
    if e and e[1] == kind and e[2] == key and (etype == "*" or e[3] == etype) then
      out = out or {}
      out[#out + 1] = e[4]
    end
  end
  return out
end

local function check_handler(etype, fn)
  if type(etype) ~= "string" then error(errors.usage("ari: event type must be a string", 3), 0) end
  if type(fn) ~= "function" then error(errors.usage("ari: handler must be a function", 3), 0) end
end

function Client:_obj_on(kind, key, etype, fn, once)
  check_handler(etype, fn)
  local e = obj_entry(self, kind, key, true)
  local lst = e.on[etype]
  if not lst then lst = {}; e.on[etype] = lst end
  local h = { fn = fn, once = once }
  lst[#lst + 1] = h
  if EARLY_KINDS[kind] then
    -- events of this object that arrived before anyone could subscribe
    local evs = early_events(self, kind, key, etype)
    if evs then
      for _, ev in ipairs(evs) do
        if h.dead then break end
        if once then h.dead = true end
        models.attach(ev, self)
        e.tail = e.tail + 1
        e.q[e.tail] = { { fn }, ev }
      end
      prune(lst)
      if not e.running and e.head <= e.tail then
        e.running = true
        sched.spawn_handler(run_queue, e)
      end
    end
  end
  return h
end

function Client:_obj_off(kind, key, etype, fn)
  local e = obj_entry(self, kind, key, false)
  if not e then return end
  if etype == nil then e.on = {}; return end
  local lst = e.on[etype]
  if not lst then return end
  for _, h in ipairs(lst) do if fn == nil or h.fn == fn or h == fn then h.dead = true end end
  prune(lst)
end

function Client:_obj_wait(kind, key, etype, filter, timeout)
  if EARLY_KINDS[kind] then
    local evs = early_events(self, kind, key, etype)
    if evs then
      for _, ev in ipairs(evs) do
        if filter_match(filter, ev) then models.attach(ev, self); return ev end
      end
    end
  end
  local e = obj_entry(self, kind, key, true)
  return wait_on(self, e.waits, etype, filter, timeout)
end

--- client:on(type, fn): fn(event) for every event of that type ("*": all).
-- Returns a handle usable with off.
function Client:on(etype, fn)
  check_handler(etype, fn)
  local lst = self._on[etype]
  if not lst then lst = {}; self._on[etype] = lst end
  local h = { fn = fn }
  lst[#lst + 1] = h
  return h
end

function Client:once(etype, fn)
  local h = self:on(etype, fn)
  h.once = true
  return h
end

--- Does a handler wait for this client's events (client:on, or obj:on
-- of a channel, bridge...)?  The host exits when nothing does (ari.cli).
function Client:listening()
  if self._closed then return false end
  local function live(lists)
    for _, lst in pairs(lists) do
      for _, h in ipairs(lst) do if not h.dead then return true end end
    end
    return false
  end
  if live(self._on) then return true end
  for _, reg in pairs(self._objs) do
    for _, e in pairs(reg) do if live(e.on) then return true end end
  end
  return false
end

--- client:off(type [, fn_or_handle]): remove handlers (all of that type
-- without fn).
function Client:off(etype, fn)
  local lst = self._on[etype]
  if not lst then return end
  for _, h in ipairs(lst) do if fn == nil or h.fn == fn or h == fn then h.dead = true end end
  prune(lst)
end

--- Wait (in a coroutine) for the next event of that type matching filter
-- (a function(ev) -> bool, or a table of field = value, nested tables
-- matching nested fields).  Returns the event, or nil, "timeout" / "closed".
function Client:wait(etype, filter, timeout)
  if self._closed then return nil, "closed" end
  return wait_on(self, self._waits, etype, filter, timeout)
end

--- fn(client) runs (as a coroutine) each time the events socket comes back
-- after a disconnection; events sent meanwhile are lost, so state that
-- depends on them must be reconciled (ari.resync does it for ari.app).
function Client:on_reconnect(fn)
  self._reconnect_hooks[#self._reconnect_hooks + 1] = fn
  return fn
end

--- Routers see every event first, synchronously, in arrival order.
function Client:add_router(fn)
  self._routers[#self._routers + 1] = fn
  return fn
end

function Client:remove_router(fn)
  for i = #self._routers, 1, -1 do if self._routers[i] == fn then table.remove(self._routers, i) end end
end

-- The events WebSocket --------------------------------------------------------

function Client:_events_url(op, params)
  local _, query = build(op, params)
  local base = self._base:gsub("^http", "ws")
  return base .. op.path .. (query ~= "" and ("?" .. query) or "")
end

function Client:_open_events(op, params)
  local url = self:_events_url(op, params)
  local shown = url:gsub("api_key=[^&]*", "api_key=***")
  local ever_open, last_err = false, nil
  local conn
  log.debug("events socket: connecting to %s as %s", shown, user_desc(self))
  conn = self._websocket {
    url = url, user = self._user, password = self._password, json = true,
    insecure = self._insecure, cainfo = self._cainfo, -- [hardening] TLS options
    on_message = function(v, err)
      if v == nil then
        log.warn("ari: undecodable event: %s", tostring(err))
        return
      end
      self:dispatch(v)
    end,
    on_open = function()
      self.stats.connects = self.stats.connects + 1
      last_err = nil
      if ever_open then
        log.info("events socket reconnected to %s", shown)
      else
        log.debug("events socket connected to %s", shown)
      end
      note("events socket %s to %s", ever_open and "reconnected" or "connected", shown)
      -- [versions] the server may have been restarted as another version
      if ever_open and self.server and self._probe_transport then
        sched.spawn(function()
          local old = self.server
          self.server, server_cache[self._base] = nil, nil
          local ok, srv = pcall(self.probe, self)
          if not (ok and srv) then self.server = self.server or old; return end
          if srv.ari_version ~= old.ari_version or srv.asterisk_version ~= old.asterisk_version then
            log.warn("the server changed from %s to %s", describe_server(old), describe_server(srv))
          end
        end)
      end
      ever_open = true
      -- after a reconnect, whoever keeps state (ari.app) reconciles it
      if self.stats.connects > 1 then
        for _, fn in ipairs(self._reconnect_hooks) do sched.spawn(fn, nil, self) end
      end
    end,
    -- [versions] first contact: say what failed; under the ari-lua host
    -- (strict) a definitive failure before the first open ends the connect
    on_close = function(code, reason, reconnecting)
      if self._closed then
        log.debug("events socket to %s closed", shown)
      elseif reconnecting then
        log.warn("events socket to %s lost (%s %s); reconnecting", shown, tostring(code), tostring(reason))
        note("events socket lost (%s %s); reconnecting", tostring(code), tostring(reason))
      else
        log.info("events socket to %s closed (%s %s)", shown, tostring(code), tostring(reason))
        note("events socket closed (%s %s)", tostring(code), tostring(reason))
      end
    end,
    on_error = function(msg)
      local m = tostring(msg)
      local reason, text
      if m:find("unauthorized", 1, true) then
        reason = "auth"
        text = format("authentication failed for %s at %s (events socket: %s): check the user and password "
          .. "(--user/--password, ARI_USER/ARI_PASSWORD) against Asterisk's ari.conf", user_desc(self), self._base, m)
      elseif m:find("not 101", 1, true) then
        reason = "not_ari"
        text = format("%s did not accept the events WebSocket (%s): check the URL's path and that Asterisk "
          .. "loads res_ari_events and res_http_websocket", shown, m)
      elseif m:find("closed before established", 1, true) or m:find("refused", 1, true) then
        reason = "refused"
        text = format("cannot connect to %s: connection refused (%s). %s", shown, m, CHECK)
      else
        text = format("events socket to %s: %s", shown, m)
      end
      if not ever_open and reason and self._strict and not self._fatal then
        self._fatal = connect_error(self, reason, text)
        log.error("%s", text)
        pcall(conn.close, conn)
        return
      end
      if ever_open and reason == "auth" then
        text = text .. " (the credentials changed since the last connection?)"
      end
      -- the same failure again and again: once at warn, then at debug
      if text ~= last_err then
        log.warn("%s; retrying with backoff", text)
        last_err = text
      else
        log.debug("%s; retrying with backoff", text)
      end
    end,
  }
  self._sockets[#self._sockets + 1] = conn
  return conn
end

--- Wait (in a coroutine) until the events socket is open, i.e. the
-- client's Stasis applications are registered with Asterisk (a channel
-- sent to an application that is not registered never reaches it).
-- Returns true at once when it is open (or when the client has no socket
-- of its own), else waits up to timeout_ms: true, or nil and the error.
function Client:wait_events(timeout_ms)
  local socks = self._sockets
  for i = 1, #socks do
    local conn = socks[i]
    if conn.wait_open then
      local ok, err = conn:wait_open(timeout_ms)
      if not ok then return nil, err end
    end
  end
  return true
end

--- Close the events socket(s) only (no reconnect); REST goes on working.
function Client:close_events()
  local socks = self._sockets
  self._sockets = {}
  for _, conn in ipairs(socks) do pcall(conn.close, conn) end
end

-- [shutdown] the events sockets of closed clients, until their close is done
local closing_socks = setmetatable({}, { __mode = "k" })

--- Is a closed client's events socket still closing (a REST-over-WebSocket
-- answer awaited, or the close handshake under way)?  The host waits for
-- that before it stops the loop at shutdown (ari.cli).
function M.closing()
  for conn in pairs(closing_socks) do
    local ok, st = pcall(conn.state, conn)
    if ok and st ~= "closed" then return true end
    closing_socks[conn] = nil
  end
  return false
end

--- Close the event socket(s); waits end with nil, "closed".
function Client:close()
  if self._closed then return end
  self._closed = true
  local socks = self._sockets
  self._sockets = {}
  for _, conn in ipairs(socks) do closing_socks[conn] = true end
  local function close_socks() for _, conn in ipairs(socks) do pcall(conn.close, conn) end end
  local rw = self.rest_ws
  if rw and rw:in_flight() > 0 then
    -- REST over the events socket: requests already sent (e.g. a shutdown
    -- hook's) get their answers first, as they would over HTTP; each has
    -- its own timeout, and this one caps the wait
    local cap = require("ari.core").timer(self._timeout + 1000, function() rw.on_idle = nil; close_socks() end)
    rw:when_idle(function() cap:stop(); close_socks() end)
  else
    close_socks()
  end
  local function wake_all(holder)
    for _, lst in pairs(holder) do
      for _, w in ipairs(lst) do if not w.dead and w.wake then w.dead = true; w.wake(nil, "closed") end end
    end
  end
  wake_all(self._waits)
  for _, reg in pairs(self._objs) do
    for _, e in pairs(reg) do wake_all(e.waits) end
  end
  models.remove_client(self)
end

function Client:__tostring() return format("ari.client(%s)", self._base) end

--- Connect (see the header).  The events WebSocket is opened when `app` is
-- given and `events` is not false.
--
-- [versions] When called in a coroutine with the built-in transport
-- ("http" or "websocket"), connect learns the server's versions with one
-- request (client:probe(): client.server = { ari_version, asterisk_version,
-- major }); operations, parameters and values the server lacks then fail at
-- once (kind "unsupported").  opts.server = { ari_version = "6.0.1",
-- asterisk_version = ... } gives them instead (no request); probe = false
-- skips the request.  If the first request fails (connection refused,
-- authentication, not an ARI server), connect raises the error when
-- strict (opts.strict, or config.strict, which the ari-lua host sets: a
-- script fails at start-up) and also waits for the events socket to open;
-- otherwise it logs a warning and carries on (operations then fail as they
-- would have).
function M.connect(opts)
  opts = opts or {}
  local url = M.normalize_url(opts.url or config.url or "http://127.0.0.1:8088")
  local transport = opts.transport or default_transport
  local builtin = transport == default_transport
  -- "http" (the default, libcurl) and "websocket" (replaced below) by name
  if transport == "websocket" or transport == "http" then transport = default_transport; builtin = true end
  if type(transport) == "table" then
    local t = transport
    transport = function(req) return t:request(req) end
  end
  if type(transport) ~= "function" then
    error(errors.usage(string.format("ari.connect: transport must be \"http\", \"websocket\", a function or an object "
      .. "with :request, got %s", type(opts.transport) == "string" and string.format("%q", opts.transport)
      or type(opts.transport)), 2), 0)
  end
  local strict = opts.strict
  if strict == nil then strict = config.strict end
  local self = setmetatable({
    _base = url, _user = opts.user or config.user, _password = opts.password or config.password,
    _timeout = opts.timeout or 30000, _transport = transport,
    _insecure = opts.insecure and true or nil, _cainfo = opts.cainfo, -- [hardening] TLS: verify unless insecure
    _on = {}, _waits = {}, _routers = {}, _sockets = {}, _early = { n = 0 }, _reconnect_hooks = {},
    _objs = {}, stats = { events = 0, connects = 0 },
    _websocket = opts.websocket or default_websocket,
    _probe_transport = builtin and (opts.http_transport or default_transport) or nil, -- [versions]
    _strict = strict and true or nil,
  }, Client)
  -- every REST request's constant options (see call); raw_headers: ari.http
  -- returns the response's header block as one string (turned into a table
  -- only for an error): no table per reply
  self._req_mt = { __index = { user = self._user, password = self._password, timeout = self._timeout,
    insecure = self._insecure, cainfo = self._cainfo, -- [hardening] TLS options
    raw_headers = true } }
  for kind in pairs(models.route_key) do self._objs[kind] = {} end
  for _, r in ipairs(schema.resources) do self[r] = resource_table(self, r) end
  models.add_client(self)
  if log.add_credentials then log.add_credentials(self._user, self._password) end -- [ship] never logged
  -- [versions] learn the server (one request), fail early when strict
  if type(opts.server) == "table" then
    self.server = M.server_info(opts.server.ari_version, opts.server.asterisk_version)
  elseif opts.probe ~= false and self._probe_transport and server_cache[url] then
    -- learned by an earlier client of this process: no request, no wait
    -- (a script reloaded by ari.reload creates its apps without yielding)
    local c = server_cache[url]
    self.server = { ari_version = c.ari_version, asterisk_version = c.asterisk_version, major = c.major }
  elseif opts.probe ~= false and self._probe_transport and coroutine.isyieldable() then
    log.debug("connecting to %s as %s", url, user_desc(self))
    local srv, perr = self:probe()
    if not srv then
      if strict then
        models.remove_client(self)
        error(perr, 0)
      end
      log.warn("%s", tostring(perr))
    end
  end
  local app = opts.app
  if app == nil or (type(app) == "string" and not app:find(",", 1, true)) then
    app = config.app_name(app) -- --app / ARI_APP wins over the script's name (ari.config)
  end
  local apps = app
  if type(app) == "string" then
    apps = {}
    for a in app:gmatch("[^,]+") do apps[#apps + 1] = a end
  end
  self.app = apps and concat(apps, ",")
  -- [modes] transport = "websocket": REST over the events socket (ari.wstransport)
  if opts.transport == "websocket" then
    local ok, e = pcall(check_restws, self) -- [versions] the server must have it
    if not ok then models.remove_client(self); error(e, 0) end
    require("ari.wstransport").install(self, opts)
    self.transport_name = "websocket"
    log.info("REST over the events WebSocket (transport = \"websocket\")")
  elseif opts.transport == nil then
    -- [perf] the default: REST over the events socket where the server
    -- offers it (one socket, no per-request HTTP), libcurl where it does not
    local why
    if not (apps and opts.events ~= false) then
      why = "no events socket (no app, or events = false)"
    elseif opts.websocket ~= nil then
      why = "the events socket is a custom one (opts.websocket)"
    elseif not self.server then
      why = "the server's version is unknown"
    else
      local offered, w = restws_offered(self.server)
      if not offered then why = format("%s lacks REST over the WebSocket (%s)", describe_server(self.server), w) end
    end
    if why then
      self.transport_name = "http"
      if apps and opts.events ~= false then log.info("REST over HTTP (libcurl): %s", why) end
    else
      require("ari.wstransport").install(self, opts, true)
      self.transport_name = "websocket"
      log.info("REST over the events WebSocket (%s offers it; transport = \"http\" forces libcurl)",
        describe_server(self.server))
    end
  elseif opts.transport == "http" then
    self.transport_name = "http"
    if apps and opts.events ~= false then log.info("REST over HTTP (libcurl): transport = \"http\"") end
  else
    self.transport_name = "custom"
  end
  -- [/modes]
  if apps and opts.events ~= false then
    local params = { app = apps }
    if opts.subscribe_all ~= nil then params.subscribeAll = opts.subscribe_all and true or false end
    local conn = self.events.eventWebsocket(params)
    -- [versions] strict: the socket must open (or fail definitively) before connect returns
    if strict and self.server and type(conn) == "table" and conn.wait_open and coroutine.isyieldable() then
      local limit = opts.open_timeout or 10000
      local ok, werr = conn:wait_open(limit)
      if not ok then
        local e = self._fatal or connect_error(self, "events", format("the events socket to %s did not open within %d ms (%s)",
          self._base, limit, tostring(werr)))
        self:close()
        error(e, 0)
      end
    end
  end
  return self
end

return M
