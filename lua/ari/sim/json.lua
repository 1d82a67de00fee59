-- ari.sim.json: the simulator's own small JSON codec.
--
-- Asterisk writes object keys in a fixed order (events start with "type",
-- except a few that do not); the simulator reproduces that order, so it
-- builds objects with json.obj{ "key", value, "key2", value2, ... }.
-- Plain Lua tables are encoded too (keys sorted).  json.arr{} forces an
-- array (also when empty); json.null is JSON null.
local M = {}

local ORDER = setmetatable({}, { __mode = "k" }) -- obj -> key list
local ARRAY_MT = { __name = "ari.sim.json.array" }
M.null = setmetatable({}, { __tostring = function() return "null" end, __name = "ari.sim.json.null" })
M.array_mt = ARRAY_MT

--- json.obj{ k1, v1, k2, v2, ... } -> table with fields and a key order.
-- A nil value leaves its key out.
function M.obj(kv)
  local t, order = {}, {}
  for i = 1, #kv, 2 do
    local k, v = kv[i], kv[i + 1]
    if v ~= nil then
      if t[k] == nil then order[#order + 1] = k end
      t[k] = v
    end
  end
  -- pairs with odd length: last key with nil value dropped
  ORDER[t] = order
  return t
end

--- Set (or add, at the end of the order) a field of an ordered object.
function M.set(t, k, v)
  local order = ORDER[t]
  if order and t[k] == nil and v ~= nil then order[#order + 1] = k end
  t[k] = v
  if v == nil and order then
    for i, x in ipairs(order) do if x == k then table.remove(order, i) break end end
  end
end

function M.arr(t) return setmetatable(t or {}, ARRAY_MT) end

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function esc_str(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  if getmetatable(t) == ARRAY_MT then return true end
  if ORDER[t] then return false end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local encode
local function enc(v, out, depth)
  local ty = type(v)
  if v == nil or v == M.null then out[#out + 1] = "null"
  elseif ty == "boolean" then out[#out + 1] = v and "true" or "false"
  elseif ty == "number" then
    if v ~= v or v == math.huge or v == -math.huge then error("json: cannot encode " .. tostring(v)) end
    if math.type(v) == "integer" then out[#out + 1] = tostring(v)
    elseif v == math.floor(v) and math.abs(v) < 2^53 then out[#out + 1] = string.format("%d", v)
    else out[#out + 1] = string.format("%.14g", v) end
  elseif ty == "string" then out[#out + 1] = esc_str(v)
  elseif ty == "table" then
    if depth > 100 then error("json: nesting too deep") end
    if is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        enc(v[i], out, depth + 1)
      end
      out[#out + 1] = "]"
    else
      local keys = ORDER[v]
      if keys == nil then
        keys = {}
        for k in pairs(v) do keys[#keys + 1] = tostring(k) end
        table.sort(keys)
      end
      out[#out + 1] = "{"
      local first = true
      for _, k in ipairs(keys) do
        local x = v[k]
        if x ~= nil then
          if not first then out[#out + 1] = "," end
          first = false
          out[#out + 1] = esc_str(k)
          out[#out + 1] = ":"
          enc(x, out, depth + 1)
        end
      end
      out[#out + 1] = "}"
    end
  else
    error("json: cannot encode a " .. ty)
  end
end
function encode(v)
  local out = {}
  enc(v, out, 0)
  return table.concat(out)
end
M.encode = encode

-- Decoder -----------------------------------------------------------------
local decode_value
local function skip(s, i)
  return s:find("[^ \t\r\n]", i) or #s + 1
end
local function err(i, msg) error({ json_error = (msg or "invalid JSON") .. " at byte " .. i }, 0) end

local function utf8_char(cp) return utf8.char(cp) end

local function decode_string(s, i)
  -- s:sub(i,i) == '"'
  local parts, j = {}, i + 1
  while true do
    local a, b = s:find('["\\%c]', j)
    if not a then err(i, "unterminated string") end
    parts[#parts + 1] = s:sub(j, a - 1)
    local c = s:sub(a, a)
    if c == '"' then return table.concat(parts), a + 1 end
    if c ~= "\\" then err(a, "control character in string") end
    local e = s:sub(a + 1, a + 1)
    local simple = ({ ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" })[e]
    if simple then
      parts[#parts + 1] = simple
      j = a + 2
    elseif e == "u" then
      local hex = s:sub(a + 2, a + 5)
      if not hex:match("^%x%x%x%x$") then err(a, "bad \\u escape") end
      local cp = tonumber(hex, 16)
      j = a + 6
      if cp >= 0xD800 and cp <= 0xDBFF then
        local lo = s:match("^\\u(%x%x%x%x)", j)
        lo = lo and tonumber(lo, 16)
        if not lo or lo < 0xDC00 or lo > 0xDFFF then err(a, "lone surrogate") end
        cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
        j = j + 6
      elseif cp >= 0xDC00 and cp <= 0xDFFF then
        err(a, "lone surrogate")
      end
      parts[#parts + 1] = utf8_char(cp)
    else
      err(a, "bad escape")
    end
  end
end

function decode_value(s, i, depth)
  if depth > 200 then err(i, "nesting too deep") end
  i = skip(s, i)
  local c = s:sub(i, i)
  if c == "{" then
    local t = {}
    i = skip(s, i + 1)
    if s:sub(i, i) == "}" then return t, i + 1 end
    while true do
      if s:sub(i, i) ~= '"' then err(i, "expected a key") end
      local k
      k, i = decode_string(s, i)
      i = skip(s, i)
      if s:sub(i, i) ~= ":" then err(i, "expected ':'") end
      local v
      v, i = decode_value(s, i + 1, depth + 1)
      t[k] = v
      i = skip(s, i)
      local d = s:sub(i, i)
      if d == "}" then return t, i + 1 end
      if d ~= "," then err(i, "expected ',' or '}'") end
      i = skip(s, i + 1)
    end
  elseif c == "[" then
    local t = setmetatable({}, ARRAY_MT)
    i = skip(s, i + 1)
    if s:sub(i, i) == "]" then return t, i + 1 end
    while true do
      local v
      v, i = decode_value(s, i, depth + 1)
      t[#t + 1] = v
      i = skip(s, i)
      local d = s:sub(i, i)
      if d == "]" then return t, i + 1 end
      if d ~= "," then err(i, "expected ',' or ']'") end
      i = i + 1
    end
  elseif c == '"' then
    return decode_string(s, i)
  elseif s:find("^true", i) then return true, i + 4
  elseif s:find("^false", i) then return false, i + 5
  elseif s:find("^null", i) then return M.null, i + 4
  else
    local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if num and #num > 0 then
      local v = math.tointeger(tonumber(num)) or tonumber(num)
      if v == nil then err(i, "bad number") end
      return v, i + #num
    end
    err(i, "unexpected character")
  end
end

--- json.decode(text) -> value, or nil, "message at byte N".
function M.decode(s)
  if type(s) ~= "string" then return nil, "not a string" end
  local ok, v, i = pcall(decode_value, s, 1, 0)
  if not ok then
    if type(v) == "table" and v.json_error then return nil, v.json_error end
    return nil, tostring(v)
  end
  i = skip(s, i)
  if i <= #s then return nil, "trailing data at byte " .. i end
  return v
end

return M
