-- Generates lua/ari/schema.lua from the ARI swagger files.
--   lua5.4 tools/gen-schema.lua <dir with the ARI *.json files> [out.lua]
-- Without out.lua the result goes to stdout.  <dir>/versions/<release>/
-- (other Asterisk releases' api-docs, e.g. 18.26.4), where present, give
-- the version facts: for each operation, parameter, allowed value, model
-- and model property, the lowest Asterisk major that has it (`since`,
-- omitted when every known release has it).  Only facts are copied (names,
-- paths, methods, types, required flags, allowed values, defaults, error
-- codes with their reasons); no description/summary/notes text.  The output
-- is deterministic: every list is sorted.
local dir, out = arg[1], arg[2]
if not dir then
  io.stderr:write("usage: lua5.4 tools/gen-schema.lua <ari-api dir> [out.lua]\n")
  os.exit(2)
end

-- A JSON decoder: the project's own (build/ari/core.so) when it is built,
-- else lua-cjson.
local decode
do
  package.cpath = "build/?.so;" .. package.cpath
  local ok, core = pcall(require, "ari.core")
  if ok and type(core.json_decode) == "function" and core.json_decode("[1]") then
    decode = function(text)
      local v, err = core.json_decode(text)
      if v == nil then error(err) end
      return v
    end
  else
    local cjson = require "cjson"
    decode = cjson.decode
  end
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) == "number"
  end)
  return ks
end

