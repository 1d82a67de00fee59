-- ari.log: levelled logging to stderr, as text or JSON lines, with
-- per-call prefixes and redaction of registered secrets (passwords never
-- reach a log line).
local errors = require "ari.errors"

local M = {}

local LEVELS = { error = 0, warn = 1, info = 2, debug = 3 }
M.LEVELS = LEVELS

local level = LEVELS.info
local format = "text"
local out = io.stderr
local secrets = {}

-- Credentials that may appear in a message whether registered or not:
-- Authorization header values, ?api_key=user:pass, user:pass@ in URLs.
local PATTERNS = {
  { "([Aa]uthorization[\"']?%s*[:=]%s*[\"']?%a+%s+)[^%s\"',;}]+", "%1***" },
  { "([Aa]uthorization[\"']?%s*[:=]%s*[\"']?)([^%s\"',;}]+)([\"',;}%s]?)", function(pre, v, post)
      if v == "***" or v:match("^%a+$") then return nil end
      return pre .. "***" .. post
    end },
  { "(api_key=)[^&%s\"']+", "%1***" },
  { "(%a[%w+.%-]*://[^/@%s:]+:)[^/@%s]+@", "%1***@" },
}

local function redact(s)
  for i = 1, #secrets do
    local sec = secrets[i]
    local a, b = s:find(sec, 1, true)
    while a do
      s = s:sub(1, a - 1) .. "***" .. s:sub(b + 1)
      a, b = s:find(sec, a + 3, true)
    end
  end
  for i = 1, #PATTERNS do
    s = s:gsub(PATTERNS[i][1], PATTERNS[i][2])
  end
  return s
end
M.redact = redact

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function emit(lvl, prefix, fmt, ...)
  if LEVELS[lvl] > level then return end
  local msg = select("#", ...) > 0 and string.format(fmt, ...) or tostring(fmt)
  msg = redact(msg)
  local t = os.time()
  if format == "json" then
    out:write(string.format('{"time":%s,"level":"%s"%s,"msg":%s}\n',
      json_string(os.date("!%Y-%m-%dT%H:%M:%SZ", t)), lvl,
      prefix and (',"call":' .. json_string(prefix)) or "", json_string(msg)))
  else
    out:write(os.date("%H:%M:%S", t), " ", lvl:upper(), " ",
      prefix and ("[" .. prefix .. "] ") or "", msg, "\n")
  end
  out:flush()
end

--- Set the level ("error", "warn", "info", "debug").
function M.set_level(l)
  if LEVELS[l] == nil then error(errors.usage("unknown log level '" .. tostring(l) .. "'", 2), 0) end
  level = LEVELS[l]
  M.debug_on = level >= LEVELS.debug
  local ok, core = pcall(require, "ari.core")
  if ok then core.set_log_level(LEVELS[l]) end
end
function M.get_level() for k, v in pairs(LEVELS) do if v == level then return k end end end
function M.enabled(l) return LEVELS[l] <= level end
--- [perf] true while the level is debug (a field: the per-event and
-- per-request paths test it without a call)
M.debug_on = false

--- "text" or "json".
function M.set_format(f)
  if f ~= "text" and f ~= "json" then error(errors.usage("unknown log format '" .. tostring(f) .. "'", 2), 0) end
  format = f
end

--- Never print s (a password, a token) in any log line.
-- Secrets shorter than MIN_SECRET are not redacted: hiding every "p" or
-- "ab" in every line would make the log unreadable and hide nothing.
local MIN_SECRET = 4
local warned_short = false
function M.add_secret(s)
  if type(s) ~= "string" or #s == 0 then return end
  if #s < MIN_SECRET then
    if not warned_short then
      warned_short = true
      io.stderr:write("ari-lua: a credential shorter than ", MIN_SECRET,
        " characters cannot be redacted from logs; use a longer one\n")
    end
    return
  end
  for i = 1, #secrets do if secrets[i] == s then return end end
  secrets[#secrets + 1] = s
  -- longest first, so a secret containing another is hidden whole
  table.sort(secrets, function(a, b) return #a > #b end)
end

local base64 = require "ari.base64"
M._base64 = base64

--- Register a user and password: the password, "user:password" and its
-- Basic-auth encoding never appear in a log line.
function M.add_credentials(user, password)
  if type(password) ~= "string" or password == "" then return end
  M.add_secret(password)
  if type(user) == "string" then
    M.add_secret(user .. ":" .. password)
    M.add_secret(base64(user .. ":" .. password))
  end
end

--- Redirect output (a file handle); for tests.
function M.set_output(f) out = f or io.stderr end

local Logger = {}
Logger.__index = Logger
for name in pairs(LEVELS) do
  M[name] = function(fmt, ...) emit(name, nil, fmt, ...) end
  Logger[name] = function(self, fmt, ...) emit(name, self.prefix, fmt, ...) end
end

--- A logger whose lines carry a prefix (a call's channel id and name).
function M.new(prefix) return setmetatable({ prefix = prefix }, Logger) end

return M
