-- The differential check: run the flows of spec/support/flows.lua against
-- the simulator (over loopback HTTP + WebSocket, with the scenario
-- spec/fixtures/sim/caller.lua that mirrors the test Asterisk's dialplan)
-- and against a real Asterisk, and compare their normalised transcripts
-- (spec/support/transcript.lua).  Used by spec/asterisk/differential_spec.lua.
local ari = require "ari"
local flows = require "spec.support.flows"
local T = require "spec.support.transcript"

local M = {}

M.SCENARIO = "spec/fixtures/sim/caller.lua"

--- Run one flow against a fresh simulator; returns the recorder.
function M.run_sim(flow, speed)
  local sim = require("ari.sim").new { speed = speed or 1, scenario = M.SCENARIO, logger = function() end }
  sim:listen { host = "127.0.0.1", port = 0 }
  local ok, rec = pcall(flows.run, flow, sim.url, sim.user, sim.password)
  sim:close()
  if not ok then error(rec, 0) end
  return rec
end

--- Run one flow against the Asterisk at url.
function M.run_real(flow, url, user, password)
  return flows.run(flow, url, user, password)
end

--- Run every flow (or those whose name contains `only`) on both and
-- compare.  Returns { flows = n, events = compared, diffs = {...},
-- unexplained = n, allowed = n, reports = { per flow text } }.
function M.check(url, user, password, allow, opts)
  opts = opts or {}
  local out = { flows = 0, events = 0, diffs = {}, unexplained = 0, allowed = 0, reports = {}, errors = {} }
  ari.run(function()
    for _, f in ipairs(flows.list) do
      if not opts.only or f.name:find(opts.only, 1, true) then
        local real = M.run_real(f, url, user, password)
        local sim = M.run_sim(f, opts.speed)
        local nr, ns = T.normalise(real), T.normalise(sim)
        if real.error then out.errors[#out.errors + 1] = f.name .. " (real): " .. real.error end
        if sim.error then out.errors[#out.errors + 1] = f.name .. " (sim): " .. sim.error end
        local c = T.compare(nr, ns, allow, f.name)
        out.flows = out.flows + 1
        out.events = out.events + c.compared
        local lines = {}
        for _, d in ipairs(c.diffs) do
          d.flow = f.name
          out.diffs[#out.diffs + 1] = d
          if d.allowed then out.allowed = out.allowed + 1 else out.unexplained = out.unexplained + 1 end
          lines[#lines + 1] = string.format("  %s only in %s [%s]: %s", d.allowed and "allowed" or "DIFF", d.only,
            d.section, d.line)
        end
        -- both transcripts where a difference is not allowed (or DIFF_VERBOSE)
        local unexplained = false
        for _, d in ipairs(c.diffs) do if not d.allowed then unexplained = true end end
        if #lines > 0 or opts.verbose then
          out.reports[#out.reports + 1] = "flow: " .. f.name .. "\n" .. table.concat(lines, "\n")
            .. ((opts.verbose or unexplained) and ("\n" .. T.render("real", nr) .. "\n" .. T.render("sim", ns)) or "")
        end
      end
    end
  end)
  return out
end

return M
