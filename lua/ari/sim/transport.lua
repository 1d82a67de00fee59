-- ari.sim.transport: serve a simulator over HTTP + WebSocket (ari.server).
--
--   REST under /ari/..., events at /ari/events?app=..&subscribeAll=..,
--   swagger docs at /ari/api-docs/resources.json and /ari/api-docs/{name}.json.
--   Basic auth or ?api_key=user:pass; 401 without.
local json = require "ari.sim.json"
local schema = require "ari.schema"

local M = {}
local obj, arr = json.obj, json.arr

local b64decode = require("ari.base64").decode
M.b64decode = b64decode

local util = require "ari.sim.util"
local sorted_keys = util.sorted_keys

--- Check credentials: Authorization: Basic or api_key=user:pass.
function M.authorized(sim, headers, query)
  local auth = headers["authorization"]
  if auth then
    local b = auth:match("^%s*[Bb]asic%s+(%S+)")
    local up = b and b64decode(b)
    if up and up == sim.user .. ":" .. sim.password then return true end
    return false
  end
  local q = require("ari.sim").parse_query(query)
  if q.api_key then return q.api_key == sim.user .. ":" .. sim.password end
  return false
end

-- Swagger documents rebuilt from the generated schema (ari.schema: facts
-- only, no prose), with basePath pointing at this server.
local function param_json(p)
  local kv = { "name", p.name, "paramType", p.where, "required", p.required,
    "allowMultiple", p.multiple, "dataType", p.type }
  if p.default ~= nil then kv[#kv + 1] = "defaultValue"; kv[#kv + 1] = p.default end
  local av = p.allowed
  if av then
    kv[#kv + 1] = "allowableValues"
    if av.values then kv[#kv + 1] = obj { "valueType", "LIST", "values", arr(av.values) }
    else kv[#kv + 1] = obj { "valueType", "RANGE", "min", av.min, "max", av.max } end
  end
  return obj(kv)
end

function M.resources_doc(base)
  local apis = arr {}
  for _, name in ipairs(schema.resources) do
    apis[#apis + 1] = obj { "path", "/api-docs/" .. name .. ".{format}", "description", name }
  end
  return obj { "apiVersion", schema.api_version, "swaggerVersion", schema.swagger_version, "basePath", base,
    "apis", apis }
end

local resource_doc_cache = {}

local function build_resource_doc(name)
  local info = schema.docs[name]
  if info == nil then return nil end
  -- operations grouped by path, in the schema's (sorted) order
  local apis, by_path = arr {}, {}
  for _, o in ipairs(schema.operations) do
    if o.resource == name then
      local api = by_path[o.path]
      if api == nil then
        api = obj { "path", o.path, "description", name, "operations", arr {} }
        by_path[o.path] = api
        apis[#apis + 1] = api
      end
      local params = arr {}
      for _, p in ipairs(o.params) do params[#params + 1] = param_json(p) end
      local errs = arr {}
      if o.errors then
        for _, code in ipairs(sorted_keys(o.errors)) do
          errs[#errs + 1] = obj { "code", code, "reason", o.errors[code] }
        end
      end
      local ops = api.operations
      ops[#ops + 1] = obj { "httpMethod", o.method, "upgrade", o.upgrade,
        "websocketProtocol", o.websocket_protocol, "summary", o.nickname, "nickname", o.nickname,
        "responseClass", o.response, "parameters", params, "errorResponses", errs }
    end
  end
  table.sort(apis, function(x, y) return x.path < y.path end)
  local models = obj {}
  for _, mname in ipairs(sorted_keys(schema.models)) do
    local m = schema.models[mname]
    if m.resource == name then
      local props = obj {}
      for _, pname in ipairs(sorted_keys(m.properties)) do
        local p = m.properties[pname]
        if p.from == nil then
          local pk = { "type", p.type, "required", p.required }
          if p.allowed and p.allowed.values then
            pk[#pk + 1] = "allowableValues"
            pk[#pk + 1] = obj { "valueType", "LIST", "values", arr(p.allowed.values) }
          end
          json.set(props, pname, obj(pk))
        end
      end
      json.set(models, mname, obj { "id", mname, "discriminator", m.discriminator,
        "properties", props, "subTypes", m.subtypes and arr(m.subtypes) })
    end
  end
  return { info = info, apis = apis, models = models }
end

function M.resource_doc(name, base)
  local d = resource_doc_cache[name]
  if d == nil then
    d = build_resource_doc(name)
    if d == nil then return nil end
    resource_doc_cache[name] = d
  end
  return obj { "apiVersion", d.info.apiVersion, "swaggerVersion", d.info.swaggerVersion, "basePath", base,
    "resourcePath", d.info.resourcePath, "requiresModules", d.info.requiresModules and arr(d.info.requiresModules),
    "apis", d.apis, "models", d.models }
end

local function unauthorized()
  return 401, { ["content-type"] = "application/json", ["www-authenticate"] = 'Basic realm="Asterisk REST Interface"' },
    json.encode(util.err_body("Authentication required"))
end

local function handle_ws_message(sim, ws, text, app)
  local reply = util.rest_reply(sim, text, app)
  if reply then ws:send(reply) end
end

--- Listen.  opts = { host = "127.0.0.1", port = 0 }.  Returns the server
-- (srv:port(), srv:close()); sim.url is set to http://host:port.
function M.listen(sim, opts)
  opts = opts or {}
  local server = require "ari.server"
  local host = opts.host or "127.0.0.1"
  local base
  local srv, err = server.listen {
    host = host, port = opts.port or 0,
    handler = function(req)
      local path = req.path
      if not M.authorized(sim, req.headers, req.query) then return unauthorized() end
      local doc = path:match("^/ari/api%-docs/(.+)%.json$")
      if doc and req.method == "GET" then
        local d = doc == "resources" and M.resources_doc(base) or M.resource_doc(doc, base)
        if not d then return 404, { ["content-type"] = "application/json" }, json.encode(util.err_body("Resource not found")) end
        return 200, { ["content-type"] = "application/json", ["server"] = require("ari.sim").Sim.SERVER_HEADER },
          json.encode(d)
      end
      if not path:match("^/ari/") and path ~= "/ari" then
        return 404, { ["content-type"] = "application/json" }, json.encode(util.err_body("Resource not found"))
      end
      local status, body, headers = sim:request(req.method, path, req.query or "", req.body,
        req.headers)
      return status, headers, body or ""
    end,
    on_websocket = function(req)
      -- chan_websocket's media connections (no ARI credentials, as Asterisk)
      local connid = req.path:match("^/media/([^/]+)$")
      if connid then return sim:media_websocket(req, connid) end
      if req.path ~= "/ari/events" then return 404, { ["content-type"] = "application/json" },
        json.encode(util.err_body("Resource not found")) end
      if not M.authorized(sim, req.headers, req.query) then return unauthorized() end
      local q = require("ari.sim").parse_query(req.query)
      if q.app == nil or q.app == "" then
        return 400, { ["content-type"] = "application/json" }, json.encode(util.err_body("Missing parameter app"))
      end
      local sub_all = q.subscribeAll == "true" or q.subscribeAll == "1" or q.subscribeAll == "yes"
      local session
      local ws = req:upgrade(nil, {
        on_message = function(w, msg) handle_ws_message(sim, w, msg, q.app) end,
        on_close = function() if session then session.close() end end,
      })
      if not ws then return 500 end
      session = sim:connect_events(q.app, sub_all, function(text) ws:send(text) end,
        function() pcall(ws.close, ws, 1000, "") end)
    end,
  }
  if not srv then error("sim: cannot listen on " .. host .. ": " .. tostring(err), 2) end
  local port = srv:port()
  sim.url = string.format("http://%s:%d", host, port)
  base = sim.url .. "/ari"
  sim.server = srv
  return srv
end

return M
