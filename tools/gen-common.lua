-- Shared by tools/gen-docs.lua and tools/gen-types.lua: views of
-- lua/ari/schema.lua and of the object methods ari.models derives from it.
local M = {}

package.cpath = (os.getenv("ARI_CPATH") and (os.getenv("ARI_CPATH") .. ";") or "") .. "build/?.so;" .. package.cpath

function M.sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end

--- resource -> operations sorted by nickname.
function M.operations_by_resource(schema)
  local by = {}
  for _, res in ipairs(schema.resources) do by[res] = {} end
  for _, op in ipairs(schema.operations) do
    by[op.resource] = by[op.resource] or {}
    table.insert(by[op.resource], op)
  end
  for _, list in pairs(by) do table.sort(list, function(a, b) return a.nickname < b.nickname end) end
  return by
end

--- Sorted model names, split into plain models and events (extends Event).
function M.model_lists(schema)
  local models, events = {}, {}
  for _, name in ipairs(M.sorted_keys(schema.models)) do
    if schema.models[name].extends == "Event" then events[#events + 1] = name
    else models[#models + 1] = name end
  end
  return models, events
end

local function var_name(model) return model:sub(1, 1):lower() .. model:sub(2) end
M.var_name = var_name

-- The object methods: the operations under a model's id path, with the path
-- parameters the object fills in (the same rule as ari.models).
local cache
local function methods(schema)
  if cache then return cache end
  local ok, models = pcall(require, "ari.models")
  if not ok then error("gen: cannot load ari.models (build first with make): " .. tostring(models)) end
  local by_op, by_model = {}, {}
  for _, name in ipairs(M.sorted_keys(models.ids)) do
    local def = models.ids[name]
    local resource, prefix, map = def[1], def[2], def[3]
    by_model[name] = {}
    for _, op in ipairs(schema.operations) do
      if op.resource == resource and (op.path == prefix or op.path:sub(1, #prefix + 1) == prefix .. "/") then
        local rest = {}
        for _, p in ipairs(op.params) do
          if p.required and not (p.where == "path" and map[p.name]) then rest[#rest + 1] = p.name .. " = ..." end
        end
        local call = var_name(name) .. ":" .. op.nickname ..
          (#rest > 0 and ("{ " .. table.concat(rest, ", ") .. " }") or "()")
        by_op[op] = by_op[op] or {}
        table.insert(by_op[op], call)
        table.insert(by_model[name], { nickname = op.nickname, op = op, fill = map, call = call })
      end
    end
    table.sort(by_model[name], function(a, b) return a.nickname < b.nickname end)
  end
  cache = { by_op = by_op, by_model = by_model, route = models.route_key }
  return cache
end
M.methods = methods

function M.object_methods(schema) return methods(schema).by_op end

function M.model_methods(schema)
  local out = {}
  for name, list in pairs(methods(schema).by_model) do
    out[name] = {}
    for _, m in ipairs(list) do out[name][#out[name] + 1] = m.call end
  end
  return out
end

function M.error_codes(op)
  local codes = {}
  for c in pairs(op.errors or {}) do codes[#codes + 1] = c end
  table.sort(codes)
  return codes
end

local REASONS = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [409] = "Conflict", [410] = "Gone", [412] = "Precondition Failed",
  [422] = "Unprocessable Entity", [500] = "Internal Server Error", [501] = "Not Implemented",
  [503] = "Service Unavailable",
}
function M.http_reason(c) return REASONS[c] or "" end

function M.returns_md(resp, type_md)
  if resp == "void" then return "`true` (no content)" end
  if resp == "binary" then return "`string` (the raw bytes)" end
  return type_md(resp)
end

--- Lua (LuaLS) type of a schema type.
function M.lua_type(t, models)
  if t == nil then return "any" end
  local inner = t:match("^List%[(.+)%]$")
  if inner then return M.lua_type(inner, models) .. "[]" end
  if t == "string" or t == "Date" then return "string" end
  if t == "int" or t == "long" then return "integer" end
  if t == "double" or t == "float" or t == "number" then return "number" end
  if t == "boolean" then return "boolean" end
  if t == "containers" then return "table<string, string>" end
  if t == "object" then return "table" end
  if t == "binary" then return "string" end
  if t == "void" then return "true" end
  if models and models[t] then return "ari." .. t end
  return "any"
end

return M
