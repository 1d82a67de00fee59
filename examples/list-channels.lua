-- list-channels.lua: lists the channels, bridges and endpoints of an
-- Asterisk, then exits (REST only: no Stasis app, no events socket).
--
--   ari-lua --url http://127.0.0.1:8088 --user asterisk --password secret examples/list-channels.lua
--   ARI_URL=http://127.0.0.1:8088 ARI_USER=asterisk ARI_PASSWORD=secret ari-lua examples/list-channels.lua
--
-- ari-lua's options (--url, --user, --password) go before the script: what
-- follows the script is passed to it.  It also runs under a plain lua5.4
-- with ari-lua installed (ARI_URL, ARI_USER, ARI_PASSWORD from the
-- environment): lua5.4 examples/list-channels.lua
local ari = require "ari"

local function main()
  local client = ari.connect { events = false }   -- REST only
  local channels = client.channels.list()
  print(("%d channel(s)"):format(#channels))
  for _, ch in ipairs(channels) do
    print(("  %-24s %-40s %-8s %s <%s>"):format(ch.id, ch.name, ch.state,
      ch.caller and ch.caller.name or "", ch.caller and ch.caller.number or ""))
  end
  local bridges = client.bridges.list()
  print(("%d bridge(s)"):format(#bridges))
  for _, b in ipairs(bridges) do
    print(("  %-24s %-10s %d channel(s)"):format(b.id, b.bridge_type or "", #(b.channels or {})))
  end
  local endpoints = client.endpoints.list()
  print(("%d endpoint(s)"):format(#endpoints))
  for _, e in ipairs(endpoints) do
    print(("  %s/%s %s"):format(e.technology, e.resource, e.state or ""))
  end
  client:close()
end

if coroutine.isyieldable() then
  main() -- run by the ari-lua host, already in a coroutine
else
  ari.run(main)
end
