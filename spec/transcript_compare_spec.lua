-- spec/support/transcript.lua's comparison, which the differential check
-- (spec/asterisk/differential_spec.lua) rests on: an allow-list entry
-- marked reorder allows a line at another place, never a missing one.
local T = require "spec.support.transcript"

local function norm(lines)
  return { rest = {}, notes = {}, groups = { caller = lines }, group_order = { "caller" }, events = #lines }
end

local ALLOW = { { group = "^events ", line = "^Dial dialstatus= ", reorder = true } }

describe("transcript.compare", function()
  it("finds nothing where both sides are the same", function()
    local a = { "Dial dialstatus= peer=caller", "ChannelStateChange state=Ringing" }
    local r = T.compare(norm(a), norm(a), ALLOW, "f")
    assert.same({}, r.diffs)
    assert.equals(2, r.compared)
  end)

  it("allows a reorder entry's line that is only at another place", function()
    local real = { "ChannelStateChange state=Ringing", "Dial dialstatus= peer=caller" }
    local sim = { "Dial dialstatus= peer=caller", "ChannelStateChange state=Ringing" }
    local r = T.compare(norm(real), norm(sim), ALLOW, "f")
    assert.equals(2, #r.diffs)
    for _, d in ipairs(r.diffs) do assert.is_table(d.allowed) end
  end)

  it("does not allow a reorder entry's line that one side lacks", function()
    local real = { "ChannelStateChange state=Ringing" }
    local sim = { "Dial dialstatus= peer=caller", "ChannelStateChange state=Ringing" }
    local r = T.compare(norm(real), norm(sim), ALLOW, "f")
    assert.equals(1, #r.diffs)
    assert.equals("sim", r.diffs[1].only)
    assert.is_nil(r.diffs[1].allowed)
  end)

  it("reports a difference outside the allow-list", function()
    local r = T.compare(norm({ "StasisStart state=Up args=" }), norm({ "StasisStart state=Down args=" }), ALLOW, "f")
    assert.equals(2, #r.diffs)
    for _, d in ipairs(r.diffs) do assert.is_nil(d.allowed) end
  end)
end)
