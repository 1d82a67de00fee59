-- ari.sim.json: JSON for the simulator, over the C codec in ari.core.
--
-- Asterisk writes object keys in a fixed order (events start with "type",
-- except a few that do not); the simulator reproduces that order, so it
-- builds objects with json.obj{ "key", value, "key2", value2, ... }.  The
-- key list doubles as the object's metatable (its __jsonorder field points
-- at itself), which core.json_encode honours: one extra table per object,
-- no encoding work in Lua.  Plain tables are encoded as the C codec does
-- (keys in table order).  json.arr{} forces an array (also when empty);
-- json.null is JSON null.  Decoding is core.json_decode.
local core = require "ari.core"

local M = {}

local setmetatable, getmetatable = setmetatable, getmetatable
local ARRAY_MT = core.json_array_mt
M.null = core.json_null
M.array_mt = ARRAY_MT
M.encode = core.json_encode
M.decode = core.json_decode

--- json.obj{ k1, v1, k2, v2, ... } -> table with fields and a key order.
-- A nil value leaves its key out.
function M.obj(kv)
  local t, order = {}, {}
  local n = 0
  -- walk by keys, not #kv: a nil value leaves a hole that makes #kv unreliable
  local i = 1
  local k = kv[1]
  while k ~= nil do
    local v = kv[i + 1]
    if v ~= nil then
      if t[k] == nil then n = n + 1; order[n] = k end
      t[k] = v
    end
    i = i + 2
    k = kv[i]
  end
  order.__jsonorder = order
  return setmetatable(t, order)
end

--- Set (or add, at the end of the order) a field of an ordered object.
function M.set(t, k, v)
  local mt = getmetatable(t)
  local order = mt and mt.__jsonorder
  if order and t[k] == nil and v ~= nil then order[#order + 1] = k end
  t[k] = v
  if v == nil and order then
    for i, x in ipairs(order) do if x == k then table.remove(order, i) break end end
  end
end

function M.arr(t) return setmetatable(t or {}, ARRAY_MT) end

return M
