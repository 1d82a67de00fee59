-- ari.sim: a simulated Asterisk 22 (ARI) as a Lua state machine.
--
--   local sim = require("ari.sim").new{ speed = 1, scenario = tbl_or_path,
--                                       asterisk_id = "..", user = "..", password = ".." }
--   sim:request(method, path, query, body, headers) -> status, body_text_or_nil, headers
--   sim:connect_events(apps, subscribe_all, send_fn [, close_fn]) -> session | nil, status, message
--   sim:listen{ host = "127.0.0.1", port = 0 }  (see ari.sim.transport)
--
-- The engine is transport-independent: requests and events are plain
-- strings.  Simulated time runs on ari.core timers, `speed` times faster
-- than real time.
local core = require "ari.core"
local json = require "ari.sim.json"
local util = require "ari.sim.util"

local M = {}
local Sim = {}
Sim.__index = Sim
M.Sim = Sim
M.json = json

local obj = json.obj

-- Time ---------------------------------------------------------------------

--- Milliseconds of simulated wall-clock time (epoch based).
function Sim:now_ms()
  return self.epoch0 + math.floor((core.now() - self.mono0) * self.speed)
end

--- Milliseconds of simulated time since the simulator started.
function Sim:elapsed()
  return (core.now() - self.mono0) * self.speed
end

--- Asterisk's timestamp format: 2026-11-26T08:11:35.621+0000
function Sim:timestamp(ms)
  ms = ms or self:now_ms()
  local s = ms // 1000
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. string.format(".%03d+0000", ms % 1000)
end

--- Run fn after `ms` of simulated time.  Returns a handle with :stop().
function Sim:after(ms, fn)
  local real = math.max(0, math.floor((ms or 0) / self.speed + 0.5))
  local handle = {}
  local t
  t = core.timer(real, function()
    self.timers[handle] = nil
    if self.closed then return end
    fn()
  end)
  handle.stop = function()
    self.timers[handle] = nil
    t:stop()
  end
  self.timers[handle] = t
  return handle
end

-- Ids -------------------------------------------------------------------------

