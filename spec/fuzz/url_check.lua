-- url_check.lua: the invariants fuzz_url.c checks for each input s (also
-- used by spec/security_spec.lua on fixed inputs).  Returns check(s); an
-- invariant violation raises.
local http = require "ari.http"
local client_mod = require "ari.client"

local BASE = "http://127.0.0.1:1/ari"

local function unhex(e)
  return (e:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- An encoded value: only unreserved characters and %XX, never "." / "..",
-- and it decodes back to the input.
local function check_encoded(e, s, what)
  if e:find("[^A-Za-z0-9%-%._~%%]") then error(what .. ": reserved character in " .. e) end
  for pos in e:gmatch("()%%") do
    if not e:sub(pos + 1, pos + 2):match("^%x%x$") then error(what .. ": bad escape in " .. e) end
  end
  if e == "." or e == ".." then error(what .. ": dot segment " .. e) end
  if unhex(e) ~= s then error(what .. ": does not decode back: " .. e) end
end

local captured
local client = client_mod.connect {
  url = BASE, user = "u", password = "p", events = false,
  transport = function(req) captured = req; return 204, "", {} end,
}

local function split(str, sep)
  local out = {}
  for part in (str .. sep):gmatch("(.-)" .. sep:gsub("%p", "%%%0")) do out[#out + 1] = part end
  return out
end

local function check(s)
  check_encoded(http.urlencode(s), s, "urlencode")
  -- path and query through a whole client call
  captured = nil
  local ok, err = pcall(client.channels.setChannelVar, { channelId = s, variable = s, value = s })
  if s == "" then
    if ok or type(err) ~= "table" or err.kind ~= "param" then error("empty path id not refused") end
    return
  end
  if not ok then error("setChannelVar raised: " .. tostring(err)) end
  local url = captured.url
  local path, query = url:match("^" .. BASE:gsub("%p", "%%%0") .. "/channels/([^/?#]*)/variable%?([^#]*)$")
  if not path then error("URL escapes its template: " .. url) end
  check_encoded(path, s, "path segment")
  local seen = {}
  for _, kv in ipairs(split(query, "&")) do
    local k, v = kv:match("^([^=]*)=(.*)$")
    if not k then error("query part without '=': " .. kv) end
    check_encoded(v, s, "query value")
    seen[k] = (seen[k] or 0) + 1
  end
  if seen.variable ~= 1 or seen.value ~= 1 or seen.channelId then error("query keys wrong: " .. query) end
  -- a list parameter: items joined by "," must split back
  local _, q = client_mod.build(client_mod.operations.events.eventWebsocket, { app = { s, s .. "x" } })
  local v = q:match("^app=([^&]*)$")
  if not v then error("list query: " .. q) end
  local items = split(v, ",")
  if #items ~= 2 or unhex(items[1]) ~= s or unhex(items[2]) ~= s .. "x" then error("list items: " .. v) end
  -- a body: variables round-trip through the JSON encoder (or are refused as params)
  local bok, berr = pcall(client.channels.originate, { endpoint = "Local/" .. s, app = "a", variables = { [s] = s } })
  if not bok and (type(berr) ~= "table" or berr.kind ~= "param") then error("originate raised: " .. tostring(berr)) end
  if bok then
    local body = require("ari.core").json_decode(captured.body)
    if type(body) ~= "table" or type(body.variables) ~= "table" or body.variables[s] ~= s then
      error("body does not decode back: " .. tostring(captured.body))
    end
  end
end

return check
