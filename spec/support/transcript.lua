-- What an ARI client saw, recorded and normalised so that the same flow run
-- against the simulator and against a real Asterisk can be compared
-- (spec/asterisk/differential_spec.lua).
--
--   local T = require "spec.support.transcript"
--   local rec = T.recorder("diff")                 -- ids and app names unique to this run
--   local client = rec:connect(url, user, password) -- ari.connect with a recording transport + router
--   rec:id("caller")  -> "diff-1a2b-caller"       -- an id whose normalised name is {caller}
--   rec:note("digits 123#")                        -- a line of the flow's own results
--   local n = T.normalise(rec)  -- { rest = {lines}, notes = {lines}, groups = { [group] = {lines} },
--                               --   events = count }
--   local d = T.compare(real, sim, allow, flow)     -- differences (allowed ones marked)
--
-- Normalisation: ids the flow assigned become {role}; other ids become
-- {kind?N} in order of first appearance; channel names lose their sequence
-- number (Local/dtmf@caller-0000001a;1 -> Local/dtmf@caller-N;1); timestamps,
-- unique ids and durations are dropped (a recording's duration is kept as
-- 0 or >0), and so is the peer state of the first Dial event (its snapshot
-- races the far end in Asterisk).  Events are grouped by the object they concern (a channel, a
-- bridge, a playback, a recording, or "app"): their order is compared per
-- group, since events of different objects are not ordered by Asterisk.
local M = {}

local seq = 0

local Rec = {}
Rec.__index = Rec

--- A recorder: prefix names this run's ids and apps.
function M.recorder(prefix)
  seq = seq + 1
  local ok, uuid = pcall(require, "ari.uuid")
  local tag = (ok and uuid.new():sub(1, 6) or tostring(os.time() % 1000000)) .. seq
  return setmetatable({ prefix = (prefix or "t") .. tag, roles = {}, role_list = {}, entries = {},
    clients = {} }, Rec)
end

