-- A user's spec for examples/ivr-menu.lua, written with ari.testing: the
-- app runs against the simulated Asterisk with the callers of
-- examples/scenarios/ivr-menu.lua, then we check what each caller heard,
-- pressed and ended up with.  Run it with busted from the repository root
-- (`busted examples/spec/ivr_spec.lua`), or in `make test`.
local testing = require "ari.testing"

local function count(list, value)
  local n = 0
  for _, v in ipairs(list) do if v == value then n = n + 1 end end
  return n
end

local function index_of(list, value, from)
  for i = from or 1, #list do if list[i] == value then return i end end
end

describe("the IVR menu example", function()
  local r
  setup(function()
    r = testing.run { app = "examples/ivr-menu.lua", scenario = "examples/scenarios/ivr-menu.lua", speed = 20 }
  end)

  local function caller(number)
    for _, c in ipairs(r.incoming) do if c.caller == number then return c end end
    error("no call from " .. number)
  end

  it("takes the four calls and ends them all, without script errors", function()
    assert.is_false(r.timed_out)
    assert.same({}, r.errors)
    assert.equals(4, #r.incoming)
    for _, c in ipairs(r.incoming) do
      assert.is_true(c.answered)
      assert.is_number(c.hangup_cause)
    end
  end)

  it("1: reads the caller's number back, after the menu", function()
    local c = caller("1001")
    assert.equals("1", c.digits)
    local menu = index_of(c.played, "sound:demo-instruct")
    local from = index_of(c.played, "sound:vm-from")
    assert.is_truthy(menu and from and menu < from)
    assert.equals("digits:1001", c.played[from + 1])
    assert.equals("far end", c.hung_up_by)
  end)

  it("2 pressed before the menu (type-ahead): straight to the operator, bridged", function()
    local c = caller("1002")
    assert.equals("2", c.digits)
    assert.equals(0, count(c.played, "sound:demo-instruct"))   -- the typed-ahead digit skipped the menu
    assert.is_truthy(index_of(c.played, "sound:transfer"))
    assert.equals(1, #c.bridges)
    local b = r.bridges[c.bridges[1]]
    assert.equals("mixing", b.type)
    assert.equals(2, b.max_members)                             -- the caller and the operator
    assert.is_true(b.destroyed)
  end)

  it("three invalid choices: the menu three times, then goodbye and the app hangs up", function()
    local c = caller("1003")
    assert.equals("789", c.digits)
    assert.equals(3, count(c.played, "sound:demo-instruct"))
    assert.is_true(count(c.played, "sound:pm-invalid-option") >= 2)
    assert.equals("sound:vm-goodbye", c.played[#c.played])
    assert.equals("app", c.hung_up_by)
    assert.same({}, c.bridges)
  end)

  it("a busy operator: 'nobody available', then the menu again", function()
    local c = caller("1004")
    local nobody = index_of(c.played, "sound:vm-nobodyavail")
    assert.is_truthy(nobody)
    assert.equals("sound:demo-instruct", c.played[nobody + 1])
    assert.same({}, c.bridges)
    assert.is_truthy(r:find("dialstatus=BUSY"))
  end)
end)
