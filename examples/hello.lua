-- hello.lua: the smallest ari-lua app.  Answers every call that enters the
-- Stasis app "hello", plays hello-world, hangs up.
--
--   ari-lua --sim examples/hello.lua                       # built-in simulated Asterisk
--   ari-lua --url http://pbx:8088 --user u --password p examples/hello.lua
--
-- On a real Asterisk, send calls to it from the dialplan:
--   exten => 100,1,Stasis(hello)
local ari = require "ari"

local app = ari.app "hello"

app:on_call(function(call)
  call.log:info("call from %s", call.channel.caller.number)
  call:answer()
  call:play("sound:hello-world")   -- returns when PlaybackFinished arrives
  call:hangup()
end)
