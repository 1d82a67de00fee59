-- ari.url: percent-encoding for ARI URLs.
local M = {}

local function hex(c) return string.format("%%%02X", string.byte(c)) end

--- Percent-encode everything but RFC 3986 unreserved characters.
function M.encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", hex))
end

--- Encode s as exactly one path segment: '/', '?', '#', '%' are encoded,
-- and a segment made only of dots ("." / "..") is encoded too, so that no
-- value can reach another URL.  Empty segments are refused (nil, err).
function M.segment(s)
  s = tostring(s)
  if s == "" then return nil, "empty path segment" end
  local e = M.encode(s)
  if e:match("^%.+$") then e = e:gsub("%.", "%%2E") end
  return e
end

--- Build "a=1&b=2" from an array of {name, value} pairs (values already
-- strings).
function M.query(pairs_)
  local out = {}
  for i, kv in ipairs(pairs_) do out[i] = M.encode(kv[1]) .. "=" .. kv[2] end
  return table.concat(out, "&")
end

return M
