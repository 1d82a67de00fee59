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

-- A flow whose real transcript differs outside the allow-list is run again
-- against the real server (at most RERUNS more times): Asterisk's threads
-- order some events differently from run to run (the allow-list names the
-- races seen), and a race not seen before should not fail the suite when a
-- re-run matches.  The flow passes only if a re-run has no difference
-- outside the allow-list; the differences of the runs before it are still
-- reported ("re-run") with both transcripts, so a new race is seen and can
-- be added to the allow-list.  A difference every run shows fails.
M.RERUNS = 2

local function compare(f, real, sim, allow)
  local nr, ns = T.normalise(real), T.normalise(sim)
  local c = T.compare(nr, ns, allow, f.name)
  local unexplained = 0
  for _, d in ipairs(c.diffs) do
    d.flow = f.name
    if not d.allowed then unexplained = unexplained + 1 end
  end
  return c, unexplained, nr, ns
end

local function diff_lines(c)
  local lines = {}
  for _, d in ipairs(c.diffs) do
    lines[#lines + 1] = string.format("  %s only in %s [%s]: %s", d.allowed and "allowed" or "DIFF", d.only,
      d.section, d.line)
  end
  return lines
end

--- Run every flow (or those whose name contains `only`) on both and
-- compare.  Returns { flows = n, events = compared, diffs = {...},
-- unexplained = n, allowed = n, reruns = n (flows that matched only on a
-- re-run), reports = { per flow text }, errors = {...} }.
function M.check(url, user, password, allow, opts)
  opts = opts or {}
  local out = { flows = 0, events = 0, diffs = {}, unexplained = 0, allowed = 0, reruns = 0, reports = {},
    errors = {} }
  ari.run(function()
    for _, f in ipairs(flows.list) do
      if not opts.only or f.name:find(opts.only, 1, true) then
        local real = M.run_real(f, url, user, password)
        local sim = M.run_sim(f, opts.speed)
        if sim.error then out.errors[#out.errors + 1] = f.name .. " (sim): " .. sim.error end
        local c, unexplained, nr, ns = compare(f, real, sim, allow)
        local earlier = {} -- reports of runs that differed, when a re-run is tried
        local tries = 0
        while unexplained > 0 and not real.error and tries < (opts.reruns or M.RERUNS) do
          tries = tries + 1
          earlier[#earlier + 1] = string.format("  run %d of the real side differed:\n%s\n%s", tries,
            table.concat(diff_lines(c), "\n"), T.render("real", nr))
          real = M.run_real(f, url, user, password)
          c, unexplained, nr, ns = compare(f, real, sim, allow)
        end
        if real.error then out.errors[#out.errors + 1] = f.name .. " (real): " .. real.error end
        if tries > 0 and unexplained == 0 then out.reruns = out.reruns + 1 end
        out.flows = out.flows + 1
        out.events = out.events + c.compared
        for _, d in ipairs(c.diffs) do
          out.diffs[#out.diffs + 1] = d
          if d.allowed then out.allowed = out.allowed + 1 else out.unexplained = out.unexplained + 1 end
        end
        local lines = diff_lines(c)
        if #lines > 0 or #earlier > 0 or opts.verbose then
          local text = "flow: " .. f.name
          if #earlier > 0 then
            text = text .. (unexplained == 0 and " (matched on re-run " .. tries .. ": a race outside the allow-list)"
              or " (differs on every run)") .. "\n" .. table.concat(earlier, "\n")
          end
          -- both transcripts where a difference is not allowed (or DIFF_VERBOSE)
          out.reports[#out.reports + 1] = text .. (#lines > 0 and ("\n" .. table.concat(lines, "\n")) or "")
            .. ((opts.verbose or unexplained > 0 or #earlier > 0) and ("\n" .. T.render("real", nr) .. "\n"
              .. T.render("sim", ns)) or "")
        end
      end
    end
  end)
  return out
end

return M
