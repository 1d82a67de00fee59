-- Real Asterisk: DTMF in both directions, get_digits, play_and_get_digits
-- (#core).  Local/dtmf@caller answers and sends 1 2 3 # after 2 s.
local ast = require "spec.support.asterisk"
local cr = require "spec.support.callreal"
local ari = require "ari"

local LONG = "sound:demo-congrats" -- about 30 s

local function typed(call, n)
  ast.poll(function() return #call.digits >= n end, n .. " digits typed ahead", 10000)
end

ast.describe("real Asterisk: digits #core", function(inst)
  it("get_digits: terminator, max, type-ahead, no terminators, timeouts; prompts cut by a digit", function()
    local res = cr.with_app(inst, "dig", function(app)
      return cr.calls(app, {
        term = { exten = "dtmf", fn = function(call)
          call:answer()
          return call:get_digits { max = 10, terminators = "#", timeout = 10000 }
        end },
        typeahead = { exten = "dtmf", fn = function(call)
          call:answer()
          typed(call, 4) -- all four arrive while the script does something else
          local a, ha = call:get_digits { max = 2 }
          local b, hb = call:get_digits { max = 5 }
          return a, ha, b, hb, call.digits
        end },
        noterm = { exten = "dtmf", fn = function(call)
          call:answer()
          return call:get_digits { max = 10, terminators = "", timeout = 10000, interdigit_timeout = 1500 }
        end },
        star_term = { exten = "dtmf", fn = function(call)
          call:answer()
          return call:get_digits { max = 10, terminators = "3", timeout = 10000 }
        end },
        first_timeout = { exten = "s", fn = function(call)
          call:answer()
          return call:get_digits { max = 4, timeout = 300 }
        end },
        interrupt = { exten = "dtmf", fn = function(call)
          call:answer()
          local st = call:play(LONG, { interrupt_on_dtmf = true })
          local d, how = call:get_digits { max = 10, timeout = 5000 }
          return st, d, how
        end },
        interrupt_only = { exten = "dtmf", fn = function(call)
          call:answer()
          -- only # interrupts: 1 2 3 go to the buffer meanwhile
          local st = call:play(LONG, { interrupt_on_dtmf = "#" })
          return st, call:flush_digits()
        end },
        pagd = { exten = "dtmf", fn = function(call)
          call:answer()
          return call:play_and_get_digits { media = LONG, min = 3, max = 3, timeout = 10000 }
        end },
        pagd_regexp = { exten = "dtmf", fn = function(call)
          call:answer()
          return call:play_and_get_digits { media = LONG, min = 1, max = 4, regexp = "%d%d%d", timeout = 10000 }
        end },
        pagd_none = { exten = "s", fn = function(call)
          call:answer()
          local t = ari.now()
          local d = call:play_and_get_digits { media = "sound:beep", tries = 2, timeout = 300,
            invalid = "sound:beep" }
          return d, ari.now() - t
        end },
      }, 30000)
    end, 40000)
    for key, r in pairs(res) do assert.is_true(r.ok, cr.describe(key, r)) end
    assert.same({ "123", "terminator" }, res.term.values)
    assert.same({ "12", "max", "3", "terminator", "" }, res.typeahead.values)
    assert.same({ "123#", "timeout" }, res.noterm.values)
    assert.same({ "12", "terminator" }, res.star_term.values)
    assert.same({ "", "timeout" }, res.first_timeout.values)
    assert.same({ "1", "123", "terminator" }, res.interrupt.values)
    assert.same({ "#", "123#" }, res.interrupt_only.values)
    assert.same({ "123" }, res.pagd.values)
    assert.same({ "123" }, res.pagd_regexp.values)
    assert.is_nil(res.pagd_none.values[1])
  end)

  it("send_dtmf reaches the other half of a Local pair, both ways", function()
    local got = {}
    cr.with_app(inst, "sdtmf", function(app, name)
      local two
      app:on_call(function(call)
        call:answer()
        two = call
        got.two_digits = call:get_digits { max = 3, terminators = "", timeout = 10000 }
        call:send_dtmf("9*", { between = 100, duration = 120 })
        call:wait_hangup(10000)
      end)
      local one = app:originate { endpoint = "Local/" .. name .. "@stasis-app", formats = "ulaw", timeout = 5 }
      ast.poll(function() return two ~= nil end, "the other half")
      one:send_dtmf("12#")
      got.one_digits = one:get_digits { max = 2, terminators = "", timeout = 10000 }
      one:hangup()
      ast.poll(function() return app:active() == 0 end, "the pair to end")
    end, 30000)
    assert.equals("12#", got.two_digits)
    assert.equals("9*", got.one_digits)
  end)
end)
