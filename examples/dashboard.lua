-- dashboard.lua: a text dashboard of an Asterisk, from the ARI REST API:
-- system info, endpoints (by state), channels (state, caller, age),
-- bridges (type, members) and counts of the events seen.  Prints a new
-- snapshot when calls come and go (at most one every INTERVAL ms), until
-- Ctrl-C (or SIGTERM).  It registers as the Stasis app "dashboard"
-- subscribed to all events, so it sees every channel and bridge; it never
-- touches a call.
--
--   ari-lua --sim=examples/scenarios/dashboard.lua examples/dashboard.lua
--   ARI_URL=http://127.0.0.1:8088 ARI_USER=asterisk ARI_PASSWORD=secret ari-lua examples/dashboard.lua 5000
--
-- Knobs: INTERVAL, the script's first argument (else $INTERVAL, else
-- 1000 ms).  The app name ("dashboard"; --app NAME or ARI_APP).  ari-lua's
-- options go before the script.
local ari = require "ari"

local INTERVAL = tonumber((...)) or tonumber(os.getenv("INTERVAL") or "") or 1000
local client = ari.connect { app = "dashboard", subscribe_all = true }

local counts, total = {}, 0
client:on("*", function(ev)
  counts[ev.type] = (counts[ev.type] or 0) + 1
  total = total + 1
end)

local function age(created)
  -- creationtime is "2025-01-02T03:04:05.678+0000"
  local y, mo, d, h, mi, s = tostring(created):match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
  if not y then return "?" end
  local t = os.time { year = tonumber(y), month = tonumber(mo), day = tonumber(d),
    hour = tonumber(h), min = tonumber(mi), sec = tonumber(s), isdst = false }
  local now = os.time(os.date("!*t"))
  return string.format("%ds", math.max(0, now - t))
end

local snapshots = 0
local function snapshot()
  snapshots = snapshots + 1
  local info = client.asterisk.getInfo()
  local endpoints = client.endpoints.list()
  local channels = client.channels.list()
  local bridges = client.bridges.list()
  local out = {}
  local function p(fmt, ...) out[#out + 1] = string.format(fmt, ...) end
  p("==== snapshot %d: Asterisk %s (%s), up since %s", snapshots,
    info.system and info.system.version or "?", info.system and info.system.entity_id or "?",
    info.status and info.status.startup_time or "?")
  local by_state = {}
  for _, e in ipairs(endpoints) do by_state[e.state or "unknown"] = (by_state[e.state or "unknown"] or 0) + 1 end
  local states = {}
  for st, n in pairs(by_state) do states[#states + 1] = st .. "=" .. n end
  table.sort(states)
  p("endpoints: %d (%s)", #endpoints, table.concat(states, " "))
  for _, e in ipairs(endpoints) do
    p("  %-24s %-8s %d channel(s)", e.technology .. "/" .. e.resource, e.state or "", #(e.channel_ids or {}))
  end
  p("channels: %d", #channels)
  for _, ch in ipairs(channels) do
    p("  %-28s %-8s %-16s %-6s %s", ch.name, ch.state, (ch.caller and ch.caller.number or "") ..
      (ch.caller and ch.caller.name ~= "" and (" " .. ch.caller.name) or ""), age(ch.creationtime),
      ch.dialplan and (ch.dialplan.app_name ~= "" and ch.dialplan.app_name or ch.dialplan.exten) or "")
  end
  p("bridges: %d", #bridges)
  for _, b in ipairs(bridges) do
    p("  %-36s %-8s %d member(s) %s", b.id, b.bridge_type or "", #(b.channels or {}), b.name or "")
  end
  local types = {}
  for t, n in pairs(counts) do types[#types + 1] = string.format("%s=%d", t, n) end
  table.sort(types)
  p("events: %d (%s)", total, table.concat(types, " "))
  io.stdout:write(table.concat(out, "\n"), "\n")
  io.stdout:flush()
end

-- A snapshot when something changed, at most one every INTERVAL ms.
local dirty, busy, stopping = true, false, false
local function refresh()
  if busy or stopping then return end
  busy = true
  while dirty and not stopping do
    dirty = false
    local ok, err = pcall(snapshot)
    if not ok then ari.log.warn("snapshot failed: %s", tostring(err)) end
    ari.sleep(INTERVAL)
  end
  busy = false
end
for _, t in ipairs { "StasisStart", "StasisEnd", "ChannelCreated", "ChannelDestroyed", "BridgeCreated",
  "BridgeDestroyed", "ChannelEnteredBridge", "ChannelLeftBridge" } do
  client:on(t, function() dirty = true; refresh() end)
end

ari.on_shutdown(function()
  stopping = true
  client:close()
end)
refresh()
