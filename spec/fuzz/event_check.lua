-- event_check.lua: the event path fuzz_event.c drives.  A client (no
-- socket, REST answered by a stub), an ari.app whose calls answer, play and
-- collect digits, client-wide and per-object handlers.  route(v) delivers
-- one decoded WebSocket message (any JSON value) as the WebSocket path does,
-- then hangs up every call still live so that state stays bounded.
local client_mod = require "ari.client"
local app_mod = require "ari.app"
local core = require "ari.core"

local function stub(req)
  if req.method == "GET" and req.path:find("^/channels/[^/]+/variable") then
    return 200, '{"value":"1"}', {}
  end
  return 204, "", {}
end

local client = client_mod.connect { url = "http://127.0.0.1:1", user = "u", password = "p",
  events = false, transport = stub }
local counts = { handled = 0, calls = 0 }
local function new_app()
  local a = app_mod.app { app = "test-app", client = client }
  a:on_call(function(call, args)
    counts.calls = counts.calls + 1
    call:answer()
    call:set_var("X", tostring(args[1] or ""))
    call:play("sound:hello-world")
    call:get_digits { max = 2, timeout = 50 }
    call:wait("ChannelVarset", { timeout = 10 })
  end)
  -- ApplicationReplaced (in the corpus) ends an app: here, a new one takes over
  a.on_replaced = function() end
  return a
end
local app = new_app()
client:on("*", function(ev)
  counts.handled = counts.handled + 1
  local _ = tostring(ev.type) .. tostring(ev.channel and ev.channel.id)
end)
client:on("StasisStart", function(ev)
  -- a field of the message may shadow a method (a channel with a field "on")
  if type(ev.channel) == "table" and type(rawget(ev.channel, "id")) == "string" and type(ev.channel.on) == "function" then
    ev.channel:on("ChannelDtmfReceived", function(e) local _ = e.digit end)
  end
end)

local function route(v)
  if v == nil then return end
  client:dispatch(v)
  if app.replaced then app = new_app() end
  -- end every call that is still live: as Asterisk would after a hang-up
  local ids = {}
  for id in pairs(app.calls) do ids[#ids + 1] = id end
  for _, id in ipairs(ids) do
    if type(id) == "string" then
      client:dispatch(core.json_decode(string.format(
        '{"type":"ChannelDestroyed","application":"test-app","cause":16,"channel":{"id":%s,"name":"PJSIP/x","state":"Up"}}',
        core.json_encode(id))))
    end
  end
  local n = 0
  for _ in pairs(app.calls) do n = n + 1 end
  -- calls keyed by a non-string id cannot be reached by any event: drop them
  if n > 64 then app.calls = {}; app.ncalls = 0 end
end

return route, counts
