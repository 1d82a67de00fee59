-- ari.sim.misc: asterisk, applications, endpoints, deviceStates, mailboxes, events.
-- A module of Sim methods, route handlers (<resource>_<nickname>) and an
-- init hook, installed by ari.sim (init.lua).
local json = require "ari.sim.json"
local util = require "ari.sim.util"
local obj, arr = json.obj, json.arr
local err_body = util.err_body

local DEVICE_STATES = { UNKNOWN = true, NOT_INUSE = true, INUSE = true, BUSY = true, INVALID = true,
  UNAVAILABLE = true, RINGING = true, RINGINUSE = true, ONHOLD = true }

local MODULES = {
  { "res_ari.so", "Asterisk RESTful Interface", "core" },
  { "res_stasis.so", "Stasis application support", "core" },
  { "res_ari_channels.so", "RESTful API module - Channel resources", "core" },
  { "res_ari_bridges.so", "RESTful API module - Bridge resources", "core" },
  { "res_ari_playbacks.so", "RESTful API module - Playback control resources", "core" },
  { "res_ari_recordings.so", "RESTful API module - Recording resources", "core" },
  { "res_ari_sounds.so", "RESTful API module - Sound resources", "core" },
  { "res_ari_endpoints.so", "RESTful API module - Endpoint resources", "core" },
  { "res_ari_events.so", "RESTful API module - WebSocket resource", "core" },
  { "res_ari_applications.so", "RESTful API module - Stasis application resources", "core" },
  { "res_ari_asterisk.so", "RESTful API module - Asterisk resources", "core" },
  { "res_ari_device_states.so", "RESTful API module - Device state resources", "core" },
  { "res_ari_mailboxes.so", "RESTful API module - Mailboxes resources", "core" },
  { "chan_pjsip.so", "PJSIP Channel Driver", "core" },
  { "app_dial.so", "Dialing Application", "core" },
}

