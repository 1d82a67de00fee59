-- ari.base64: standard Base64 (RFC 4648 alphabet, padded), for Basic auth
-- headers and for redacting their values from logs.
local byte, sub, concat = string.byte, string.sub, table.concat

local CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

return function(s)
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
