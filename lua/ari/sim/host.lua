-- ari.sim.host: `ari-lua --sim[=scenario.lua] app.lua`.
--
-- Starts the simulator on 127.0.0.1 (ephemeral port) in-process, points
-- ari.config at it, runs the app, and ends when the scenario is over (every
-- scripted call has ended): prints the transcript, writes it as JSON lines
-- with --transcript FILE, and returns the app's exit code.
local core = require "ari.core"
local config = require "ari.config"
local simmod = require "ari.sim"
local json = require "ari.sim.json"

local M = {}

--- Human-readable transcript, grouped per call.
function M.format_transcript(sim)
  local out = {}
  local by_call, order = {}, {}
  for _, e in ipairs(sim.transcript) do
    local k = e.call or "-"
    if not by_call[k] then by_call[k] = {}; order[#order + 1] = k end
    table.insert(by_call[k], e)
  end
  for _, k in ipairs(order) do
    local call = sim.calls[k]
    out[#out + 1] = k == "-" and "== general" or ("== " .. k .. (call and call.label and (" (" .. call.label .. ")") or ""))
    for _, e in ipairs(by_call[k]) do
      local tag = e.kind == "rest" and ">>" or (e.kind == "event" and "<<" or "--")
      local who = e.app and (e.app .. ": ") or ""
      out[#out + 1] = string.format("[%9.3f] %s %s%s", e.t / 1000, tag, who, e.summary)
    end
  end
  return table.concat(out, "\n") .. "\n"
end

function M.write_jsonl(sim, path)
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  for _, e in ipairs(sim.transcript) do
    f:write(json.encode(json.obj { "t", e.t, "call", e.call, "kind", e.kind, "app", e.app, "type", e.type,
      "method", e.method, "path", e.path, "status", e.status, "summary", e.summary,
      -- kind "media": an external media stream's figures (ari.sim.extmedia)
      "channel", e.channel, "media", e.media }), "\n")
  end
  f:close()
  return true
end

function M.run(chunk, args, opts, run_main)
  local scenario = opts.sim
  if scenario == true or scenario == "" then scenario = nil end
  -- a fresh password per run: it is redacted from logs, and a fixed word
  -- like "asterisk" would be redacted everywhere (asterisk_id, ...)
  local ok, sim = pcall(simmod.new, { speed = config.sim_speed or opts.sim_speed or 1, scenario = scenario,
    password = "sim-" .. require("ari.uuid").new():sub(1, 8),
    logger = function(level, msg) require("ari.log")[level == "warn" and "warn" or (level == "error" and "error" or "info")]("sim: %s", msg) end })
  if not ok then io.stderr:write("ari-lua: ", tostring(sim), "\n"); return 1 end
  local lok, lerr = pcall(sim.listen, sim, { host = "127.0.0.1", port = 0 })
  if not lok then io.stderr:write("ari-lua: ", tostring(lerr), "\n"); return 1 end
  config.url = sim.url
  config.user = sim.user
  config.password = sim.password
  require("ari.log").add_secret(sim.password)
  local scen = require "ari.sim.scenario"
  -- the scenario's app, renamed like the script's by --app / ARI_APP (ari.config.app_name)
  local want_app, resolved = nil, false
  local finished = false
  local main_done = false
  local function finish(reason)
    if finished then return end
    finished = true
    sim:note(nil, "simulation over (%s)", reason)
    local ari = require "ari"
    ari.shutdown("simulation over")
    -- give the app a moment to see its calls end, then stop
    core.timer(math.max(50, math.floor(200)), function()
      sim:close()
      core.stop()
    end)
  end
  -- [ship] a scenario without scripted callers (an app that only
  -- originates, e.g. click-to-call) ends once the script's main chunk has
  -- returned and its calls have ended, not as soon as the app connects
  local scn = sim.scenario
  local has_callers = scn.default or #(scn.calls or {}) > 0 or #(scn.load or {}) > 0
  local calls_ended = false
  local function all_calls_ended()
    if has_callers or main_done then finish("all calls ended") else calls_ended = true end
  end
  -- [/ship]
  sim.connect_hooks[#sim.connect_hooks + 1] = function(apps)
    if not resolved then
      want_app, resolved = config.app_name(sim.scenario.app, false), true
      if sim.scenario.app then sim.scenario.app = want_app end -- its calls go to the renamed app
    end
    for _, app in ipairs(apps) do
      if want_app == nil or want_app == app then
        scen.start(sim, app, all_calls_ended)
        want_app = app
        return
      end
    end
  end
  if sim.scenario.timeout then
    sim:after(sim.scenario.timeout, function() finish("scenario timeout") end)
  end
  local function main(...)
    chunk(...)
    main_done = true
    if calls_ended then finish("all calls ended") end -- [ship]
    -- a script that never connected: nothing to simulate
    if not next(sim.scenario_started) then
      core.timer(3000, function()
        if not next(sim.scenario_started) then finish("the app did not connect") end
      end)
    end
  end
  local rc = run_main(main, table.unpack(args))
  local _ = main_done
  sim:close()
  io.stdout:write(M.format_transcript(sim))
  io.stdout:flush()
  if config.transcript then
    local wok, werr = M.write_jsonl(sim, config.transcript)
    if not wok then io.stderr:write("ari-lua: cannot write transcript: ", tostring(werr), "\n"); return 1 end
  end
  return rc
end

return M
