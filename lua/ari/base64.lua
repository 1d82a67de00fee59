-- ari.base64: standard Base64 (RFC 4648 section 4: the "+/" alphabet, "="
-- padding), for Basic auth headers (and for redacting their values from
-- logs).
--
--   local base64 = require "ari.base64"
--   base64.encode("u:p")      -> "dTpw"      (base64("u:p") works too)
--   base64.decode("dTpw")     -> "u:p"
--   base64.decode("dTp")      -> nil, "base64: length 3 is not a multiple of 4"
--
-- decode is strict: only the alphabet, padding only at the end and only as
-- much as the length needs, no white space, and the bits the padding leaves
-- over must be zero (one text per value, as RFC 4648 section 3.5 allows a
-- decoder to demand).  Anything else gives nil and a message.
local byte, sub, char, concat, format = string.byte, string.sub, string.char, table.concat, string.format

local CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local VALUE = {}
for i = 1, 64 do VALUE[byte(CHARS, i)] = i - 1 end
local PAD = byte("=")

local M = {}

--- Encode the string s.
function M.encode(s)
  local out, n = {}, #s
  for i = 1, n, 3 do
    local a, b, c = byte(s, i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1, c2 = (v >> 18) & 63, (v >> 12) & 63
    local c3, c4 = (v >> 6) & 63, v & 63
    out[#out + 1] = sub(CHARS, c1 + 1, c1 + 1) .. sub(CHARS, c2 + 1, c2 + 1) ..
      (b and sub(CHARS, c3 + 1, c3 + 1) or "=") .. (c and sub(CHARS, c4 + 1, c4 + 1) or "=")
  end
  return concat(out)
end

--- Decode the string s; nil and a message when it is not Base64.
function M.decode(s)
  if type(s) ~= "string" then return nil, "base64: expected a string, got " .. type(s) end
  local n = #s
  if n % 4 ~= 0 then return nil, format("base64: length %d is not a multiple of 4", n) end
  local pad = 0
  if n > 0 and byte(s, n) == PAD then pad = byte(s, n - 1) == PAD and 2 or 1 end
  local out = {}
  for i = 1, n, 4 do
    local v = 0
    local last = i + 3 == n
    for j = i, i + 3 do
      local c = byte(s, j)
      local d = VALUE[c]
      if d == nil then
        if not (c == PAD and last and j > n - pad) then
          return nil, format("base64: invalid character %q at %d", sub(s, j, j), j)
        end
        d = 0
      end
      v = (v << 6) | d
    end
    if last and pad == 2 then
      if v & 0xffff ~= 0 then return nil, "base64: non-zero bits before the padding" end
      out[#out + 1] = char(v >> 16)
    elseif last and pad == 1 then
      if v & 0xff ~= 0 then return nil, "base64: non-zero bits before the padding" end
      out[#out + 1] = char(v >> 16, (v >> 8) & 0xff)
    else
      out[#out + 1] = char(v >> 16, (v >> 8) & 0xff, v & 0xff)
    end
  end
  return concat(out)
end

-- base64(s) encodes, as the module did when it was only an encoder
return setmetatable(M, { __call = function(_, s) return M.encode(s) end })
