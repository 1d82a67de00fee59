-- ari.config: settings shared by the host and the library.  Defaults come
-- from the environment (ARI_URL, ARI_USER, ARI_PASSWORD, ARI_APP); the
-- ari-lua host overrides them with its command-line flags.
local M = {
  url = os.getenv("ARI_URL") or "http://127.0.0.1:8088",
  user = os.getenv("ARI_USER"),
  password = os.getenv("ARI_PASSWORD"),
  app = os.getenv("ARI_APP"),
  shutdown_grace = 10000, -- ms
}

-- The application name rule: `--app NAME` (or ARI_APP) wins over the name
-- the script gives, so one script can serve several apps.  NAME replaces
-- the first name the script uses (ari.app "hello", ari.connect{ app =
-- "hello" }) wherever that name appears; a second, different name (a
-- script with several apps) is kept as given.  Without --app / ARI_APP the
-- script's name is used as is.
local errors = require "ari.errors"

local renamed -- { app = the --app value, from = the script's name it replaced (false: none) }

--- The Stasis application name to use for `given` (nil: the script gave
-- none).  claim = false only looks (does not fix the rule's first name).
function M.app_name(given, claim)
  local app = M.app
  if app == nil then return given end
  if renamed == nil or renamed.app ~= app then renamed = { app = app, from = nil } end
  if given == nil or given == app then
    if claim ~= false and renamed.from == nil then renamed.from = false end
    return app
  end
  if renamed.from == nil then
    if claim ~= false then renamed.from = given end
    return app
  end
  if renamed.from == given then return app end
  return given
end

--- Parse an address to listen on (--listen, --metrics): "HOST:PORT",
-- "[IPv6]:PORT", ":PORT", "PORT", a port number, or { host =, port = }.
-- HOST defaults to 127.0.0.1; PORT is 0..65535 (0: the system picks a free
-- one).  Returns host, port, or nil and an ari.errors value (kind "param",
-- parameter `what`, default "address").
function M.parse_address(v, what)
  what = what or "address"
  local function bad(fmt, ...)
    return nil, errors.new { kind = "param", operation = what, parameter = what,
      message = string.format(fmt, ...) }
  end
  local host, port
  if type(v) == "table" then
    host, port = v.host, v.port
    if host ~= nil and type(host) ~= "string" then return bad("host must be a string, got %s", type(host)) end
    if port == nil then port = 0 end
    if math.type(tonumber(port)) ~= "integer" then return bad("port must be a whole number, got %s", tostring(port)) end
    port = math.tointeger(tonumber(port))
  elseif math.type(v) == "integer" then
    port = v
  elseif type(v) == "string" then
    local p
    host, p = v:match("^%[([^%]]*)%]:(%d+)$")
    if host then
      if not host:find("^[%x:%.]+$") or not host:find(":", 1, true) then
        return bad("'%s': [%s] is not an IPv6 address", v, host)
      end
    else
      host, p = v:match("^([^:]*):(%d+)$")
      if not host then host, p = "", v:match("^(%d+)$") end
      if not p then
        if select(2, v:gsub(":", "")) > 1 then
          return bad("'%s': put an IPv6 address in brackets, as in [::1]:8090", v)
        end
        return bad("'%s' is not HOST:PORT, [IPv6]:PORT or PORT", v)
      end
      if host ~= "" and not host:find("^[%w%.%-_]+$") then return bad("'%s': '%s' is not a host name or address", v, host) end
    end
    port = tonumber(p)
    if math.type(port) ~= "integer" then return bad("'%s': port %s is out of range (0-65535)", v, p) end
  else
    return bad("expected HOST:PORT (a string), a port number or { host =, port = }, got %s", type(v))
  end
  if port < 0 or port > 65535 then
    return bad("%sport %d is out of range (0-65535)", type(v) == "string" and ("'" .. v .. "': ") or "", port)
  end
  if host == nil or host == "" then host = "127.0.0.1" end
  return host, port
end

return M
