-- ari.models: the 85 ARI models as Lua types.
--
-- Every model gets one metatable (`__name`/`__model` = model name, `__index`
-- = its methods, a short `__tostring`).  They are registered with the C JSON
-- decoder (core.json_schema) when this module loads, so events decoded by the
-- WebSocket arrive typed; REST responses are typed by `cast` from the
-- operation's responseClass.
--
-- How an object knows its client: the client records, in a weak-keyed map,
-- object -> client for every model object it hands out (REST results when
-- they arrive; events only when they are delivered to a handler, so events
-- nobody listens to cost nothing).  Methods look the client up there; an
-- object that was never handed out by a client (e.g. decoded by hand) uses
-- the only connected client, if there is exactly one.
local schema = require "ari.schema"

local M = {}

local models = schema.models
local mts = {}           -- name -> metatable
local by_mt = {}         -- metatable -> name
local methods = {}       -- name -> method table (the metatables' __index)
local typed = {}         -- name -> { field = type } for fields cast must visit
local owner = setmetatable({}, { __mode = "k" })
local clients = setmetatable({}, { __mode = "k" })

M.mt, M.methods = mts, methods

-- Which path parameters of which operations an object fills in itself.
-- model -> { resource, path prefix, { path param = object field } }
local ids = {
  Channel = { "channels", "/channels/{channelId}", { channelId = "id" } },
  Bridge = { "bridges", "/bridges/{bridgeId}", { bridgeId = "id" } },
  Playback = { "playbacks", "/playbacks/{playbackId}", { playbackId = "id" } },
  LiveRecording = { "recordings", "/recordings/live/{recordingName}", { recordingName = "name" } },
  StoredRecording = { "recordings", "/recordings/stored/{recordingName}", { recordingName = "name" } },
  DeviceState = { "deviceStates", "/deviceStates/{deviceName}", { deviceName = "name" } },
  Mailbox = { "mailboxes", "/mailboxes/{mailboxName}", { mailboxName = "name" } },
  Sound = { "sounds", "/sounds/{soundId}", { soundId = "id" } },
  Application = { "applications", "/applications/{applicationName}", { applicationName = "name" } },
  Endpoint = { "endpoints", "/endpoints/{tech}", { tech = "technology", resource = "resource" } },
  Module = { "asterisk", "/asterisk/modules/{moduleName}", { moduleName = "name" } },
  LogChannel = { "asterisk", "/asterisk/logging/{logChannelName}", { logChannelName = "channel" } },
}
M.ids = ids

-- Objects events are routed to: model -> function(obj) -> routing key.
local route_key = {
  Channel = function(o) return o.id end,
  Bridge = function(o) return o.id end,
  Playback = function(o) return o.id end,
  LiveRecording = function(o) return o.name end,
  DeviceState = function(o) return o.name end,
  Endpoint = function(o)
    if o.technology == nil or o.resource == nil then return nil end
    return o.technology .. "/" .. o.resource
  end,
}
M.route_key = route_key

--- Register a client (so that a lone client can serve objects nobody
-- attached) / drop it.
function M.add_client(c) clients[c] = true end
function M.remove_client(c) clients[c] = nil end
--- Every client not closed yet: for c in models.each_client() do ... end
function M.each_client() return next, clients, nil end

--- The client an object belongs to (or nil).
function M.client_of(obj)
  local c = owner[obj]
  if c then return c end
  local only
  for k in pairs(clients) do
    if only then return nil end
    only = k
  end
  return only
end

local function list_of(t) return type(t) == "string" and t:match("^List%[(.+)%]$") end

local function tostring_for(name)
  local m = models[name]
  local keys = {}
  for _, k in ipairs({ "id", "technology", "resource", "name", "channel", "state" }) do
    local p = m.properties[k]
    if p and (p.type == "string") then keys[#keys + 1] = k end
  end
  if #keys == 0 then
    -- no id-like field: the first few scalar fields, by name
    local names = {}
    for k, p in pairs(m.properties) do
      if p.type == "string" or p.type == "int" or p.type == "long" or p.type == "boolean" then
        names[#names + 1] = k
      end
    end
    table.sort(names)
    for i = 1, math.min(3, #names) do keys[i] = names[i] end
  end
  if m.properties.type and m.extends then
    -- events: the type and the ids of what they carry
    return function(v)
      local parts = {}
      for f, t in pairs(typed[name]) do
        local x = v[f]
        if type(x) == "table" and route_key[t] then
          local k = route_key[t](x)
          if k ~= nil then parts[#parts + 1] = f .. "=" .. tostring(k) end
        end
      end
      table.sort(parts)
      return string.format("%s(%s)", tostring(rawget(v, "type") or name), table.concat(parts, ", "))
    end
  end
  return function(v)
    local parts = {}
    for _, k in ipairs(keys) do
      local x = rawget(v, k)
      if x ~= nil then parts[#parts + 1] = tostring(x) end
    end
    return string.format("%s(%s)", name, table.concat(parts, ", "))
  end
end

for name, m in pairs(models) do
  local meth = {}
  local mt = { __name = name, __model = name, __index = meth }
  mts[name], by_mt[mt], methods[name] = mt, name, meth
  local tf = {}
  for f, p in pairs(m.properties) do
    local t = p.type
    local inner = list_of(t) or t
    if t == "int" or t == "long" or t == "double" or models[inner] or (list_of(t) and inner ~= "string") then
      tf[f] = t
    end
  end
  typed[name] = tf
end
for name in pairs(models) do mts[name].__tostring = tostring_for(name) end

--- The model name of a value, or nil.
function M.model_of(v)
  local mt = getmetatable(v)
  return mt and by_mt[mt] or nil
end

local cast

local function cast_model(v, name)
  if type(v) ~= "table" then return v end
  -- a discriminated subtype ("type" names a model derived from name)
  local sub = rawget(v, "type")
  local base
  if type(sub) == "string" and sub ~= name and mts[sub] and models[sub].extends then
    local n = sub
    while n and n ~= name do n = models[n].extends end
    if n == name then base, name = name, sub end
  end
  local mt = getmetatable(v)
  if mt == mts[name] then return v end -- typed by C already, nested included
  -- typed by C as the base type (e.g. "Message"): the subtype its "type" names
  if mt == nil or (base and mt == mts[base]) then setmetatable(v, mts[name]) elseif by_mt[mt] == nil then return v end
  for f, t in pairs(typed[name]) do
    local x = rawget(v, f)
    if x ~= nil then v[f] = cast(x, t) end
  end
  return v
end

--- Give a decoded JSON value (plain tables) the types of `t` ("Channel",
-- "List[Channel]", "int", "Message", ...), in place; returns it.
function cast(v, t)
  if t == "int" or t == "long" then
    if type(v) == "number" then return math.tointeger(v) or v end
    return v
  elseif t == "double" then
    if math.type(v) == "integer" then return v + 0.0 end
    return v
  end
  local inner = list_of(t)
  if inner then
    if type(v) == "table" then
      for i = 1, #v do v[i] = cast(v[i], inner) end
    end
    return v
  end
  if models[t] then return cast_model(v, t) end
  return v
end
M.cast = cast

-- [bench] Only objects that have methods need an owner (client_of is only
-- used by methods), and only fields that can hold such objects (directly,
-- in a list, or further down) need a visit: a Channel's CallerID and
-- DialplanCEP are never walked.  Built on first use (methods are added
-- below).
local owned, model_fields -- name -> has methods; name -> { field, ... }
local function build_fields()
  owned = {}
  local holds = {}
  for name in pairs(models) do
    owned[name] = next(methods[name]) ~= nil
    holds[name] = owned[name]
  end
  local changed = true
  while changed do
    changed = false
    for name, def in pairs(models) do
      if not holds[name] then
        for _, t in pairs(typed[name]) do
          if holds[list_of(t) or t] then holds[name] = true; changed = true; break end
        end
      end
      -- a field of a base type may hold a subtype
      if holds[name] and def.extends and not holds[def.extends] then holds[def.extends] = true; changed = true end
    end
  end
  model_fields = {}
  for name in pairs(models) do
    local mf = {}
    for f, t in pairs(typed[name]) do
      if holds[list_of(t) or t] then mf[#mf + 1] = f end
    end
    model_fields[name] = mf
  end
end

local function attach(v, c, depth)
  if type(v) ~= "table" or depth > 8 then return end
  local name = by_mt[getmetatable(v)]
  if name then
    if owned[name] then owner[v] = c end
    local mf = model_fields[name]
    for i = 1, #mf do
      local x = rawget(v, mf[i])
      if type(x) == "table" then attach(x, c, depth + 1) end
    end
  elseif getmetatable(v) == nil or #v > 0 then
    for i = 1, #v do attach(v[i], c, depth + 1) end
  end
end
-- [/bench]

--- Record that the model objects in v (walked along typed fields and
-- lists) belong to client c.
function M.attach(v, c)
  if model_fields == nil then build_fields() end
  attach(v, c, 0)
end

-- Methods from operations: every operation under a model's id path.
local function make_method(resource, nickname, fill)
  return function(self, params)
    local c = M.client_of(self)
    if not c then
      error(require("ari.errors").new { kind = "client", operation = resource .. "." .. nickname,
        message = "this object belongs to no client" }, 2)
    end
    local p = {}
    if params ~= nil then
      if type(params) ~= "table" then
        error(require("ari.errors").param({ resource = resource, nickname = nickname },
          nil, "parameters must be a table"), 2)
      end
      for k, x in pairs(params) do p[k] = x end
    end
    for pn, field in pairs(fill) do p[pn] = rawget(self, field) end
    return c[resource][nickname](p)
  end
end

for name, def in pairs(ids) do
  local resource, prefix, map = def[1], def[2], def[3]
  for _, op in ipairs(schema.operations) do
    if op.resource == resource and (op.path == prefix or op.path:sub(1, #prefix + 1) == prefix .. "/") then
      local fill = {}
      for _, p in ipairs(op.params) do
        if p.where == "path" and map[p.name] then fill[p.name] = map[p.name] end
      end
      methods[name][op.nickname] = make_method(resource, op.nickname, fill)
    end
  end
end

-- Event subscription on routable objects: obj:on(type, fn), obj:once,
-- obj:off, obj:wait -- forwarded to the object's client.
for name, keyf in pairs(route_key) do
  local meth = methods[name]
  local function client(self)
    local c = M.client_of(self)
    if not c then error(require("ari.errors").usage("ari: this " .. name .. " belongs to no client", 3), 0) end
    local k = keyf(self)
    if k == nil then error(require("ari.errors").usage("ari: this " .. name .. " has no id", 3), 0) end
    return c, k
  end
  function meth:on(etype, fn) local c, k = client(self); return c:_obj_on(name, k, etype, fn, false) end
  function meth:once(etype, fn) local c, k = client(self); return c:_obj_on(name, k, etype, fn, true) end
  function meth:off(etype, fn) local c, k = client(self); return c:_obj_off(name, k, etype, fn) end
  function meth:wait(etype, filter, timeout)
    local c, k = client(self)
    return c:_obj_wait(name, k, etype, filter, timeout)
  end
end

-- Register every model with the C decoder.
local core = require "ari.core"
local json_decode = core.json_decode
do
  local reg = {}
  for name, m in pairs(models) do
    local fields = {}
    for f, p in pairs(m.properties) do fields[f] = p.type end
    reg[name] = { mt = mts[name], fields = fields }
  end
  core.json_schema(reg)
end

--- Decode JSON text as type t ("Channel", "List[Bridge]", ...): value, or
-- nil, err.  Without t, an object whose "type" names a model (an event)
-- gets that model, as on the events WebSocket.
function M.decode(text, t)
  local v, err = json_decode(text, t)
  if v == nil then return nil, err end
  if t then v = cast(v, t)
  elseif type(v) == "table" and getmetatable(v) == nil and type(rawget(v, "type")) == "string"
    and mts[v.type] then
    v = cast(v, v.type) -- an event names its model itself
  end
  return v
end

--- A plain value of schema type t ("ChannelTransfer", "List[Channel]",
-- "int"...) built from the schema alone: for a model, its required fields
-- (and at the top level every field), allowed values where the schema lists
-- them, `type` set for events; placeholder scalars otherwise.  For tests,
-- benchmarks and documentation of event types a capture does not have.
function M.example(t, depth, hint)
  depth = depth or 0
  local inner = t:match("^List%[(.+)%]$")
  if inner then return { M.example(inner, depth + 1, hint) } end
  local m = schema.models[t]
  if m then
    local o = {}
    for f, p in pairs(m.properties or {}) do
      if p.required or depth < 1 then
        if p.allowed and p.allowed.values then o[f] = p.allowed.values[1]
        elseif f == "type" then o[f] = t
        else o[f] = M.example(p.type, depth + 1, f) end
      end
    end
    return o
  end
  if t == "int" or t == "long" then return 1 end
  if t == "double" then return 0.5 end
  if t == "boolean" then return false end
  if t == "Date" then return "2026-11-26T08:11:35.621+0000" end
  if t == "object" then return {} end
  return "id-" .. tostring(hint)
end

return M
