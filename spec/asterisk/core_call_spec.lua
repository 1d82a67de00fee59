-- Real Asterisk: the basics every version must do (#core: run against 18,
-- 20, 22 and 23 in CI).  Calls are Local/<exten>@caller channels whose ;1
-- half enters the app (a caller dialling in); the far ends are the
-- dialplan of ../shared/asterisk/etc/extensions.conf [caller].
local ast = require "spec.support.asterisk"
local ari = require "ari"

ast.describe("real Asterisk: a call #core", function(inst)
  it("connects, learns the server, answers, plays, reads digits, hangs up", function()
    local got = {}
    ast.run(function()
      local name = ast.app_name("core")
      local app = ari.app { app = name, url = inst.url, user = inst.user, password = inst.password }
      app:on_call(function(call)
        call:answer()
        got.state = call.channel.state
        call:play("sound:beep")
        got.played = true
        got.digits = call:get_digits { max = 4, terminators = "#", timeout = 10000 }
        call:hangup()
      end)
      local done
      app.on_end = function(_, outcome) done = outcome end
      local info = app.client.asterisk.getInfo()
      got.version = info.system.version
      ast.poll(function() return app.client.stats.connects > 0 end, "the events socket")
      ast.originate(app.client, "dtmf", name)
      ast.poll(function() return done ~= nil end, "the call to end")
      got.outcome = done
      app.client:close()
    end)
    assert.matches("^" .. inst.version .. "%.", got.version)
    assert.is_true(got.played)
    assert.equals("123", got.digits)
    assert.equals("normal", got.outcome)
  end)
end)