function Sim:uniqueid()
  self.uid_seq = self.uid_seq + 1
  return string.format("%d.%d", self.epoch0 // 1000, self.uid_seq)
end

function Sim:seq(name)
  local n = (self.seqs[name] or 0)
  self.seqs[name] = n + 1
  return n
end

-- Events ---------------------------------------------------------------------

-- Fields that Asterisk writes before "type" for some events.
local PRE = { ChannelVarset = { variable = true, value = true },
  ChannelHangupRequest = { cause = true, tech_cause = true, soft = true }, ChannelTalkingFinished = { duration = true } }

local function build_event(sim, etype, fields, app)
  local kv = {}
  local pre = PRE[etype]
  if pre then
    for i = 1, #fields, 2 do
      if pre[fields[i]] then kv[#kv + 1] = fields[i]; kv[#kv + 1] = fields[i + 1] end
    end
  end
  local ts = sim:timestamp()
  kv[#kv + 1] = "type"; kv[#kv + 1] = etype
  if etype == "DeviceStateChanged" then
    kv[#kv + 1] = "application"; kv[#kv + 1] = app
  end
  kv[#kv + 1] = "timestamp"; kv[#kv + 1] = ts
  for i = 1, #fields, 2 do
    if not (pre and pre[fields[i]]) then kv[#kv + 1] = fields[i]; kv[#kv + 1] = fields[i + 1] end
  end
  if etype == "ApplicationReplaced" then
    kv[#kv + 1] = "application"; kv[#kv + 1] = app
    kv[#kv + 1] = "asterisk_id"; kv[#kv + 1] = sim.asterisk_id
  elseif etype == "DeviceStateChanged" then
    kv[#kv + 1] = "asterisk_id"; kv[#kv + 1] = sim.asterisk_id
  else
    kv[#kv + 1] = "asterisk_id"; kv[#kv + 1] = sim.asterisk_id
    kv[#kv + 1] = "application"; kv[#kv + 1] = app
  end
  return obj(kv)
end

local function filter_allows(app, etype)
  local f = app.filter
  if not f then return true end
  if f.allowed and #f.allowed > 0 then
    local ok = false
    for _, x in ipairs(f.allowed) do if x.type == etype then ok = true break end end
    if not ok then return false end
  end
  if f.disallowed then
    for _, x in ipairs(f.disallowed) do if x.type == etype then return false end end
  end
  return true
end

--- Deliver event `etype` with ordered `fields` ({k, v, ...}) to the apps
-- in `targets` (a list of app names, duplicates allowed as Asterisk does).
function Sim:deliver(etype, fields, targets, call)
  local sent = false
  for _, name in ipairs(targets) do
    local app = self.apps[name]
    if app and filter_allows(app, etype) then
      local ev = build_event(self, etype, fields, name)
      local text = json.encode(ev)
      self:record_event(etype, name, ev, call)
      for s in pairs(app.sessions) do
        local ok, err = pcall(s.send, text)
        if not ok then self:log("warn", "event send failed: %s", tostring(err)) end
      end
      for _, h in ipairs(self.event_hooks) do h(name, ev) end
      sent = true
    end
  end
  return sent
end

-- Apps subscribed to an object (set) plus every subscribeAll app.
function Sim:targets(subs, all)
  local list = {}
  if subs then
    for name in pairs(subs) do list[#list + 1] = name end
    table.sort(list)
  end
  if all ~= false then
    for _, name in ipairs(self.app_order) do
      local app = self.apps[name]
      if app and app.subscribe_all and not (subs and subs[name]) then list[#list + 1] = name end
    end
  end
  return list
end

function Sim:all_targets()
  return self:targets(nil, true)
end

--- Emit an event about a channel to every app subscribed to it.
function Sim:chan_event(ch, etype, fields)
  fields = fields or {}
  return self:deliver(etype, fields, self:targets(ch.subs), ch.call)
end

-- Applications -----------------------------------------------------------------

function Sim:app(name, create)
  local a = self.apps[name]
  if a == nil and create then
    a = { name = name, sessions = {}, channels = {}, bridges = {}, endpoints = {}, devices = {},
      subscribe_all = false }
    self.apps[name] = a
    self.app_order[#self.app_order + 1] = name
  end
  return a
end

--- Is the app registered (a WebSocket session is open for it)?
function Sim:app_active(name)
  local a = self.apps[name]
  return a ~= nil and next(a.sessions) ~= nil
end

--- Subscribe a set of app names to an object's subs table.
function Sim:subscribe(subs, appname)
  subs[appname] = true
end

--- Open an events session.  send(text) gets each event; close_fn() is called
-- when the simulator ends the session (app replaced, sim closed).
function Sim:connect_events(app_names, subscribe_all, send, close_fn)
  if type(app_names) == "string" then
    local list = {}
    for n in app_names:gmatch("[^,]+") do list[#list + 1] = n end
    app_names = list
  end
  if app_names == nil or #app_names == 0 then
    return nil, 400, "Missing parameter app"
  end
  local session = { apps = app_names, send = send, on_close = close_fn, open = true }
  for _, name in ipairs(app_names) do
    local a = self:app(name, true)
    -- a second connection for the same app replaces the first: the first
    -- gets ApplicationReplaced and no further events of that app, but stays
    -- open (as Asterisk does; closing it would make a reconnecting client
    -- take the app back, and so on)
    for old in pairs(a.sessions) do
      local ev = build_event(self, "ApplicationReplaced", {}, name)
      pcall(old.send, json.encode(ev))
      a.sessions[old] = nil
    end
    a.sessions[session] = true
    if subscribe_all then a.subscribe_all = true end
  end
  self:note(nil, "ws %s connected%s", table.concat(app_names, ","), subscribe_all and " (subscribeAll)" or "")
  function session.close()
    if not session.open then return end
    session.open = false
    for _, name in ipairs(app_names) do
      local a = self.apps[name]
      if a and a.sessions[session] then
        a.sessions[session] = nil
        if next(a.sessions) == nil then a.subscribe_all = false end
      end
    end
    self:note(nil, "ws %s closed", table.concat(app_names, ","))
  end
  for _, h in ipairs(self.connect_hooks) do h(app_names) end
  return session
end

-- Transcript -------------------------------------------------------------------

function Sim:record(entry)
  if not self.keep then return end
  entry.t = math.floor(self:elapsed() + 0.5)
  local tr = self.transcript
  tr[#tr + 1] = entry
  if self.on_transcript then self.on_transcript(entry) end
end

function Sim:record_event(etype, app, ev, call)
  if not self.keep then return end
  local ch = ev.channel or ev.peer
  local what = etype
  if ch then what = what .. " " .. ch.id .. "(" .. ch.state .. ")" end
  if ev.playback then what = what .. " " .. ev.playback.id .. "/" .. ev.playback.state end
  if ev.recording then what = what .. " " .. ev.recording.name .. "/" .. ev.recording.state end
  if ev.bridge then what = what .. " bridge=" .. ev.bridge.id end
  if ev.digit then what = what .. " digit=" .. ev.digit end
  if ev.dialstatus then what = what .. " dialstatus=" .. ev.dialstatus end
  if etype == "ChannelVarset" then what = what .. " " .. ev.variable .. "=" .. tostring(ev.value) end
  self:record { kind = "event", call = call, app = app, type = etype, summary = what }
end

function Sim:note(call, fmt, ...)
  self:record { kind = "note", call = call, summary = string.format(fmt, ...) }
end

function Sim:log(level, fmt, ...)
  if self.logger then self.logger(level, string.format(fmt, ...)) end
end

-- REST routing -------------------------------------------------------------------

-- Operations, paths and parameters come from the generated ARI schema
-- (lua/ari/schema.lua, see tools/gen-schema.lua).
local schema = require "ari.schema"
M.schema = schema

local function split_path(path)
  local segs = {}
  for s in path:gmatch("[^/]+") do segs[#segs + 1] = s end
  return segs
end

local function url_decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end
M.url_decode = url_decode

local function url_decode_path(s)
  if not s:find("%", 1, true) then return s end
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

function M.parse_query(q)
  local t = {}
  if type(q) == "table" then
    for k, v in pairs(q) do t[k] = type(v) == "table" and table.concat(v, ",") or tostring(v) end
    return t
  end
  if q == nil or q == "" then return t end
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    if not k then k, v = pair, "" end
    if k:find("[%%+]") then k = url_decode(k) end
    if v:find("[%%+]") then v = url_decode(v) end
    if t[k] then t[k] = t[k] .. "," .. v else t[k] = v end
  end
  return t
end

-- routes: { segs = {...}, resource = name, path = "/x/{id}", ops = { METHOD = op } },
-- found through a trie of path segments (literal segments win over {vars}).
local routes = {}
local trie = { lit = {} }
do
  local by_path = {}
  for _, op in ipairs(schema.operations) do
    local r = by_path[op.path]
    if r == nil then
      r = { segs = split_path(op.path), resource = op.resource, ops = {}, path = op.path }
      by_path[op.path] = r
      routes[#routes + 1] = r
      local node = trie
      for _, seg in ipairs(r.segs) do
        local var = seg:match("^{(.+)}$")
        if var then
          if node.var == nil then node.var = { name = var, node = { lit = {} } } end
          assert(node.var.name == var, "two variable names at one path position")
          node = node.var.node
        else
          local nx = node.lit[seg]
          if nx == nil then nx = { lit = {} }; node.lit[seg] = nx end
          node = nx
        end
      end
      node.route = r
    end
    r.ops[op.method] = op
  end
  table.sort(routes, function(x, y) return x.path < y.path end)
end
M.routes = routes

local function match_from(node, segs, i, vars)
  if i > #segs then return node.route end
  local seg = segs[i]
  local nx = node.lit[seg]
  if nx then
    local r = match_from(nx, segs, i + 1, vars)
    if r then return r end
  end
  local v = node.var
  if v then
    local r = match_from(v.node, segs, i + 1, vars)
    if r then vars[v.name] = url_decode_path(seg); return r end
  end
  return nil
end

local function match_route(segs)
  local vars = {}
  local r = match_from(trie, segs, 1, vars)
  return r, vars
end

local err_body = util.err_body
M.err_body = err_body

-- The resource modules: each returns (through ari.sim.util.module) {
-- methods = { name = fn }, routes = { resource = { nickname = handler } },
-- init = fn(sim, opts) } (any of them), installed here in this order.
local RESOURCE_MODULES = { "channels", "dialplan", "bridges", "media", "misc", "extmedia" }
local handlers = {}
M.handlers = handlers
local inits = {}
local resource_mods = {}
for _, modname in ipairs(RESOURCE_MODULES) do
  local mod = require("ari.sim." .. modname)
  resource_mods[modname] = mod
  for name, fn in pairs(mod.methods or {}) do
    assert(Sim[name] == nil, "two definitions of Sim:" .. name)
    Sim[name] = fn
  end
  for resource, ops in pairs(mod.routes or {}) do
    local t = handlers[resource]
    if t == nil then t = {}; handlers[resource] = t end
    for nickname, fn in pairs(ops) do
      assert(t[nickname] == nil, "two handlers for " .. resource .. "." .. nickname)
      t[nickname] = fn
    end
  end
  if mod.init then inits[#inits + 1] = mod.init end
end

-- Helpers of the resource modules that ari.sim has always exported.
do
  local ch, dp = resource_mods.channels, resource_mods.dialplan
  M.CAUSE_TXT, M.REASONS, M.TECHS = ch.CAUSE_TXT, ch.REASONS, ch.TECHS
  M.parse_callerid, M.split_args, M.alloc_failed = ch.parse_callerid, ch.split_args, ch.alloc_failed
  M.get_chan, M.stasis_chan, M.state_invalid = ch.get_chan, ch.stasis_chan, ch.state_invalid
  M.extension_pattern, M.dialplan_lookup = dp.extension_pattern, dp.dialplan_lookup
  M.wav = resource_mods.media.wav
  M.DEVICE_STATES = resource_mods.misc.DEVICE_STATES
end

local INT_TYPES = { int = true, long = true }
-- ast_true(): what Asterisk's glue reads as true; anything else is false
local TRUE = { yes = true, ["true"] = true, y = true, t = true, ["1"] = true, on = true }

local function scalar(v)
  if type(v) == "table" then
    local parts = {}
    for _, x in ipairs(v) do parts[#parts + 1] = tostring(x) end
    return table.concat(parts, ",")
  end
  return tostring(v)
end

-- Convert parameters the way Asterisk's generated glue does: query values
-- (or the same names in a JSON body) are converted with atoi/ast_true, a
-- body parameter gets the whole JSON body.  Neither required parameters nor
-- allowed values are checked there: each handler checks what Asterisk's
-- implementation checks.
local function collect_params(op, vars, query, body_obj)
  local p = {}
  for _, d in ipairs(op.params) do
    local v
    local where = d.where
    if where == "path" then v = vars[d.name]
    elseif where == "query" then
      v = query[d.name]
      if type(body_obj) == "table" then
        local b = body_obj[d.name]
        if b ~= nil and b ~= json.null then v = scalar(b) end
      end
    elseif where == "body" then
      -- Asterisk hands the whole JSON body to a body parameter (the
      -- implementation then reads e.g. its "variables" or "allowed" keys)
      v = body_obj
    end
    if v ~= nil and where ~= "body" then
      if INT_TYPES[d.type] then
        -- Asterisk parses with atoi-like leniency
        v = tonumber(v:match("^%s*([-+]?%d+)") or "") or 0
      elseif d.type == "boolean" then
        v = TRUE[v:lower()] == true
      end
    end
    if v == nil and d.default ~= nil then v = d.default end
    p[d.name] = v
  end
  return p
end

-- the Server header of every HTTP response, as Asterisk's (http.conf's
-- default servername)
Sim.SERVER_HEADER = "Asterisk/22.11.0"

local function response_headers(status, body)
  local h = { ["server"] = Sim.SERVER_HEADER, ["cache-control"] = "no-cache, no-store" }
  if body ~= nil then h["content-type"] = "application/json" end
  return h
end

--- Handle one REST request.  path may start with /ari.  query is a string
-- (raw, URL-encoded) or a table.  Returns status, body text (nil when
-- none), headers.
function Sim:request(method, path, query, body, headers)
  method = (method or "GET"):upper()
  headers = headers or {}
  if type(path) ~= "string" then path = "/" end
  local q = query
  if q == nil then
    local p, qs = path:match("^([^?]*)%?(.*)$")
    if p then path, q = p, qs end
  end
  local rel = path:gsub("^/ari", "", 1)
  local status, out, extra_headers = self:dispatch(method, rel, M.parse_query(q), body, headers)
  local text
  if out ~= nil then
    if type(out) == "string" then text = out else text = json.encode(out) end
  end
  local h = response_headers(status, text)
  if extra_headers then for k, v in pairs(extra_headers) do h[k] = v end end
  if not self.keep then
    self.current_call = nil
    return status, text, h
  end
  local call = self.current_call
  if call == nil then
    local kind, id = rel:match("^/(%a+)/([^/]+)")
    if kind == "channels" then call = self.chan_call[M.url_decode(id)]
    elseif kind == "playbacks" then call = self.pb_call[M.url_decode(id)]
    elseif kind == "bridges" and self.bridges[id] then call = self.bridges[id].call end
  end
  -- [ship] credentials passed as ?api_key=user:pass never reach the transcript
  if type(q) == "string" and q:find("api_key=", 1, true) then
    q = q:gsub("api_key=[^&]*", "api_key=***")
  end
  -- [/ship]
  self:record { kind = "rest", call = call, method = method,
    path = path .. ((type(q) == "string" and q ~= "") and ("?" .. q) or ""), status = status,
    summary = string.format("%s %s -> %d%s", method, path, status,
      (status >= 400 and type(out) == "table" and out.message) and (" (" .. out.message .. ")") or "") }
  self.current_call = nil
  return status, text, h
end

function Sim:dispatch(method, rel, query, body, headers)
  local segs = split_path(rel)
  local route, vars = match_route(segs)
  if route == nil then return 404, err_body("Resource not found") end
  local op = route.ops[method]
  if op == nil then return 405, err_body("Invalid method") end
  local body_obj
  if body ~= nil and body ~= "" then
    local ct = headers["content-type"] or headers["Content-Type"] or "application/json"
    if ct:find("json", 1, true) or ct == "" then
      local v, jerr = json.decode(body)
      if v == nil and jerr then return 400, err_body("Error parsing request body") end
      body_obj = v
    end
  end
  local p = collect_params(op, vars, query, body_obj)
  local h = handlers[route.resource] and handlers[route.resource][op.nickname]
  if h == nil then return 501, err_body("Not implemented") end
  local ok, status, out, eh = pcall(h, self, p, { body = body_obj, query = query, headers = headers, op = op })
  if not ok then
    self:log("error", "sim handler %s.%s failed: %s", route.resource, op.nickname, tostring(status))
    return 500, err_body("Internal Server Error")
  end
  return status, out, eh
end

-- Construction ------------------------------------------------------------------

local DEFAULT_AST_ID = "02:fc:00:00:00:01"

function M.new(opts)
  opts = opts or {}
  local self = setmetatable({}, Sim)
  self.speed = tonumber(opts.speed) or 1
  if self.speed <= 0 then self.speed = 1 end
  self.asterisk_id = opts.asterisk_id or DEFAULT_AST_ID
  self.user = opts.user or "asterisk"
  self.password = opts.password or "asterisk"
  self.logger = opts.logger
  -- transcript = false: keep no history (no transcript, no call labels), so
  -- that a long-running `sim --listen` under load does not grow
  self.keep = opts.transcript ~= false
  self.mono0 = core.now()
  self.epoch0 = os.time() * 1000
  self.started = self:timestamp()
  self.timers = {}
  self.uid_seq = 0
  self.seqs = {}
  self.apps, self.app_order = {}, {}
  self.channels, self.channel_order = {}, {}
  self.bridges, self.bridge_order = {}, {}
  self.playbacks = {}
  self.live_recordings = {}
  self.stored_recordings = {}
  self.global_vars = {}
  self.device_states = {}
  self.mailboxes = {}
  self.transcript = {}
  self.event_hooks = {}
  self.connect_hooks = {}
  self.calls = {}
  self.call_seq = 0
  self.chan_call, self.pb_call = {}, {}
  for _, init in ipairs(inits) do init(self, opts) end
  local scenario = require "ari.sim.scenario"
  self.scenario = scenario.load(opts.scenario)
  scenario.attach(self, self.scenario)
  return self
end

--- Stop every timer and end every session.  The simulator is unusable after.
function Sim:close()
  if self.closed then return end
  self.closed = true
  self:media_close_all()
  for h, t in pairs(self.timers) do t:stop(); self.timers[h] = nil end
  for _, app in pairs(self.apps) do
    for s in pairs(app.sessions) do
      s.open = false
      if s.on_close then pcall(s.on_close) end
    end
    app.sessions = {}
  end
  if self.server then pcall(self.server.close, self.server) end
end

--- Serve the simulator over HTTP + WebSocket (see ari.sim.transport).
function Sim:listen(opts)
  return require("ari.sim.transport").listen(self, opts)
end

return M
