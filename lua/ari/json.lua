-- ari.json: JSON <-> Lua, a thin layer over the C codec in ari.core.
--
--   json.decode(text [, type]) -> value | nil, "message at byte N", N
--       objects and arrays become tables, an empty array gets json.array_mt,
--       null becomes json.null, integral numbers that fit 64 bits integers.
--       `type` ("Channel", "List[Bridge]", ...) types the root with the
--       models registered by json.schema (ari.models registers ARI's).
--   json.encode(value) -> text; raises an ari error (kind "json") for values
--       JSON cannot carry (functions, NaN/inf, cycles, mixed or sparse tables).
--   json.null, json.array_mt, json.array(t) (marks t as an array, returns it),
--   json.is_array(t), json.schema(models | nil) (see core.json_schema).
local core = require "ari.core"
local errors = require "ari.errors"

local pcall, type, getmetatable, setmetatable = pcall, type, getmetatable, setmetatable
local encode_c, array_mt = core.json_encode, core.json_array_mt

local M = {
  null = core.json_null,
  array_mt = array_mt,
  decode = core.json_decode,
  schema = core.json_schema,
}

function M.encode(value)
  local ok, res = pcall(encode_c, value)
  if ok then return res end
  local msg = type(res) == "string" and res:gsub("^json_encode: ", "") or tostring(res)
  error(errors.new { kind = "json", operation = "json.encode", message = msg }, 2)
end

function M.array(t)
  return setmetatable(t or {}, array_mt)
end

function M.is_array(t)
  return type(t) == "table" and getmetatable(t) == array_mt
end

return M
