-- ari.errors: the one family of error values ari-lua raises or returns.
--
-- Every error is a table with a readable __tostring and at least:
--   kind       what failed (the list below)
--   status     the HTTP status, nil when there is none
--   message    what happened, for people
-- and, where they apply:
--   operation  "channels.answer", "play", "ari.connect", ...
--   method, path  what was (or would have been) requested
--   parameter  the offending parameter (kind "param")
--   body, headers  the raw response (kind "http")
--   transport  the transport failure (kind "transport"): one of the
--              ari.http kinds below
--   reason     the finer cause (kinds "connect", "call")
--
-- Kinds in use:
--   http         Asterisk answered with a non-2xx status (ari.client)
--   transport    a REST request got no answer (ari.client); .transport
--                says why: connect | timeout | reset | tls | too_large |
--                closed | other
--   param        a bad parameter, caught before anything was sent; a bad
--                --listen / --metrics address (ari.config.parse_address)
--   decode       a 2xx answer that is not the JSON the operation returns
--   unsupported  the server's ARI version lacks the operation, a parameter
--                or a value (.since: the first major that has it)
--   connect      the first contact with Asterisk failed (ari.connect;
--                .reason: resolve | refused | timeout | tls | auth | ...)
--   listen       --listen / --metrics could not bind (.host, .port)
--   client       a model object's method called with no client behind it
--   json         a value ari.json cannot encode
--   websocket    an ari.ws connection or send failed
--   connect, timeout, reset, tls, too_large, other, invalid
--                ari.http's own failures (ari.http.Error; ari.wstransport
--                uses connect, timeout and reset), which ari.client wraps
--                as kind "transport"
--   hangup       the call hung up or left the app: every wait of a call
--                raises it from then on (ari.call.Hangup)
--   call         a call helper failed: play, record, dial, originate ...;
--                .reason: busy | no_answer | failed | invalid | ...
--                (ari.call.CallError)
--   watchdog     a call ran too long without yielding (ari.watchdog)
--   usage        the script called ari-lua wrongly (a missing argument, a
--                function expected...): .where is the script's "file:line",
--                and tostring reads as Lua's own "file:line: message"
--
--   errors.is(e)           is e one of these?
--   errors.is(e, kind)     ... of that kind (a transport error also answers
--                          to its .transport: errors.is(e, "timeout"))
--   errors.is(e, 404)      ... with that HTTP status
--   errors.not_found(e)    ... a 404 (or kind "not_found")
local M = {}

local reasons = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [406] = "Not Acceptable", [408] = "Request Timeout",
  [409] = "Conflict", [410] = "Gone", [412] = "Precondition Failed",
  [413] = "Payload Too Large", [415] = "Unsupported Media Type", [422] = "Unprocessable Entity",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
}
M.http_reasons = reasons

-- The base: every class of the family inherits from it (its __index), and
-- is registered in `classes` (errors.is knows the family by it).
local classes = setmetatable({}, { __mode = "k" })

local mt = {}
mt.__index = mt
mt.__name = "ari.error"
function mt.__tostring(e)
  local head = e.operation or "ari"
  if e.status then
    return string.format("%s: %d %s", head, e.status, tostring(e.message))
  end
  return string.format("%s: %s", head, tostring(e.message))
end
classes[mt] = true
M.mt = mt
M.Error = mt

--- A class of the family: a metatable of its own (getmetatable(e) == cls
-- tells its members), whose __index falls back to the base.  fields:
-- __name, __tostring (default: the base's), kind (its members' default).
function M.class(fields)
  local cls = fields or {}
  cls.__index = cls
  if cls.__tostring == nil then cls.__tostring = mt.__tostring end
  setmetatable(cls, { __index = mt })
  classes[cls] = true
  return cls
end

--- Make an error value of the base class (fields as above; kind required).
function M.new(fields)
  return setmetatable(fields, mt)
end

--- A usage error (kind "usage"): level as error()'s, counted from the
-- function that calls usage (2: where that function was called from).
local Usage = M.class { __name = "ari.usage_error", kind = "usage" }
function Usage.__tostring(e)
  if e.where then return e.where .. ": " .. tostring(e.message) end
  return tostring(e.message)
end
M.Usage = Usage

function M.usage(message, level)
  local info = debug.getinfo((level or 1) + 1, "Sl")
  local where
  if info and info.currentline and info.currentline >= 0 then where = info.short_src .. ":" .. info.currentline end
  return setmetatable({ kind = "usage", message = message, where = where }, Usage)
end

--- Is v an error of the family; with kind: of that kind (a string: e.kind,
-- or a transport error's .transport), or with that HTTP status (a number).
function M.is(v, kind)
  if type(v) ~= "table" or not classes[getmetatable(v)] then return false end
  if kind == nil then return true end
  if type(kind) == "number" then return v.status == kind end
  if v.kind == kind then return true end
  return v.kind == "transport" and v.transport == kind
end

--- Is v an error of the family that means "no such thing": a 404, or kind
-- "not_found".
function M.not_found(v)
  return M.is(v) and (v.status == 404 or v.kind == "not_found")
end

--- A parameter error, raised before anything is sent.
function M.param(op, name, message)
  return setmetatable({
    kind = "param", operation = op and (op.resource .. "." .. op.nickname), method = op and op.method,
    path = op and op.path, parameter = name, message = message,
  }, mt)
end

--- Message for an HTTP failure: body's JSON message, the spec's reason,
-- then the HTTP reason phrase.
function M.message_for(status, body_value, op)
  if type(body_value) == "table" then
    local m = body_value.message
    if type(m) == "string" and m ~= "" then return m end
    m = body_value.error
    if type(m) == "string" and m ~= "" then return m end
  end
  local r = op and op.errors and op.errors[status]
  if r then return r end
  return reasons[status] or ("HTTP " .. tostring(status))
end

return M
