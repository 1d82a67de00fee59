-- spec/support/differential.lua's re-run of the real side: a flow whose real
-- transcript differs outside the allow-list is run again; it passes only when
-- a re-run matches, and the earlier runs are still reported.  (No server:
-- the two sides are stubbed with recorders holding notes.)
local D = require "spec.support.differential"
local flows = require "spec.support.flows"
local T = require "spec.support.transcript"

describe("differential check re-runs", function()
  local saved = {}
  before_each(function()
    saved.list, saved.real, saved.sim = flows.list, D.run_real, D.run_sim
    flows.list = { { name = "stub flow" } }
  end)
  after_each(function()
    flows.list, D.run_real, D.run_sim = saved.list, saved.real, saved.sim
  end)

  local function rec(...)
    local r = T.recorder("rr")
    for _, line in ipairs { ... } do r:note(line) end
    return r
  end

  -- real runs give these notes in turn; the simulator always "a", "b"
  local function sides(real_runs)
    local n = 0
    D.run_real = function() n = n + 1; return rec(table.unpack(real_runs[math.min(n, #real_runs)])) end
    D.run_sim = function() return rec("a", "b") end
    return function() return n end
  end

  it("a race that a re-run does not show passes, and is reported", function()
    local runs = sides { { "b", "a" }, { "a", "b" } }
    local r = D.check("http://unused", "u", "p", {})
    assert.equals(2, runs())
    assert.equals(0, r.unexplained)
    assert.equals(1, r.reruns)
    assert.equals(1, #r.reports)
    assert.truthy(r.reports[1]:find("matched on re-run 1", 1, true))
    assert.truthy(r.reports[1]:find("DIFF only in", 1, true), "the first run's differences are in the report")
  end)

  it("a difference every run shows fails after the re-runs", function()
    local runs = sides { { "a", "c" } }
    local r = D.check("http://unused", "u", "p", {})
    assert.equals(1 + D.RERUNS, runs())
    assert.is_true(r.unexplained > 0)
    assert.equals(0, r.reruns)
    assert.truthy(r.reports[1]:find("differs on every run", 1, true))
  end)

  it("an allowed difference is not re-run", function()
    local runs = sides { { "a", "b", "extra" } }
    local allow = { { group = "^notes$", line = "^extra$", reason = "test" } }
    local r = D.check("http://unused", "u", "p", allow)
    assert.equals(1, runs())
    assert.equals(0, r.unexplained)
    assert.equals(1, r.allowed)
    assert.equals(0, r.reruns)
  end)

  it("a matching flow runs once and reports nothing", function()
    local runs = sides { { "a", "b" } }
    local r = D.check("http://unused", "u", "p", {})
    assert.equals(1, runs())
    assert.same({}, r.reports)
    assert.equals(0, r.unexplained + r.allowed + r.reruns)
  end)
end)
