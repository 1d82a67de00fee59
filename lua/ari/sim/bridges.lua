-- ari.sim.bridges: mixing and holding bridges and /bridges.
-- A module of Sim methods and route handlers (bridges_<nickname>),
-- installed by ari.sim (init.lua).
local json = require "ari.sim.json"
local util = require "ari.sim.util"
local obj, arr = json.obj, json.arr
local err_body = util.err_body

local TYPES = { mixing = true, holding = true, dtmf_events = true, proxy_media = true,
  video_sfu = true, video_single = true, sdp_label = true }

local function bridge_json(self, br)
  local chans = arr {}
  for i, id in ipairs(br.channels) do chans[i] = id end
  return obj { "id", br.id, "technology", br.technology, "bridge_type", br.bridge_type,
    "bridge_class", "stasis", "creator", "Stasis", "name", br.name, "channels", chans,
    "creationtime", br.creationtime, "video_mode", br.video_mode, "video_source_id", br.video_source_id }
end

local function bridge_event(self, br, etype, extra, subs_only)
  local fields = { "bridge", self:bridge_json(br) }
  if extra then for _, v in ipairs(extra) do fields[#fields + 1] = v end end
  return self:deliver(etype, fields, self:targets(subs_only and {} or br.subs), br.call)
end

-- BRIDGEPEER of each channel in the bridge: the names of the others
-- (ChannelVarset only when it changes; unset counts as "")
local function set_bridgepeers(sim, br)
  for _, id in ipairs(br.channels) do
    local ch = sim.channels[id]
    if ch then
      local peers = {}
      for _, o in ipairs(br.channels) do
        if o ~= id and sim.channels[o] then peers[#peers + 1] = sim.channels[o].name end
      end
      local v = table.concat(peers, ",")
      if (ch.vars.BRIDGEPEER or "") ~= v then sim:set_var(ch, "BRIDGEPEER", v) end
    end
  end
end

local function bridge_add(self, br, ch)
  if ch.bridge == br.id then return end
  if ch.bridge then self:bridge_remove(self.bridges[ch.bridge], ch) end
  ch.bridge = br.id
  br.channels[#br.channels + 1] = ch.id
  -- a channel's apps are subscribed to the bridge it enters
  for app in pairs(ch.subs) do
    if not br.subs[app] then br.subs[app] = "join" end
  end
  if #br.channels > 2 and br.bridge_type:find("mixing") then br.technology = "softmix" end
  local fields = { "bridge", self:bridge_json(br), "channel", self:snapshot(ch) }
  local subs = {}
  for k in pairs(br.subs) do subs[k] = true end
  self:deliver("ChannelEnteredBridge", fields, self:targets(subs), ch.call)
  -- (calls helper) wake a far end waiting in `wait_bridge`
  if ch.far_waiters then self:wake_far(ch, "bridge") end
  if br.moh then ch.bridge_moh = true end
  set_bridgepeers(self, br)
  self:media_bridge_changed(br)
end

local function bridge_remove(self, br, ch)
  if not br or ch.bridge ~= br.id then return end
  for i, id in ipairs(br.channels) do
    if id == ch.id then table.remove(br.channels, i) break end
  end
  ch.bridge = nil
  local subs = {}
  for k in pairs(br.subs) do subs[k] = true end
  for k in pairs(ch.subs) do subs[k] = true end
  -- the leaving channel's BRIDGEPEER is cleared before ChannelLeftBridge
  if (ch.vars.BRIDGEPEER or "") ~= "" then self:set_var(ch, "BRIDGEPEER", "") end
  self:deliver("ChannelLeftBridge", { "bridge", self:bridge_json(br), "channel", self:snapshot(ch) },
    self:targets(subs), ch.call)
  set_bridgepeers(self, br)
  if br.video_source_id == ch.id then br.video_source_id = nil end
  self:media_left_bridge(ch)
  self:media_bridge_changed(br)
end

--- The far end `ch` (in a bridge) blind-transfers its peer to
-- exten@context with the DTMF feature (#1): ChannelHold, ChannelUnhold,
-- BridgeBlindTransfer (result Success), then ch leaves the bridge and hangs
-- up.  The transferee stays in the (Stasis) bridge for the app to handle.
local function far_blind_transfer(self, ch, exten, context)
  local br = ch.bridge and self.bridges[ch.bridge]
  if not br then
    self:note(ch.call, "scenario: blind_transfer outside a bridge ignored")
    return
  end
  local transferee
  for _, id in ipairs(br.channels) do
    if id ~= ch.id and self.channels[id] then transferee = self.channels[id] break end
  end
  self:chan_event(ch, "ChannelHold", { "channel", self:snapshot(ch) })
  self:chan_event(ch, "ChannelUnhold", { "channel", self:snapshot(ch) })
  local subs = {}
  for k in pairs(br.subs) do subs[k] = true end
  for k in pairs(ch.subs) do subs[k] = true end
  local fields = { "channel", self:snapshot(ch), "exten", exten, "context", context,
    "result", "Success", "is_external", false }
  if transferee then fields[#fields + 1] = "transferee"; fields[#fields + 1] = self:snapshot(transferee) end
  fields[#fields + 1] = "bridge"; fields[#fields + 1] = self:bridge_json(br)
  self:deliver("BridgeBlindTransfer", fields, self:targets(subs), ch.call)
  self:bridge_remove(br, ch)
  self:hangup(ch, 16)
end

local function create_bridge(sim, p, id)
  local btype = p.type or "mixing"
  for t in btype:gmatch("[^,]+") do
    if not TYPES[t] then return 400, err_body("Invalid bridge type '" .. t .. "'") end
  end
  id = (id and id ~= "") and id or sim:uniqueid_uuid()
  if sim.bridges[id] then return 409, err_body("Bridge with the same ID already exists") end
  local holding = btype:find("holding") ~= nil
  local br = { id = id, name = p.name or "", bridge_type = holding and "holding" or "mixing",
    technology = holding and "holding_bridge" or "simple_bridge", channels = {}, subs = {},
    creationtime = sim:timestamp(), video_mode = "talker", vars = {}, playq = {},
    call = sim.current_call }
  if btype:find("video_sfu") then br.video_mode = "sfu" elseif btype:find("video_single") then br.video_mode = "single" end
  sim.bridges[id] = br
  sim.bridge_order[#sim.bridge_order + 1] = id
  sim:bridge_event(br, "BridgeCreated", nil, true)
  return 200, sim:bridge_json(br)
end

local function destroy_bridge(self, br)
  -- the channels leave in the order they entered (as Asterisk)
  local ids = {}
  for i, id in ipairs(br.channels) do ids[i] = id end
  for _, id in ipairs(ids) do
    local ch = self.channels[id]
    if ch then self:bridge_remove(br, ch) end
  end
  local q = br.playq
  while q and q[1] do self:finish_playback(q[1], "done") end
  for _, rec in pairs(self.live_recordings) do
    if rec.target_kind == "bridge" and rec.target_id == br.id then self:finish_recording(rec, "done") end
  end
  self.bridges[br.id] = nil
  for i, id in ipairs(self.bridge_order) do
    if id == br.id then table.remove(self.bridge_order, i) break end
  end
  self:bridge_event(br, "BridgeDestroyed")
end

local function get_bridge(sim, id)
  local br = sim.bridges[id]
  if not br then return nil, 404, err_body("Bridge not found") end
  return br
end

local function bridges_list(sim)
  local out = arr {}
  for _, id in ipairs(sim.bridge_order) do out[#out + 1] = sim:bridge_json(sim.bridges[id]) end
  return 200, out
end
local function bridges_create(sim, p) return create_bridge(sim, p, p.bridgeId) end
local function bridges_createWithId(sim, p)
  local br = sim.bridges[p.bridgeId]
  if br then
    if p.name then br.name = p.name end
    return 200, sim:bridge_json(br)
  end
  return create_bridge(sim, p, p.bridgeId)
end
local function bridges_get(sim, p)
  local br, s, b = get_bridge(sim, p.bridgeId)
  if not br then return s, b end
  return 200, sim:bridge_json(br)
end
local function bridges_destroy(sim, p)
  local br, s, b = get_bridge(sim, p.bridgeId)
  if not br then return s, b end
  sim:destroy_bridge(br)
  return 204
end

local function channel_list(sim, p)
  if p.channel == nil or p.channel == "" then return nil, 400, err_body("Missing parameter channel") end
  local list = {}
  for id in p.channel:gmatch("[^,]+") do
    local ch = sim.channels[id]
    if not ch then return nil, 400, err_body("Channel not found") end
    list[#list + 1] = ch
  end
  return list
end

-- The bridge p.bridgeId and the channels of p.channel, or nil, nil, status, body.
local function bridge_and_channels(sim, p)
  local br, s, b = get_bridge(sim, p.bridgeId)
  if not br then return nil, nil, s, b end
  local list
  list, s, b = channel_list(sim, p)
  if not list then return nil, nil, s, b end
  return br, list
end

local function bridges_addChannel(sim, p)
  local br, list, s, b = bridge_and_channels(sim, p)
  if not br then return s, b end
  for _, ch in ipairs(list) do
    if not ch.app then return 422, err_body("Channel not in Stasis application") end
    for _, rec in pairs(sim.live_recordings) do
      if rec.target_kind == "channel" and rec.target_id == ch.id then
        return 409, err_body("Channel is currently recording")
      end
    end
  end
  if p.role and p.role ~= "" then for _, ch in ipairs(list) do ch.bridge_role = p.role end end
  for _, ch in ipairs(list) do sim:bridge_add(br, ch) end
  return 204
end

local function bridges_removeChannel(sim, p)
  local br, list, s, b = bridge_and_channels(sim, p)
  if not br then return s, b end
  for _, ch in ipairs(list) do
    if not ch.app then return 422, err_body("Channel not in Stasis application") end
    if ch.bridge ~= br.id then return 422, err_body("Channel not in this bridge") end
  end
  for _, ch in ipairs(list) do
    sim:bridge_remove(br, ch)
    -- Asterisk 22: once one of its channels is taken out with
    -- removeChannel, an app is no longer subscribed to the bridge (even
    -- with other channels of it still inside: no BridgeDestroyed then),
    -- unless it played or recorded on the bridge (the announcer/recorder
    -- channel keeps it) or subscribed explicitly.  Hang-ups leave it.
    for app in pairs(ch.subs) do
      if br.subs[app] == "join" then br.subs[app] = nil end
    end
  end
  return 204
end

local function bridges_setVideoSource(sim, p)
  local br, s, b = get_bridge(sim, p.bridgeId)
  if not br then return s, b end
  local ch = sim.channels[p.channelId]
  if not ch then return 404, err_body("Channel not found") end
  if not ch.app then return 409, err_body("Channel not in Stasis application") end
  if ch.bridge ~= br.id then return 422, err_body("Channel not in this bridge") end
  br.video_mode = "single"
  br.video_source_id = ch.id
  return 204
end
local function bridges_clearVideoSource(sim, p)
  local br, s, b = get_bridge(sim, p.bridgeId)
  if not br then return s, b end
  br.video_source_id = nil
  br.video_mode = "talker"
  return 204
end
local function bridges_startMoh(sim, p)
  local br, s, b = get_bridge(sim, p.bridgeId)
  if not br then return s, b end
  br.moh = p.mohClass or "default"
  return 204
end
local function bridges_stopMoh(sim, p)
  local br, s, b = get_bridge(sim, p.bridgeId)
  if not br then return s, b end
  if not br.moh then return 409, err_body("Bridge isn't playing music on hold") end
  br.moh = nil
  return 204
end

-- bridge variables
local function bridges_getBridgeVar(sim, p)
  local br, s, b = get_bridge(sim, p.bridgeId)
  if not br then return s, b end
  if p.variable == nil or p.variable == "" then return 400, err_body("Variable name is required") end
  local v = br.vars[p.variable]
  if v == nil then return 404, err_body("Provided variable was not found") end
  return 200, obj { "value", v }
end
local function bridges_setBridgeVar(sim, p)
  local br, s, b = get_bridge(sim, p.bridgeId)
  if not br then return s, b end
  if p.variable == nil or p.variable == "" then return 400, err_body("Variable name is required") end
  br.vars[p.variable] = p.value or ""
  return 204
end
local function bridges_getBridgeVars(sim, p)
  local br, s, b = get_bridge(sim, p.bridgeId)
  if not br then return s, b end
  if p.variables == nil or p.variables == "" then return 400, err_body("Variable names are required") end
  local kv = {}
  for name in p.variables:gmatch("[^,]+") do
    local v = br.vars[name]
    if v == nil then return 404, err_body("Provided variable was not found") end
    kv[#kv + 1] = name; kv[#kv + 1] = v
  end
  return 200, obj { "variables", obj(kv) }
end
local function bridges_setBridgeVars(sim, p)
  local br, s, b = get_bridge(sim, p.bridgeId)
  if not br then return s, b end
  local vars = type(p.variables) == "table" and p.variables.variables
  if type(vars) ~= "table" then return 400, err_body("Variables are required") end
  for k, v in pairs(vars) do
    br.vars[k] = type(v) == "table" and tostring(v.value or "") or tostring(v)
  end
  return 204
end

return util.module {
  -- methods of the Sim class
  methods = {
    bridge_json = bridge_json, bridge_event = bridge_event, bridge_add = bridge_add,
    bridge_remove = bridge_remove, far_blind_transfer = far_blind_transfer, destroy_bridge = destroy_bridge,
  },
  -- route handlers by resource and operation nickname
  routes = {
    bridges = {
      list = bridges_list, create = bridges_create, createWithId = bridges_createWithId, get = bridges_get,
      destroy = bridges_destroy, addChannel = bridges_addChannel, removeChannel = bridges_removeChannel,
      setVideoSource = bridges_setVideoSource, clearVideoSource = bridges_clearVideoSource,
      startMoh = bridges_startMoh, stopMoh = bridges_stopMoh, getBridgeVar = bridges_getBridgeVar,
      setBridgeVar = bridges_setBridgeVar, getBridgeVars = bridges_getBridgeVars,
      setBridgeVars = bridges_setBridgeVars,
    },
  },
  get_bridge = get_bridge,
}
