-- hello.lua: the smallest ari-lua app.  Answers every call that enters the
-- Stasis app "hello", plays hello-world, hangs up.
--
--   ari-lua --sim examples/hello.lua              # the built-in simulated Asterisk
--   ARI_URL=http://127.0.0.1:8088 ARI_USER=asterisk ARI_PASSWORD=secret ari-lua examples/hello.lua
--   ari-lua --url http://127.0.0.1:8088 --user asterisk --password secret --app hello2 examples/hello.lua
--
-- Knobs: the app name ("hello"; --app NAME or ARI_APP=NAME serves another
-- app with the same script).  ari-lua's options go before the script: what
-- follows the script is passed to it.  Stop it with Ctrl-C (or SIGTERM).
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