-- resource files: every *.json except resources.json (the index)
local files = {}
do
  local p = assert(io.popen("ls '" .. dir:gsub("'", "'\\''") .. "'"))
  for name in p:lines() do
    local base = name:match("^(.-)%.json$")
    if base and base ~= "resources" then files[#files + 1] = base end
  end
  p:close()
  table.sort(files)
end

local function allowed_of(av)
  if type(av) ~= "table" then return nil end
  if av.valueType == "LIST" then
    local vs = {}
    for i, v in ipairs(av.values) do vs[i] = v end
    return { values = vs }
  elseif av.valueType == "RANGE" then
    return { min = av.min, max = av.max }
  end
  return nil
end

-- Version facts -------------------------------------------------------------
-- Asterisk's ARI major is the Asterisk major minus 12 (ARI 6 = Asterisk 18,
-- 8 = 20, 10 = 22, 11 = 23): the main directory's release is named by it.
local function ari_major(v) return math.tointeger(tonumber(tostring(v):match("^(%d+)"))) end
local function resource_files(d)
  local fs = {}
  local p = assert(io.popen("ls '" .. d:gsub("'", "'\\''") .. "' 2>/dev/null"))
  for name in p:lines() do
    local base = name:match("^(.-)%.json$")
    if base and base ~= "resources" then fs[#fs + 1] = base end
  end
  p:close()
  table.sort(fs)
  return fs
end

-- facts of one api-docs directory: a set of keys
local function facts_of(d)
  local f = {}
  for _, base in ipairs(resource_files(d)) do
    local doc = decode(read(d .. "/" .. base .. ".json"))
    for _, api in ipairs(doc.apis or {}) do
      for _, op in ipairs(api.operations or {}) do
        local k = base .. "." .. op.nickname
        f["op " .. k] = true
        for _, p in ipairs(op.parameters or {}) do
          f["param " .. k .. " " .. p.name] = true
          local av = p.allowableValues
          if type(av) == "table" and av.valueType == "LIST" then
            for _, v in ipairs(av.values) do f["value " .. k .. " " .. p.name .. " " .. tostring(v)] = true end
          end
        end
      end
    end
    for name, m in pairs(doc.models or {}) do
      f["model " .. name] = true
      for pname in pairs(m.properties or {}) do f["prop " .. name .. " " .. pname] = true end
    end
  end
  return f
end

local known = {} -- { asterisk = major, release = "18.26.4" | nil, ari = "6.0.1", facts = {...} }
do
  local main_ari = decode(read(dir .. "/resources.json")).apiVersion
  known[1] = { asterisk = ari_major(main_ari) + 12, ari = main_ari, facts = facts_of(dir) }
  local p = assert(io.popen("ls '" .. (dir .. "/versions"):gsub("'", "'\\''") .. "' 2>/dev/null"))
  for rel in p:lines() do
    local vd = dir .. "/versions/" .. rel
    local f = io.open(vd .. "/resources.json")
    if f then
      f:close()
      local a = decode(read(vd .. "/resources.json")).apiVersion
      known[#known + 1] = { asterisk = math.tointeger(tonumber(rel:match("^(%d+)"))), release = rel, ari = a,
        facts = facts_of(vd) }
    end
  end
  p:close()
  table.sort(known, function(a, b) return a.asterisk < b.asterisk end)
end

-- The lowest known Asterisk major having the fact; nil when the oldest has it.
local function since(key)
  for i, v in ipairs(known) do
    if v.facts[key] then
      if i == 1 then return nil end
      return v.asterisk
    end
  end
  return nil -- only in the main directory's files (not read as facts): cannot happen
end

local models, operations, resources = {}, {}, {}
local parent = {}
-- swagger document facts per resource (the simulator serves api-docs from them)
local docs = {}
local index = decode(read(dir .. "/resources.json"))

for _, base in ipairs(files) do
  local doc = decode(read(dir .. "/" .. base .. ".json"))
  resources[#resources + 1] = base
  local req
  if doc.requiresModules then
    req = {}
    for i, m in ipairs(doc.requiresModules) do req[i] = m end
  end
  docs[base] = { apiVersion = doc.apiVersion, swaggerVersion = doc.swaggerVersion,
    resourcePath = doc.resourcePath, requiresModules = req }
  for name, m in pairs(doc.models or {}) do
    if models[name] then error("model " .. name .. " defined twice") end
    local props = {}
    for pname, p in pairs(m.properties or {}) do
      props[pname] = { type = p.type, required = p.required == true, allowed = allowed_of(p.allowableValues),
        since = since("prop " .. name .. " " .. pname) }
    end
    local subtypes
    if m.subTypes then
      subtypes = {}
      for i, s in ipairs(m.subTypes) do subtypes[i] = s; parent[s] = name end
      table.sort(subtypes)
    end
    local msince = since("model " .. name)
    -- a property is as old as its model unless younger
    for _, q in pairs(props) do if q.since == msince then q.since = nil end end
    models[name] = { resource = base, own = props, discriminator = m.discriminator, subtypes = subtypes,
      since = msince }
  end
  for _, api in ipairs(doc.apis or {}) do
    for _, op in ipairs(api.operations or {}) do
      local params = {}
      local okey = base .. "." .. op.nickname
      for _, p in ipairs(op.parameters or {}) do
        local where = p.paramType
        local allowed = allowed_of(p.allowableValues)
        local values_since
        if allowed and allowed.values then
          for _, v in ipairs(allowed.values) do
            local s = since("value " .. okey .. " " .. p.name .. " " .. tostring(v))
            if s then values_since = values_since or {}; values_since[tostring(v)] = s end
          end
        end
        params[#params + 1] = {
          name = p.name,
          where = where,
          type = p.dataType,
          -- a path cannot be built without its parameters
          required = where == "path" or p.required == true,
          multiple = p.allowMultiple == true,
          allowed = allowed,
          default = p.defaultValue,
          since = since("param " .. okey .. " " .. p.name),
          values_since = values_since,
        }
      end
      local osince = since("op " .. okey)
      -- a parameter is as old as its operation unless younger
      for _, q in ipairs(params) do if q.since == osince then q.since = nil end end
      table.sort(params, function(a, b) return a.name < b.name end)
      local errs
      for _, e in ipairs(op.errorResponses or {}) do
        errs = errs or {}
        errs[math.tointeger(tonumber(e.code))] = e.reason
      end
      operations[#operations + 1] = {
        resource = base, nickname = op.nickname, method = op.httpMethod, path = api.path,
        params = params, errors = errs, response = op.responseClass, upgrade = op.upgrade,
        websocket_protocol = op.websocketProtocol, since = osince,
      }
    end
  end
end

-- extends (from the parents' subTypes) and flattened properties
for name, m in pairs(models) do
  m.extends = parent[name]
  local props = {}
  local chain, n = {}, name
  while n do chain[#chain + 1] = n; n = parent[n] end
  for i = #chain, 1, -1 do
    local cm = models[chain[i]]
    if cm then
      for pname, p in pairs(cm.own) do
        local q = { type = p.type, required = p.required, allowed = p.allowed, since = p.since }
        if chain[i] ~= name then q.from = chain[i] end
        props[pname] = q
      end
    end
  end
  m.properties = props
end

table.sort(operations, function(a, b)
  if a.resource ~= b.resource then return a.resource < b.resource end
  return a.nickname < b.nickname
end)

-- serializer: sorted keys, one model / operation per block
local buf = {}
local function w(s) buf[#buf + 1] = s end

local function ident(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") and not ({
    ["and"] = 1, ["break"] = 1, ["do"] = 1, ["else"] = 1, ["elseif"] = 1, ["end"] = 1,
    ["false"] = 1, ["for"] = 1, ["function"] = 1, ["goto"] = 1, ["if"] = 1, ["in"] = 1,
    ["local"] = 1, ["nil"] = 1, ["not"] = 1, ["or"] = 1, ["repeat"] = 1, ["return"] = 1,
    ["then"] = 1, ["true"] = 1, ["until"] = 1, ["while"] = 1 })[k]
end

local function ser(v)
  local t = type(v)
  if t == "string" then return string.format("%q", v)
  elseif t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.17g", v)
  elseif t == "boolean" then return tostring(v)
  elseif t == "table" then
    local parts = {}
    local n = #v
    for i = 1, n do parts[#parts + 1] = ser(v[i]) end
    for _, k in ipairs(sorted_keys(v)) do
      if not (math.type(k) == "integer" and k >= 1 and k <= n) then
        local key = ident(k) and k or ("[" .. ser(k) .. "]")
        parts[#parts + 1] = key .. " = " .. ser(v[k])
      end
    end
    return "{ " .. table.concat(parts, ", ") .. " }"
  end
  error("cannot serialize " .. t)
end

w("-- generated by tools/gen-schema.lua from the Asterisk 22 ARI spec; do not edit\n")
w("-- Regenerate: lua5.4 tools/gen-schema.lua ../shared/ari-api lua/ari/schema.lua\n")
w("-- (`since` and M.versions: from the api-docs of the releases in ../shared/ari-api/versions/)\n")
w("local M = {}\n\n")
w("M.resources = " .. ser(resources) .. "\n\n")
w("-- swagger documents: the index's and each resource's versions, paths, modules\n")
w("M.api_version = " .. ser(index.apiVersion) .. "\n")
w("M.swagger_version = " .. ser(index.swaggerVersion) .. "\n")
w("-- releases whose api-docs gave the version facts (`since`: the lowest\n")
w("-- Asterisk major having an operation, parameter, value, model or property;\n")
w("-- absent when the oldest listed has it)\n")
w("M.versions = {\n")
for _, v in ipairs(known) do
  w("  " .. ser({ asterisk = v.asterisk, ari = v.ari, release = v.release }) .. ",\n")
end
w("}\n")
w("M.docs = {\n")
for _, base in ipairs(resources) do w(string.format("  [%q] = %s,\n", base, ser(docs[base]))) end
w("}\n\n")
w("M.models = {}\n")
for _, name in ipairs(sorted_keys(models)) do
  local m = models[name]
  w(string.format("M.models[%q] = {\n", name))
  w("  name = " .. ser(name) .. ",\n")
  w("  resource = " .. ser(m.resource) .. ",\n")
  if m.extends then w("  extends = " .. ser(m.extends) .. ",\n") end
  if m.discriminator then w("  discriminator = " .. ser(m.discriminator) .. ",\n") end
  if m.subtypes then w("  subtypes = " .. ser(m.subtypes) .. ",\n") end
  if m.since then w("  since = " .. ser(m.since) .. ",\n") end
  w("  properties = {\n")
  for _, pname in ipairs(sorted_keys(m.properties)) do
    w(string.format("    [%q] = %s,\n", pname, ser(m.properties[pname])))
  end
  w("  },\n}\n")
end
w("\nM.operations = {\n")
for _, op in ipairs(operations) do
  w("  {\n")
  for _, k in ipairs({ "resource", "nickname", "method", "path", "response", "upgrade", "websocket_protocol", "since" }) do
    if op[k] ~= nil then w(string.format("    %s = %s,\n", k, ser(op[k]))) end
  end
  if op.errors then w("    errors = " .. ser(op.errors) .. ",\n") end
  w("    params = {\n")
  for _, p in ipairs(op.params) do w("      " .. ser(p) .. ",\n") end
  w("    },\n  },\n")
end
w("}\n\nreturn M\n")

local text = table.concat(buf)
if out then
  local f = assert(io.open(out, "wb"))
  f:write(text)
  f:close()
else
  io.write(text)
end
