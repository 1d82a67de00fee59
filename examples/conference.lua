-- conference.lua: a meet-me conference room.  Callers enter a PIN-less
-- room; the first one hears music on hold until someone joins, every
-- arrival and departure is announced to the room with a beep, and the
-- room closes when the last caller leaves.  Pressing '*' mutes/unmutes
-- yourself.
--
--   ari-lua --sim=examples/scenarios/conference.lua examples/conference.lua
--   ARI_URL=http://127.0.0.1:8088 ARI_USER=asterisk ARI_PASSWORD=secret ari-lua examples/conference.lua main
--
-- Knobs: the room: the call's Stasis argument, else the script's first
-- argument, else $ROOM, else "main" (the mixing bridge is named
-- conf-<room>).  The music on hold class: $MOH_CLASS (default: Asterisk's
-- default class).  The app name ("conference"; --app NAME or ARI_APP).
-- ari-lua's options go before the script.
--
-- Dialplan on a real Asterisk:  exten => 600,1,Stasis(conference,main)
local ari = require "ari"

local ROOM = (...) or os.getenv("ROOM") or "main"
local MOH_CLASS = os.getenv("MOH_CLASS")

local app = ari.app "conference"
local rooms = {}   -- name -> { bridge = Bridge, count = n }

local function room(name)
  local r = rooms[name]
  if r then
    while r.bridge == nil and rooms[name] == r do ari.sleep(10) end -- another caller is creating it
    if rooms[name] == r then return r end
  end
  r = { count = 0 }
  rooms[name] = r
  local ok, bridge = pcall(ari.bridge, { type = "mixing", name = "conf-" .. name })
  if not ok then rooms[name] = nil; error(bridge, 0) end
  r.bridge = bridge
  return r
end

app:on_call(function(call, args)
  local name = args[1] or ROOM
  call:answer()
  call:play("sound:conf-enteringno")         -- "you are now entering the conference"
  local r = room(name)
  r.count = r.count + 1
  call:on_hangup(function()
    r.count = r.count - 1
    if r.count == 0 then
      rooms[name] = nil
      pcall(r.bridge.destroy, r.bridge)
    elseif r.count == 1 then
      pcall(r.bridge.moh, r.bridge, MOH_CLASS) -- the one left waits with music
    else
      pcall(r.bridge.play, r.bridge, "sound:beep")
    end
  end)
  r.bridge:join(call)
  call.log:info("joined room %s (%d in it)", name, r.count)
  if r.count == 1 then
    r.bridge:moh(MOH_CLASS)
  else
    if r.count == 2 then r.bridge:stop_moh() end
    r.bridge:play("sound:beep")
  end
  local muted = false
  while true do                              -- '*' toggles mute until the caller hangs up
    local d = call:get_digits { max = 1, timeout = 3600000, terminators = "" }
    if d == "*" then
      muted = not muted
      if muted then call:mute("in") else call:unmute("in") end
      call.log:info(muted and "muted" or "unmuted")
    end
  end
end)
