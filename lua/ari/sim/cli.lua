-- ari.sim.cli: `ari-lua sim --listen HOST:PORT [scenario.lua]` serves the
-- simulated Asterisk until SIGINT/SIGTERM.
local core = require "ari.core"
local config = require "ari.config"
local simmod = require "ari.sim"

local M = {}

-- Options after `sim` arrive in rest (the main parser stops at the first
-- word); parse them here with the same syntax.
local function parse_rest(opts, rest)
  local out = {}
  local i = 1
  while rest[i] do
    local a = rest[i]
    if a == "-h" or a == "--help" then
      opts.sim_help = true
      i = i + 1
      goto continue
    end
    local name, val = a:match("^%-%-([%w%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w%-]+)$")
    if name then
      if not (name == "listen" or name == "sim-speed" or name == "user" or name == "password") then
        return nil, "unknown option '--" .. name .. "' (see ari-lua sim --help)"
      end
      if val == nil then i = i + 1; val = rest[i] end
      if val == nil then return nil, "option '--" .. name .. "' needs a value" end
      if name == "listen" then opts.listen = val
      elseif name == "sim-speed" then opts.sim_speed = tonumber(val)
        if not opts.sim_speed then return nil, "option '--sim-speed' takes a number" end
      elseif name == "user" then config.user = val
      elseif name == "password" then config.password = val
      else return nil, "unknown option '--" .. name .. "'" end
    else
      out[#out + 1] = a
    end
    i = i + 1
    ::continue::
  end
  return out
end

local USAGE = [[
usage: ari-lua sim [--listen HOST:PORT] [--sim-speed N] [--user U] [--password P] [scenario.lua]
Serves a simulated Asterisk 22 (ARI REST, events WebSocket, swagger docs under
/ari/api-docs/) until SIGINT/SIGTERM.  Default 127.0.0.1:8088, asterisk/asterisk.
See docs/simulator.md.
]]

function M.main(opts, rest)
  local perr
  rest, perr = parse_rest(opts, rest)
  if not rest then io.stderr:write("ari-lua: ", perr, "\n"); return 2 end
  if opts.sim_help then io.stdout:write(USAGE); return 0 end
  local listen = opts.listen or config.listen or "127.0.0.1:8088"
  local host, port = listen:match("^(.*):(%d+)$")
  if not host then
    io.stderr:write("ari-lua: --listen takes HOST:PORT, not '", listen, "'\n")
    return 2
  end
  if host == "" then host = "127.0.0.1" end
  local ok, sim = pcall(simmod.new, { speed = opts.sim_speed or config.sim_speed or 1, scenario = rest[1],
    user = config.user, password = config.password, transcript = false,
    logger = function(level, msg) io.stderr:write("sim ", level, ": ", msg, "\n") end })
  if not ok then io.stderr:write("ari-lua: ", tostring(sim), "\n"); return 1 end
  local lok, err = pcall(sim.listen, sim, { host = host, port = tonumber(port) })
  if not lok then io.stderr:write("ari-lua: ", tostring(err), "\n"); return 1 end
  local scen = require "ari.sim.scenario"
  sim.connect_hooks[#sim.connect_hooks + 1] = function(apps)
    for _, app in ipairs(apps) do
      if sim.scenario.app == nil or sim.scenario.app == app then scen.start(sim, app) end
    end
  end
  io.stdout:write(string.format("ari-lua sim: listening on %s (user %s, password %s)\n", sim.url, sim.user, sim.password))
  io.stdout:flush()
  local sigs = {}
  local function stop()
    sim:close()
    for _, s in ipairs(sigs) do s:close() end
    core.stop()
  end
  sigs[1] = core.signal("SIGINT", stop)
  sigs[2] = core.signal("SIGTERM", stop)
  core.run()
  return 0
end

return M
