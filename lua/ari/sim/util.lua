-- ari.sim.util: what the simulator's resource modules share.
local json = require "ari.sim.json"

local M = {}

--- The JSON body of an error answer, as Asterisk writes it: {"message": msg}.
function M.err_body(msg) return json.obj { "message", msg } end

--- Reason phrases of the statuses the simulator answers with.
M.STATUS_TEXT = { [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [406] = "Not Acceptable", [409] = "Conflict", [412] = "Precondition Failed",
  [422] = "Unprocessable Entity", [500] = "Internal Server Error", [501] = "Not Implemented" }

--- Answer one RESTRequest (REST over a WebSocket, inbound or outbound;
-- `text` is the request frame) for `app`.  Returns the RESTResponse text,
-- or nil when `text` is not a RESTRequest.  A stored recording's file is
-- 406 here, as on Asterisk: a WebSocket reply carries no binary body.
function M.rest_reply(sim, text, app)
  local msg = json.decode(text)
  if type(msg) ~= "table" or msg.type ~= "RESTRequest" then return nil end
  local uri = tostring(msg.uri or "")
  local path, q = uri:match("^([^?]*)%??(.*)$")
  local status, body
  if path:match("^/?recordings/stored/[^/]+/file$") then
    status, body = 406, json.encode(M.err_body("Not Acceptable. Use HTTP GET"))
  else
    status, body = sim:request(msg.method or "GET", "/ari/" .. path:gsub("^/", ""), q or "", msg.message_body,
      { ["content-type"] = msg.content_type or "application/json" })
  end
  local kv = { "type", "RESTResponse", "transaction_id", msg.transaction_id or "", "request_id", msg.request_id or "",
    "status_code", status, "reason_phrase", M.STATUS_TEXT[status] or "", "uri", uri }
  if body then
    kv[#kv + 1] = "content_type"; kv[#kv + 1] = "application/json"
    kv[#kv + 1] = "message_body"; kv[#kv + 1] = body
  end
  kv[#kv + 1] = "application"; kv[#kv + 1] = app
  kv[#kv + 1] = "timestamp"; kv[#kv + 1] = sim:timestamp()
  kv[#kv + 1] = "asterisk_id"; kv[#kv + 1] = sim.asterisk_id
  return json.encode(json.obj(kv))
end

--- The keys of t, sorted.
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end
M.sorted_keys = sorted_keys

--- A resource module's table { methods = { name = fn }, routes = { resource
-- = { nickname = fn } }, init = fn, ... }, with each method and route
-- handler also a field of the table itself (`name`, `<resource>_<nickname>`):
-- a traceback then names them after the module ("ari.sim.channels.hangup",
-- "ari.sim.channels.channels_originate") wherever they are called from.
function M.module(t)
  local named = {}
  local function expose(key, fn)
    if t[key] == nil and not named[fn] then t[key] = fn; named[fn] = true end
  end
  local methods, routes = t.methods or {}, t.routes or {}
  for _, name in ipairs(sorted_keys(methods)) do expose(name, methods[name]) end
  for _, resource in ipairs(sorted_keys(routes)) do
    local ops = routes[resource]
    -- an alias (playWithId = play) keeps the first name in order
    for _, nickname in ipairs(sorted_keys(ops)) do expose(resource .. "_" .. nickname, ops[nickname]) end
  end
  return t
end

return M