--- An id (channel, bridge, playback, recording name) for a role.
function Rec:id(role)
  local id = self.prefix .. "-" .. role
  if not self.roles[id] then
    self.roles[id] = role
    self.role_list[#self.role_list + 1] = id
  end
  return id
end

--- A Stasis application name for a role ("app", "app2").
function Rec:app(role)
  return self:id(role or "app")
end

function Rec:note(fmt, ...)
  self.entries[#self.entries + 1] = { kind = "note", text = select("#", ...) > 0 and fmt:format(...) or fmt }
end

--- ari.connect whose REST traffic and events are recorded.  opts: app
-- (default rec:app()), subscribe_all.
function Rec:connect(url, user, password, opts)
  opts = opts or {}
  local ari = require "ari"
  local http = require "ari.http"
  local client
  local label = opts.label
  local function transport(req)
    local status, body, headers = http.request(req)
    local msg
    if status >= 300 and type(body) == "string" then
      local v = require("ari.core").json_decode(body)
      msg = type(v) == "table" and (v.message or v.error) or nil
    end
    self.entries[#self.entries + 1] = { kind = "rest", method = req.method, path = req.path, status = status,
      message = msg, client = label }
    return status, body, headers
  end
  client = ari.connect { url = url, user = user, password = password, app = opts.app or self:app(),
    subscribe_all = opts.subscribe_all, transport = transport }
  client:add_router(function(ev)
    local barrier = ev.type == "ChannelUserevent" and type(ev.eventname) == "string"
      and ev.eventname:find("^diff%-barrier%-") ~= nil
    self.entries[#self.entries + 1] = { kind = "event", ev = ev, client = label, barrier = barrier }
  end)
  self.clients[#self.clients + 1] = client
  return client
end

--- Events recorded so far (decoded tables) for which pred holds.
function Rec:events(pred)
  local out = {}
  for _, e in ipairs(self.entries) do
    if e.kind == "event" and (pred == nil or pred(e.ev)) then out[#out + 1] = e.ev end
  end
  return out
end

function Rec:close()
  for _, c in ipairs(self.clients) do pcall(c.close, c) end
  self.clients = {}
end

-- Normalisation -------------------------------------------------------------

local function escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

local Norm = {}
Norm.__index = Norm

local function new_norm(rec)
  local n = setmetatable({ rec = rec, map = {}, counts = {}, order = {} }, Norm)
  for id, role in pairs(rec.roles) do n.map[id] = role end
  return n
end

-- The role of an id (assigning kind?N to unknown ones).
function Norm:role(id, kind)
  if id == nil then return "-" end
  local r = self.map[id]
  if r then return r end
  self.counts[kind] = (self.counts[kind] or 0) + 1
  r = kind .. "?" .. self.counts[kind]
  self.map[id] = r
  return r
end

-- Replace known ids inside a string (paths, variable values); longest first.
function Norm:text(s)
  if type(s) ~= "string" then return tostring(s) end
  local ids = {}
  for id in pairs(self.map) do ids[#ids + 1] = id end
  table.sort(ids, function(a, b) return #a > #b end)
  for _, id in ipairs(ids) do
    if s:find(id, 1, true) then s = s:gsub(escape(id), "{" .. self.map[id] .. "}") end
  end
  -- channel names: Tech/resource-0000001a;1 -> Tech/resource-N;1
  s = s:gsub("(%a+/[^%s,;]-)%-%x%x%x%x%x%x%x%x(;?%d?)", "%1-N%2")
  -- external media channels: UnicastRTP/host:port-0x7f83c4005a40 (a pointer) -> UnicastRTP/host:port-N
  s = s:gsub("(%a+/[^%s,;]-)%-0x%x+", "%1-N")
  -- unique ids (1764667890.123)
  s = s:gsub("%d%d%d%d%d%d%d%d%d%d%.%d+", "UID")
  return s
end

local function chan_id(c) return type(c) == "table" and c.id or nil end

local function target_id(uri)
  if type(uri) ~= "string" then return nil end
  return uri:match("^[%a]+:(.*)$")
end

-- One event as a normalised line, and the group it belongs to.
function Norm:event(ev)
  local t = ev.type
  local parts = { t }
  local function add(k, v) if v ~= nil then parts[#parts + 1] = k .. "=" .. tostring(v) end end
  local group
  local ch = ev.channel
  if type(ch) == "table" then
    group = self:role(ch.id, "chan")
    add("state", ch.state)
  elseif type(ev.peer) == "table" then
    group = self:role(ev.peer.id, "chan")
  elseif type(ev.playback) == "table" then
    group = self:role(ev.playback.id, "playback")
  elseif type(ev.recording) == "table" then
    group = self:role(ev.recording.name, "recording")
  elseif type(ev.bridge) == "table" then
    group = self:role(ev.bridge.id, "bridge")
  else
    group = "app"
  end
  if t == "Dial" then
    add("dialstatus", ev.dialstatus)
    if type(ev.caller) == "table" then add("caller", self:role(ev.caller.id, "chan")) end
    if type(ev.peer) == "table" then
      add("peer", self:role(ev.peer.id, "chan"))
      -- the first Dial's peer snapshot is taken as it is published, racing
      -- the far end (already Ringing or Up on a busy machine): not compared
      if ev.dialstatus ~= "" then add("peerstate", ev.peer.state) end
    end
  elseif t == "ChannelVarset" then
    add("var", ev.variable)
    add("value", self:text(ev.value))
  elseif t == "ChannelHangupRequest" then
    add("cause", ev.cause); add("soft", ev.soft)
  elseif t == "ChannelDestroyed" then
    add("cause", ev.cause)
  elseif t == "ChannelDtmfReceived" then
    add("digit", ev.digit)
  elseif t == "ChannelDialplan" then
    add("app", ev.dialplan_app); add("data", self:text(ev.dialplan_app_data))
  elseif t == "StasisStart" then
    local args = type(ev.args) == "table" and table.concat(ev.args, ",") or ""
    add("args", args)
    if ev.replace_channel then add("replace", self:role(chan_id(ev.replace_channel), "chan")) end
  elseif t == "ChannelEnteredBridge" or t == "ChannelLeftBridge" then
    add("bridge", self:role(ev.bridge and ev.bridge.id, "bridge"))
  elseif t == "BridgeCreated" or t == "BridgeDestroyed" then
    add("type", ev.bridge and ev.bridge.bridge_type)
  elseif t:find("^Playback") then
    local pb = ev.playback
    add("state", pb.state)
    add("media", pb.media_uri)
    add("target", self:text(pb.target_uri))
  elseif t:find("^Recording") then
    local r = ev.recording
    add("state", r.state)
    if t == "RecordingFinished" then
      local d = tonumber(r.duration)
      add("duration", d == nil and "none" or (d > 0 and ">0" or "0"))
    end
    if r.cause then add("cause", r.cause) end
    add("target", self:text(r.target_uri))
  elseif t == "ChannelCallerId" then
    add("presentation", ev.caller_presentation)
    if type(ch) == "table" and ch.caller then add("caller", ch.caller.number) end
  elseif t == "ChannelConnectedLine" then
    if type(ch) == "table" and ch.connected then add("connected", ch.connected.number) end
  elseif t == "DeviceStateChanged" then
    local d = ev.device_state
    if type(d) == "table" then add("device", self:text(d.name)); add("devstate", d.state) end
  elseif t == "ChannelHold" then
    add("class", ev.musicclass)
  end
  return group, table.concat(parts, " ")
end

--- Normalise a recorder's entries (see the header).
function M.normalise(rec)
  local n = new_norm(rec)
  local out = { rest = {}, notes = {}, groups = {}, group_order = {}, events = 0 }
  for _, e in ipairs(rec.entries) do
    if e.kind == "event" and e.barrier then -- luacheck: ignore 542
      -- a flow's barrier (spec/support/flows.lua Ctx:barrier): not compared
    elseif e.kind == "event" then
      local g, line = n:event(e.ev)
      -- events of different sockets are not ordered: a group per client
      if e.client then g = "[" .. e.client .. "] " .. g end
      local lst = out.groups[g]
      if not lst then lst = {}; out.groups[g] = lst; out.group_order[#out.group_order + 1] = g end
      lst[#lst + 1] = line
      out.events = out.events + 1
    elseif e.kind == "rest" then
      local line = string.format("%s %s %d", e.method, n:text(e.path), e.status)
      if e.message then line = line .. " (" .. n:text(e.message) .. ")" end
      if e.client then line = "[" .. e.client .. "] " .. line end
      out.rest[#out.rest + 1] = line
    else
      out.notes[#out.notes + 1] = n:text(e.text)
    end
  end
  return out
end

-- Comparison -------------------------------------------------------------------

-- Longest common subsequence diff of two lists of lines: a list of
-- { op = " " | "-" | "+", line } ("-": only in a, "+": only in b).
local function diff(a, b)
  local n, m = #a, #b
  local L = {}
  for i = n + 1, 1, -1 do
    L[i] = {}
    for j = m + 1, 1, -1 do
      if i > n or j > m then L[i][j] = 0
      elseif a[i] == b[j] then L[i][j] = L[i + 1][j + 1] + 1
      else L[i][j] = math.max(L[i + 1][j], L[i][j + 1]) end
    end
  end
  local out, i, j = {}, 1, 1
  while i <= n or j <= m do
    if i <= n and j <= m and a[i] == b[j] then
      out[#out + 1] = { op = " ", line = a[i] }; i = i + 1; j = j + 1
    elseif j <= m and (i > n or L[i][j + 1] >= L[i + 1][j]) then
      out[#out + 1] = { op = "+", line = b[j] }; j = j + 1
    else
      out[#out + 1] = { op = "-", line = a[i] }; i = i + 1
    end
  end
  return out
end
M.diff = diff

-- Is a difference allowed?  allow entries: { flow = pattern (optional),
-- group = pattern (optional), only = "real" | "sim", line = pattern,
-- reorder = true (optional: the line is only elsewhere, see compare), reason }.
local function allowed(allow, flow, section, only, line)
  for _, a in ipairs(allow or {}) do
    if (a.flow == nil or flow:find(a.flow)) and (a.group == nil or section:find(a.group))
      and (a.only == nil or a.only == only) and line:find(a.line) then
      a.used = (a.used or 0) + 1
      return a
    end
  end
  return nil
end

--- Compare the normalised transcripts of one flow: real (Asterisk) and
-- sim.  Returns { compared = events compared, diffs = { {section, only,
-- line, allowed = entry|nil} } }.
function M.compare(real, sim, allow, flow)
  local res = { compared = 0, diffs = {} }
  local function section(name, a, b)
    local mine = {}
    for _, d in ipairs(diff(a or {}, b or {})) do
      if d.op ~= " " then
        local only = d.op == "-" and "real" or "sim"
        mine[#mine + 1] = { section = name, only = only, line = d.line,
          allowed = allowed(allow, flow, name, only, d.line) }
      end
    end
    -- an entry with reorder = true allows a line only at another place:
    -- the same line must be missing on the other side of this section too
    for _, d in ipairs(mine) do
      if d.allowed and d.allowed.reorder then
        local moved = false
        for _, o in ipairs(mine) do
          if o.only ~= d.only and o.line == d.line then moved = true end
        end
        if not moved then d.allowed = nil end
      end
      res.diffs[#res.diffs + 1] = d
    end
  end
  section("rest", real.rest, sim.rest)
  section("notes", real.notes, sim.notes)
  local seen, groups = {}, {}
  for _, g in ipairs(real.group_order) do if not seen[g] then seen[g] = true; groups[#groups + 1] = g end end
  for _, g in ipairs(sim.group_order) do if not seen[g] then seen[g] = true; groups[#groups + 1] = g end end
  for _, g in ipairs(groups) do
    res.compared = res.compared + math.max(#(real.groups[g] or {}), #(sim.groups[g] or {}))
    section("events " .. g, real.groups[g], sim.groups[g])
  end
  return res
end

--- A printable report of one flow's transcripts side by side (for failures).
function M.render(name, n)
  local lines = { "== " .. name, "-- rest" }
  for _, l in ipairs(n.rest) do lines[#lines + 1] = "  " .. l end
  lines[#lines + 1] = "-- notes"
  for _, l in ipairs(n.notes) do lines[#lines + 1] = "  " .. l end
  for _, g in ipairs(n.group_order) do
    lines[#lines + 1] = "-- events " .. g
    for _, l in ipairs(n.groups[g]) do lines[#lines + 1] = "  " .. l end
  end
  return table.concat(lines, "\n")
end

return M
