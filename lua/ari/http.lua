-- ari.http: HTTP requests from coroutines, on top of core.http_request.
--
--   local http = require "ari.http"
--   local status, body, headers = http.request{ method = "POST", url = ...,
--     query = { k = v }, headers = { ... }, body = "...", timeout = 5000 }
--
-- request() waits (ari.sched.suspend) until the response arrives; any HTTP
-- status is a normal return.  A transport failure raises an error table
-- { status = nil, kind, message, code, method, url } (kind: "connect",
-- "timeout", "reset", "tls", "too_large", "other"), whose url carries no
-- credentials.  Cancelling the waiting coroutine (sched.cancel) cancels the
-- transfer.
local core = require "ari.core"
local sched = require "ari.sched"
local errors = require "ari.errors"

local type, tostring, pairs, error, setmetatable = type, tostring, pairs, error, setmetatable
local format, byte = string.format, string.byte
local sort, concat = table.sort, table.concat
local math_type = math.type

local M = {}

--- Error objects raised by this module (of the ari.errors family).
local Error = errors.class { __name = "ari.http_error" }
Error.__tostring = function(e)
  local where = e.url and (" (" .. (e.method or "GET") .. " " .. e.url .. ")") or ""
  return format("http %s error: %s%s", tostring(e.kind or "other"), tostring(e.message), where)
end
M.Error = Error

local function raise(kind, message, extra, level)
  local e = { kind = kind, message = message }
  if extra then for k, v in pairs(extra) do e[k] = v end end
  error(setmetatable(e, Error), level or 3)
end

local function pct(c) return format("%%%02X", byte(c)) end

--- Percent-encode s for a query value or a path segment: RFC 3986
-- unreserved characters (A-Z a-z 0-9 - . _ ~) are kept, every other byte
-- becomes %XX; a value made only of dots ("." / "..") is encoded entirely.
function M.urlencode(s)
  local ty = type(s)
  if ty == "number" then
    s = math_type(s) == "integer" and format("%d", s) or tostring(s)
  elseif ty == "boolean" then
    s = tostring(s)
  elseif ty ~= "string" then
    raise("invalid", "urlencode: expected a string, number or boolean, got " .. ty)
  end
  s = s:gsub("[^A-Za-z0-9%-%._~]", pct)
  -- "." and ".." are unreserved, but as a path segment they would move up
  -- the path: a value made only of dots is encoded entirely
  if s:find("^%.+$") then s = s:gsub("%.", "%%2E") end
  return s
end
local urlencode = M.urlencode

--- Encode a table { key = value } as a query string (without "?"): keys
-- sorted, values strings, numbers or booleans.  Lists are the caller's
-- business (ARI wants them comma-joined: pass the joined string).
function M.encode_query(t)
  if t == nil then return "" end
  if type(t) ~= "table" then raise("invalid", "encode_query: expected a table, got " .. type(t)) end
  local keys = {}
  for k, v in pairs(t) do
    if type(k) ~= "string" and type(k) ~= "number" then
      raise("invalid", "encode_query: keys must be strings, got " .. type(k))
    end
    local vt = type(v)
    if vt ~= "string" and vt ~= "number" and vt ~= "boolean" then
      raise("invalid", format("encode_query: value of %q must be a string, number or boolean, got %s",
        tostring(k), vt))
    end
    keys[#keys + 1] = tostring(k)
  end
  sort(keys)
  local parts = {}
  for i, k in pairs(keys) do
    local v = t[k]
    if v == nil then v = t[tonumber(k)] end
    parts[i] = urlencode(k) .. "=" .. urlencode(v)
  end
  return concat(parts, "&")
end

--- The url without "user:password@" (for messages and errors).
function M.strip_credentials(url)
  return (tostring(url):gsub("^(%a[%w+.-]*://)[^/?#@]*@", "%1"))
end

local passthrough = { "method", "headers", "body", "timeout", "connect_timeout", "user",
  "password", "insecure", "cainfo", "max_body", "raw_headers" }

--- The header block of a response (what request returns with
-- opts.raw_headers) as a table { lower-case name = value }.
M.parse_headers = core.http_parse_headers

-- [perf] static start/cleanup for sched.suspend: no closure per request
local function start_request(wake, copts)
  local ok, req = pcall(core.http_request, copts, wake)
  if not ok then
    raise("invalid", tostring(req):gsub("^[^:]*:%d+: ", ""), { url = M.strip_credentials(copts.url) })
  end
  return req
end
local function cancel_request(_, _, req) if req then req:cancel() end end

--- Perform one request from inside a coroutine; returns status, body,
-- headers (lower-case names; with opts.raw_headers the header block as
-- one string, for M.parse_headers when needed).  Raises an Error on
-- transport failure.
function M.request(opts)
  if type(opts) ~= "table" then raise("invalid", "http.request: expected an options table") end
  local url = opts.url
  if type(url) ~= "string" or url == "" then raise("invalid", "http.request: url is required") end
  local copts = opts -- the C side reads only the fields it knows
  if opts.query ~= nil then
    local q = M.encode_query(opts.query)
    if q ~= "" then url = url .. (url:find("?", 1, true) and "&" or "?") .. q end
    copts = { url = url }
    for _, k in pairs(passthrough) do copts[k] = opts[k] end
  end

  -- a cancel while waiting cancels the transfer (cancel_request) and raises
  -- here; a request that cannot start raises an "invalid" Error
  local status, body, headers = sched.suspend(start_request, copts, nil, cancel_request)
  if status == nil then
    local err = body or {}
    raise(err.kind or "other", err.message or "request failed",
      { code = err.code, method = copts.method or "GET", url = M.strip_credentials(url) }, 2)
  end
  return status, body, headers
end

return M
