-- ari.errors: the error values raised by the client.
--
-- Every failure is a table with a readable __tostring:
--   status     HTTP status, nil for a transport failure or a bad parameter
--   message    Asterisk's {"message": ...} if it sent one, else the spec's
--              documented reason for that status, else the HTTP reason phrase
--   operation  "channels.answer"
--   method, path  what was (or would have been) requested
--   kind       "http" | "transport" | "param"
--   parameter  the offending parameter (kind "param")
--   body       the raw response body (kind "http")
--   transport  the transport's error kind ("connect", "timeout", ...)
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
M.mt = mt

--- Make an error value (fields as above).
function M.new(fields)
  return setmetatable(fields, mt)
end

--- Is v an ari error?
function M.is(v) return getmetatable(v) == mt end

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