-- 200 and a JSON array of to_json(value, name) for the entries of map in
-- name order (only those keep(value) holds for, when given)
local function sorted_list(map, to_json, keep)
  local names = {}
  for n, v in pairs(map) do if keep == nil or keep(v) then names[#names + 1] = n end end
  table.sort(names)
  local out = arr {}
  for _, n in ipairs(names) do out[#out + 1] = to_json(map[n], n) end
  return 200, out
end

local function init_misc(self, opts)
  self.modules = {}
  for _, m in ipairs(MODULES) do
    self.modules[m[1]] = { name = m[1], description = m[2], use_count = 0, status = "Running", support_level = m[3] }
  end
  self.log_channels = {
    { channel = "/var/log/asterisk/messages.log", type = "File", status = "Enabled",
      configuration = "NOTICE WARNING ERROR VERBOSE " },
    { channel = "", type = "Console", status = "Enabled", configuration = "NOTICE WARNING ERROR VERBOSE " },
  }
  self.config_objects = {}
  self.endpoint_list = {}
  for _, e in ipairs(opts.endpoint_list or {}) do
    local tech, res = e:match("^([^/]+)/(.+)$")
    if tech then self.endpoint_list[#self.endpoint_list + 1] = { technology = tech, resource = res } end
  end
  self.endpoint_subs = {}
end

---------------------------------------------------------------- asterisk
local function asterisk_getInfo(sim, p)
  local parts = {
    build = obj { "os", "Linux", "kernel", "6.1.0", "machine", "x86_64", "options", "OPTIONAL_API",
      "date", "2026-01-01 00:00:00 UTC", "user", "ari-lua-sim" },
    system = obj { "version", "22.11.0", "entity_id", sim.asterisk_id },
    config = obj { "name", "", "default_language", "en", "setid", obj { "user", "", "group", "" } },
    status = obj { "startup_time", sim.started, "last_reload_time", sim.started },
  }
  local want
  if p.only and p.only ~= "" then
    want = {}
    for x in p.only:gmatch("[^,]+") do
      if not parts[x] then return 400, err_body("Invalid 'only' parameter " .. x) end
      want[x] = true
    end
  end
  local kv = {}
  for _, k in ipairs { "build", "system", "config", "status" } do
    if not want or want[k] then kv[#kv + 1] = k; kv[#kv + 1] = parts[k] end
  end
  return 200, obj(kv)
end
local function asterisk_ping(sim)
  return 200, obj { "ping", "pong", "timestamp", sim:timestamp(), "asterisk_id", sim.asterisk_id }
end
local function module_json(m)
  return obj { "name", m.name, "description", m.description, "use_count", m.use_count, "status", m.status,
    "support_level", m.support_level }
end
local function asterisk_listModules(sim)
  return sorted_list(sim.modules, module_json, function(m) return m.status == "Running" end)
end
local function asterisk_getModule(sim, p)
  local m = sim.modules[p.moduleName]
  if not m or m.status ~= "Running" then return 404, err_body("Module could not be found in running modules") end
  return 200, module_json(m)
end
local function asterisk_loadModule(sim, p)
  local m = sim.modules[p.moduleName]
  if m and m.status == "Running" then return 409, err_body("Module is already loaded") end
  if not p.moduleName:match("%.so$") then return 409, err_body("Module could not be loaded properly") end
  sim.modules[p.moduleName] = { name = p.moduleName, description = p.moduleName, use_count = 0,
    status = "Running", support_level = "extended" }
  return 204
end
local function asterisk_unloadModule(sim, p)
  local m = sim.modules[p.moduleName]
  if not m or m.status ~= "Running" then return 404, err_body("Module not found in running modules") end
  m.status = "Not Running"
  return 204
end
local function asterisk_reloadModule(sim, p)
  local m = sim.modules[p.moduleName]
  if not m or m.status ~= "Running" then return 404, err_body("Module not found in running modules") end
  return 204
end
local function asterisk_listLogChannels(sim)
  local out = arr {}
  for _, l in ipairs(sim.log_channels) do
    out[#out + 1] = obj { "channel", l.channel, "type", l.type, "status", l.status, "configuration", l.configuration }
  end
  return 200, out
end
local function find_log(sim, name)
  for i, l in ipairs(sim.log_channels) do if l.channel == name then return l, i end end
end
local function asterisk_addLog(sim, p)
  if p.configuration == nil or p.configuration == "" then return 400, err_body("Log channel configuration is required") end
  if find_log(sim, p.logChannelName) then return 409, err_body("Log channel already exists") end
  sim.log_channels[#sim.log_channels + 1] = { channel = p.logChannelName, type = "File", status = "Enabled",
    configuration = p.configuration:upper():gsub(",", " ") .. " " }
  return 204
end
local function asterisk_deleteLog(sim, p)
  local _, i = find_log(sim, p.logChannelName)
  if not i then return 404, err_body("Log channel does not exist") end
  table.remove(sim.log_channels, i)
  return 204
end
local function asterisk_rotateLog(sim, p)
  if not find_log(sim, p.logChannelName) then return 404, err_body("Log channel does not exist") end
  return 204
end
local function asterisk_getGlobalVar(sim, p)
  if p.variable == nil or p.variable == "" then return 400, err_body("Variable name is required") end
  return 200, obj { "value", sim.global_vars[p.variable] or "" }
end
local function asterisk_setGlobalVar(sim, p)
  if p.variable == nil or p.variable == "" then return 400, err_body("Variable name is required") end
  sim.global_vars[p.variable] = p.value or ""
  sim:deliver("ChannelVarset", { "variable", p.variable, "value", p.value or "" }, sim:all_targets())
  return 204
end
local function cfg_key(p) return p.configClass .. "/" .. p.objectType .. "/" .. p.id end
local function cfg_json(fields)
  local out = arr {}
  local names = {}
  for k in pairs(fields) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do out[#out + 1] = obj { "attribute", k, "value", fields[k] } end
  return out
end
local function asterisk_getObject(sim, p)
  local o = sim.config_objects[cfg_key(p)]
  if not o then return 404, err_body("Unable to retrieve object") end
  return 200, cfg_json(o)
end
local function asterisk_updateObject(sim, p, ctx)
  if p.configClass ~= "res_pjsip" and p.configClass ~= "res_pjsip_outbound_registration" then
    return 404, err_body("Unable to find configuration class " .. p.configClass)
  end
  local o = sim.config_objects[cfg_key(p)] or {}
  local fields = type(ctx.body) == "table" and ctx.body.fields
  if fields ~= nil and type(fields) ~= "table" then return 400, err_body("Fields must be provided as a list") end
  for _, f in ipairs(fields or {}) do
    if type(f) ~= "table" or type(f.attribute) ~= "string" then return 400, err_body("Bad request: invalid field") end
    o[f.attribute] = tostring(f.value or "")
  end
  sim.config_objects[cfg_key(p)] = o
  return 200, cfg_json(o)
end
local function asterisk_deleteObject(sim, p)
  local k = cfg_key(p)
  if not sim.config_objects[k] then return 404, err_body("Unable to delete object") end
  sim.config_objects[k] = nil
  return 204
end

---------------------------------------------------------------- applications
-- The keys of t, sorted, as a JSON array.
local function sorted_keys(t) return arr(util.sorted_keys(t)) end
local function app_json(self, app)
  local chans, bridges, eps, devs = {}, {}, {}, {}
  for id, ch in pairs(self.channels) do if ch.subs[app.name] then chans[id] = true end end
  for id, br in pairs(self.bridges) do if br.subs[app.name] then bridges[id] = true end end
  for ep, subs in pairs(self.endpoint_subs) do if subs[app.name] then eps[ep] = true end end
  for d, st in pairs(self.device_states) do if st.subs[app.name] then devs[d] = true end end
  local f = app.filter or {}
  local function flist(l)
    local out = arr {}
    for _, x in ipairs(l or {}) do out[#out + 1] = obj { "type", x.type } end
    return out
  end
  return obj { "name", app.name, "channel_ids", sorted_keys(chans), "bridge_ids", sorted_keys(bridges),
    "endpoint_ids", sorted_keys(eps), "device_names", sorted_keys(devs),
    "events_allowed", flist(f.allowed), "events_disallowed", flist(f.disallowed) }
end
local function applications_list(sim)
  local out = arr {}
  for _, name in ipairs(sim.app_order) do
    if sim:app_active(name) then out[#out + 1] = sim:app_json(sim.apps[name]) end
  end
  return 200, out
end
local function get_app(sim, name)
  if not sim:app_active(name) then return nil, 404, err_body("Application not found") end
  return sim.apps[name]
end
local function applications_get(sim, p)
  local app, s, b = get_app(sim, p.applicationName)
  if not app then return s, b end
  return 200, sim:app_json(app)
end
-- resolve an event source URI to its subs table
local function source_subs(sim, uri, create)
  local scheme, id = uri:match("^(%a+):(.*)$")
  if not scheme then return nil, 400, err_body("Invalid event source URI scheme") end
  if scheme == "channel" then
    local ch = sim.channels[id]
    if not ch then return nil, 422, err_body("Event source does not exist") end
    return ch.subs
  elseif scheme == "bridge" then
    local br = sim.bridges[id]
    if not br then return nil, 422, err_body("Event source does not exist") end
    return br.subs
  elseif scheme == "endpoint" then
    if id == "" then return nil, 400, err_body("Invalid endpoint") end
    local s = sim.endpoint_subs[id]
    if not s and create then s = {}; sim.endpoint_subs[id] = s end
    return s or nil, (not s) and 422 or nil, (not s) and err_body("Event source does not exist") or nil
  elseif scheme == "deviceState" then
    local d = sim.device_states[id]
    if not d and create then d = { state = "UNKNOWN", subs = {}, virtual = true }; sim.device_states[id] = d end
    if not d then return nil, 422, err_body("Event source does not exist") end
    return d.subs
  end
  return nil, 400, err_body("Invalid event source URI scheme")
end
-- The subs tables of the comma-separated event source URIs in
-- p.eventSource (created when subscribing; when unsubscribing app must be
-- subscribed to each), or nil, status, body for the first that fails.
local function source_list(sim, app, p, subscribing)
  if p.eventSource == nil or p.eventSource == "" then return nil, 400, err_body("Missing parameter eventSource") end
  local subs_list = {}
  for uri in p.eventSource:gmatch("[^,]+") do
    local subs, s, b = source_subs(sim, uri, subscribing)
    if not subs then return nil, s, b end
    if not subscribing and not subs[app.name] then
      return nil, 409, err_body("Application not subscribed to event source")
    end
    subs_list[#subs_list + 1] = subs
  end
  return subs_list
end
-- subscribe / unsubscribe the app p.applicationName to p.eventSource
local function set_subscription(sim, p, subscribing)
  local app, s, b = get_app(sim, p.applicationName)
  if not app then return s, b end
  local subs_list
  subs_list, s, b = source_list(sim, app, p, subscribing)
  if not subs_list then return s, b end
  for _, subs in ipairs(subs_list) do subs[app.name] = subscribing or nil end
  return 200, sim:app_json(app)
end
local function applications_subscribe(sim, p) return set_subscription(sim, p, true) end
local function applications_unsubscribe(sim, p) return set_subscription(sim, p, false) end
local function applications_filter(sim, p)
  local app, s, b = get_app(sim, p.applicationName)
  if not app then return s, b end
  local f = p.filter
  if f == nil or f == json.null then app.filter = nil; return 200, sim:app_json(app) end
  if type(f) ~= "table" then return 400, err_body("Invalid filter") end
  local function check(l)
    if l == nil then return {} end
    if type(l) ~= "table" then return nil end
    for _, x in ipairs(l) do if type(x) ~= "table" or type(x.type) ~= "string" then return nil end end
    return l
  end
  local allowed, disallowed = check(f.allowed), check(f.disallowed)
  if not allowed or not disallowed then return 400, err_body("Invalid format for event filter") end
  for k in pairs(f) do
    if k ~= "allowed" and k ~= "disallowed" then return 400, err_body("Invalid format for event filter") end
  end
  app.filter = { allowed = allowed, disallowed = disallowed }
  return 200, sim:app_json(app)
end

---------------------------------------------------------------- endpoints
local function endpoints_all(self)
  local list, seen = {}, {}
  for _, e in ipairs(self.endpoint_list) do
    local k = e.technology .. "/" .. e.resource
    seen[k] = true
    list[#list + 1] = { technology = e.technology, resource = e.resource }
  end
  return list
end
local function endpoint_json(sim, e)
  local ids = arr {}
  local state = "online"
  for _, id in ipairs(sim.channel_order) do
    local ch = sim.channels[id]
    if ch.endpoint == e.technology .. "/" .. e.resource then ids[#ids + 1] = id end
  end
  return obj { "technology", e.technology, "resource", e.resource, "state", state, "channel_ids", ids }
end
local function endpoints_list(sim)
  local out = arr {}
  for _, e in ipairs(sim:endpoints_all()) do out[#out + 1] = endpoint_json(sim, e) end
  return 200, out
end
local TECHS = { PJSIP = true, SIP = true, IAX2 = true, DAHDI = true, Local = true }
local function endpoints_listByTech(sim, p)
  local out = arr {}
  local known = TECHS[p.tech]
  for _, e in ipairs(sim:endpoints_all()) do
    if e.technology == p.tech then known = true; out[#out + 1] = endpoint_json(sim, e) end
  end
  if not known then return 404, err_body("No Endpoints found - invalid tech " .. tostring(p.tech)) end
  return 200, out
end
local function find_ep(sim, tech, res)
  for _, e in ipairs(sim:endpoints_all()) do
    if e.technology == tech and e.resource == res then return e end
  end
end
local function endpoints_get(sim, p)
  if p.tech == "" or p.resource == "" then return 400, err_body("Invalid endpoint") end
  local e = find_ep(sim, p.tech, p.resource)
  if not e then return 404, err_body("Endpoint not found") end
  return 200, endpoint_json(sim, e)
end
local function message(sim, to, from, body)
  if to == nil or to == "" then return 400, err_body("To must be specified") end
  if from == nil or from == "" then return 400, err_body("From must be specified") end
  local tech = to:match("^(%w+):") or to:match("^(%w+)/")
  if not tech or not TECHS[tech:upper() == "PJSIP" and "PJSIP" or tech] then
    return 404, err_body("Endpoint not found")
  end
  sim:note(nil, "message %s -> %s: %s", from, to, body or "")
  return 202
end
local function endpoints_sendMessage(sim, p) return message(sim, p.to, p.from, p.body) end
local function endpoints_sendMessageToEndpoint(sim, p)
  local e = find_ep(sim, p.tech, p.resource)
  if not e then return 404, err_body("Endpoint not found") end
  return message(sim, p.tech .. ":" .. p.resource, p.from, p.body)
end
local function endpoints_refer(sim, p)
  if p.to == nil or p.to == "" or p.from == nil or p.from == "" or p.refer_to == nil or p.refer_to == "" then
    return 400, err_body("to, from and refer_to must be specified")
  end
  return message(sim, p.to, p.from, "REFER " .. p.refer_to)
end
local function endpoints_referToEndpoint(sim, p)
  local e = find_ep(sim, p.tech, p.resource)
  if not e then return 404, err_body("Endpoint not found") end
  if p.from == nil or p.from == "" or p.refer_to == nil or p.refer_to == "" then
    return 400, err_body("from and refer_to must be specified")
  end
  return 202
end

---------------------------------------------------------------- deviceStates
local function ds_json(name, d) return obj { "name", name, "state", d and d.state or "UNKNOWN" } end
local function deviceStates_list(sim)
  return sorted_list(sim.device_states, function(d, n) return ds_json(n, d) end,
    function(d) return not d.virtual end)
end
local function deviceStates_get(sim, p) return 200, ds_json(p.deviceName, sim.device_states[p.deviceName]) end
local function deviceStates_update(sim, p)
  if not p.deviceName:match("^Stasis:.+") then
    return 409, err_body("Uncontrolled device specified")
  end
  local st = p.deviceState
  if st == nil or not DEVICE_STATES[st] then return 400, err_body("Invalid device state") end
  local d = sim.device_states[p.deviceName]
  if not d then d = { subs = {} }; sim.device_states[p.deviceName] = d end
  d.virtual = nil
  d.state = st
  sim:deliver("DeviceStateChanged", { "device_state", ds_json(p.deviceName, d) }, sim:targets(d.subs))
  return 204
end
local function deviceStates_delete(sim, p)
  if not p.deviceName:match("^Stasis:.+") then return 409, err_body("Uncontrolled device specified") end
  local d = sim.device_states[p.deviceName]
  if not d or d.virtual then return 404, err_body("Device not found") end
  sim.device_states[p.deviceName] = nil
  return 204
end

---------------------------------------------------------------- mailboxes
local function mb_json(m) return obj { "name", m.name, "old_messages", m.old, "new_messages", m.new } end
local function mailboxes_list(sim)
  return sorted_list(sim.mailboxes, mb_json)
end
local function mailboxes_get(sim, p)
  local m = sim.mailboxes[p.mailboxName]
  if not m then return 404, err_body("Mailbox is does not exist") end
  return 200, mb_json(m)
end
local function mailboxes_update(sim, p)
  if p.oldMessages == nil or p.newMessages == nil then return 400, err_body("Missing parameter") end
  sim.mailboxes[p.mailboxName] = { name = p.mailboxName, old = p.oldMessages, new = p.newMessages }
  return 204
end
local function mailboxes_delete(sim, p)
  if not sim.mailboxes[p.mailboxName] then return 404, err_body("Mailbox does not exist") end
  sim.mailboxes[p.mailboxName] = nil
  return 204
end

---------------------------------------------------------------- events
local function events_eventWebsocket()
  return 400, err_body("This resource must be reached with a WebSocket upgrade")
end
local function events_userEvent(sim, p, ctx)
  if p.application == nil or p.application == "" then return 400, err_body("Missing parameter application") end
  if not sim:app_active(p.application) then return 404, err_body("Application not found") end
  local fields = { "eventname", p.eventName }
  local uv = {}
  local vars = type(ctx.body) == "table" and ctx.body.variables
  if type(vars) == "table" then for k, v in pairs(vars) do uv[k] = v end end
  fields[#fields + 1] = "userevent"; fields[#fields + 1] = uv
  local call
  for uri in (p.source or ""):gmatch("[^,]+") do
    local scheme, id = uri:match("^(%a+):(.*)$")
    if scheme == "channel" then
      local ch = sim.channels[id]
      if not ch then return 422, err_body("Unable to find event source " .. uri) end
      fields[#fields + 1] = "channel"; fields[#fields + 1] = sim:snapshot(ch)
      call = ch.call
    elseif scheme == "bridge" then
      local br = sim.bridges[id]
      if not br then return 422, err_body("Unable to find event source " .. uri) end
      fields[#fields + 1] = "bridge"; fields[#fields + 1] = sim:bridge_json(br)
    elseif scheme == "endpoint" then
      local tech, res = id:match("^([^/]+)/(.+)$")
      if not tech then return 422, err_body("Unable to find event source " .. uri) end
      fields[#fields + 1] = "endpoint"
      fields[#fields + 1] = obj { "technology", tech, "resource", res, "state", "online", "channel_ids", arr {} }
    elseif scheme == "deviceState" then
      fields[#fields + 1] = "device_state"; fields[#fields + 1] = ds_json(id, sim.device_states[id])
    else
      return 400, err_body("Invalid event source URI scheme")
    end
  end
  sim:deliver("ChannelUserevent", fields, { p.application }, call)
  return 204
end
local function events_claimChannel(sim, p)
  if p.channelId == nil or p.channelId == "" or p.application == nil or p.application == "" then
    return 400, err_body("channelId and application are required")
  end
  local ch = sim.channels[p.channelId]
  if not ch then return 404, err_body("Channel not found") end
  if ch.claimed_by and ch.claimed_by ~= p.application then
    return 409, err_body("Channel has already been claimed by another application")
  end
  if not ch.broadcast then return 404, err_body("Channel not found") end
  ch.claimed_by = p.application
  local targets = {}
  for _, a in ipairs(ch.broadcast) do targets[#targets + 1] = a end
  sim:stasis_start(ch, p.application, ch.broadcast_args)
  sim:deliver("CallClaimed", { "channel", sim:snapshot(ch), "winner_app", p.application }, targets, ch.call)
  return 204
end

return util.module {
  -- called by ari.sim.new for each new simulator
  init = init_misc,
  -- methods of the Sim class
  methods = { app_json = app_json, endpoints_all = endpoints_all },
  -- route handlers by resource and operation nickname
  routes = {
    asterisk = {
      getInfo = asterisk_getInfo, ping = asterisk_ping, listModules = asterisk_listModules,
      getModule = asterisk_getModule, loadModule = asterisk_loadModule, unloadModule = asterisk_unloadModule,
      reloadModule = asterisk_reloadModule, listLogChannels = asterisk_listLogChannels, addLog = asterisk_addLog,
      deleteLog = asterisk_deleteLog, rotateLog = asterisk_rotateLog, getGlobalVar = asterisk_getGlobalVar,
      setGlobalVar = asterisk_setGlobalVar, getObject = asterisk_getObject, updateObject = asterisk_updateObject,
      deleteObject = asterisk_deleteObject,
    },
    applications = {
      list = applications_list, get = applications_get, subscribe = applications_subscribe,
      unsubscribe = applications_unsubscribe, filter = applications_filter,
    },
    endpoints = {
      list = endpoints_list, listByTech = endpoints_listByTech, get = endpoints_get,
      sendMessage = endpoints_sendMessage, sendMessageToEndpoint = endpoints_sendMessageToEndpoint,
      refer = endpoints_refer, referToEndpoint = endpoints_referToEndpoint,
    },
    deviceStates = {
      list = deviceStates_list, get = deviceStates_get, update = deviceStates_update, delete = deviceStates_delete,
    },
    mailboxes = {
      list = mailboxes_list, get = mailboxes_get, update = mailboxes_update, delete = mailboxes_delete,
    },
    events = {
      eventWebsocket = events_eventWebsocket, userEvent = events_userEvent, claimChannel = events_claimChannel,
    },
  },
  DEVICE_STATES = DEVICE_STATES,
}
