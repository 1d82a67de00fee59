-- ari.cli: the `ari-lua` command line.  main(argv) returns the exit code:
-- 0 clean, 1 script error, 2 usage error, or what a library part that
-- ended the process set in config.exit_code (3: ari.app's Stasis
-- application was registered by another connection, ApplicationReplaced).
local core = require "ari.core"
local config = require "ari.config"

local M = {}

local USAGE = [[
usage: ari-lua [options] script.lua [args...]
       ari-lua sim --listen HOST:PORT [scenario.lua]

Runs script.lua as a coroutine on ari-lua's event loop, connected to Asterisk
ARI.  Options go before the script; what follows it is the script's (its
`...` and `arg`).  It exits when the script has returned and nothing waits
for calls or events (no on_call, client:on or pending timer; see
docs/getting-started.md), else on SIGINT/SIGTERM.
Options (environment defaults in brackets):
  --url URL             ARI base URL, e.g. http://127.0.0.1:8088 (http:// is
                        assumed without a scheme; a trailing /ari is fine) [ARI_URL]
  --user NAME           ARI user [ARI_USER]
  --password SECRET     ARI password [ARI_PASSWORD]
  --app NAME            Stasis application name; wins over the name the
                        script gives (ari.app "hello") [ARI_APP]
  --log-level LEVEL     error, warn, info (default) or debug (debug: connection,
                        each REST request and each event)
  --log-format FORMAT   text (default) or json
  --shutdown-grace MS   on SIGINT/SIGTERM, how long running calls may finish
  --sim[=SCENARIO]      run against the built-in simulated Asterisk
  --sim-speed N         run simulated durations N times faster
  --transcript FILE     write the transcript as JSON lines: the simulator's with
                        --sim, else the REST requests and events the client saw
  --metrics HOST:PORT   serve Prometheus /metrics, /healthz and /readyz there
  --listen HOST:PORT    accept Asterisk's outbound WebSocket connections there
                        (ari.conf type=outbound_websocket; see docs/modes.md)
  --plain               run the script as the standalone lua5.4 would (main
                        thread, no loop driven by the host; ari.run works)
  -h, --help            this help
  -v, --version         print the version
]]

local function usage_error(msg)
  io.stderr:write("ari-lua: ", tostring(msg), "\n", "try 'ari-lua --help'\n")
  return 2
end

-- Options that take a value: name -> config key (and a converter).
local VALUED = {
  url = { "url" }, user = { "user" }, password = { "password" }, app = { "app" },
  ["log-level"] = { "log_level" }, ["log-format"] = { "log_format" },
  ["shutdown-grace"] = { "shutdown_grace", tonumber },
  ["sim-speed"] = { "sim_speed", tonumber }, transcript = { "transcript" },
  listen = { "listen" }, metrics = { "metrics" },
}

--- Parse argv (argv[0] is the program).  Returns opts, rest or nil, err.
function M.parse(argv)
  local opts, rest = {}, {}
  local i = 1
  while argv[i] ~= nil do
    local a = argv[i]
    if #rest > 0 or a == "-" or a:sub(1, 1) ~= "-" then
      rest[#rest + 1] = a
    elseif a == "--" then
      for j = i + 1, #argv do rest[#rest + 1] = argv[j] end
      break
    elseif a == "-h" or a == "--help" then opts.help = true
    elseif a == "-v" or a == "--version" then opts.version = true
    elseif a == "--sim" then opts.sim = true
    elseif a == "--plain" then opts.plain = true
    elseif a:match("^%-%-sim=") then opts.sim = a:sub(7)
    else
      local name, val = a:match("^%-%-([%w%-]+)=(.*)$")
      name = name or a:match("^%-%-([%w%-]+)$")
      local spec = name and VALUED[name]
      if spec == nil then return nil, "unknown option '" .. a .. "'" end
      if val == nil then
        i = i + 1
        val = argv[i]
        if val == nil then return nil, "option '" .. a .. "' needs a value" end
      end
      if spec[2] then
        local conv = spec[2](val)
        if conv == nil then return nil, "option '--" .. name .. "' takes a number, not '" .. val .. "'" end
        val = conv
      end
      opts[spec[1]] = val
    end
    i = i + 1
  end
  return opts, rest
end

local function apply(opts)
  local log = require "ari.log"
  for _, k in ipairs { "url", "user", "password", "app", "shutdown_grace", "sim", "sim_speed",
    "transcript", "listen", "metrics" } do
    if opts[k] ~= nil then config[k] = opts[k] end
  end
  log.add_credentials(config.user, config.password) -- [ship] password, user:password, its Basic encoding
  if opts.log_level then
    local ok, err = pcall(log.set_level, opts.log_level)
    if not ok then return err end
  end
  if opts.log_format then
    local ok, err = pcall(log.set_format, opts.log_format)
    if not ok then return err end
  end
end

-- [one-shot] When the host exits by itself (docs/getting-started.md): the
-- script's main chunk has returned and nothing is left that waits for
-- Asterisk: no app takes calls (on_call) or has a call, no client or object
-- has an event handler (client:on, channel:on...), no coroutine is alive (a
-- wait, ari.spawn), no ari.timer is still to fire and no server the script
-- started listens (ari.server, ari.sim's listen, ari.media.listen).  The events sockets
-- alone do not keep it running: it shuts down as on SIGTERM and exits 0.
local function idle()
  local sched = require "ari.sched"
  if sched.live() > 0 then return false end
  local appmod = package.loaded["ari.app"]
  if appmod then
    for _, a in ipairs(appmod.apps) do
      if a.ncalls > 0 or (a.handler ~= nil and a.accepting) then return false end
    end
  end
  for c in require("ari.models").each_client() do
    if c:listening() then return false end
  end
  -- a server the script listens with (ari.server, a simulator's listen,
  -- ari.media.listen): it waits for whoever connects
  local srvmod, mediamod = package.loaded["ari.server"], package.loaded["ari.media"]
  if srvmod and srvmod.listening() > 0 then return false end
  if mediamod and mediamod.listening and mediamod.listening() > 0 then return false end
  return not require("ari").timers_pending()
end

local IDLE_CHECK_MS = 100
local SHUTDOWN_CHECK_MS = 50 -- [shutdown] how often the host checks whether the shutdown is done
local exit_when_idle = false -- the real host (not --sim, which ends with its scenario)
-- [/one-shot]

-- Run `fn` as the main coroutine, then the loop until nothing is pending.
-- Returns 0, or 1 when the main coroutine raised.
local function run_main(fn, ...)
  local ari = require "ari"
  local sched = require "ari.sched"
  local log = require "ari.log"
  local rc = 0
  local stopping = false
  local function on_signal(signum)
    local name = signum == 2 and "SIGINT" or "SIGTERM"
    if stopping then
      log.warn("second %s: stopping now", name)
      core.stop()
      return
    end
    stopping = true
    ari.shutdown(name)
  end
  -- [shutdown] However the shutdown began (a signal, a script error, the
  -- one-shot end, ari.shutdown()), the loop is stopped once the shutdown is
  -- done: no coroutine alive (the shutdown handlers, the calls they wait
  -- for), no ari.timer to fire, no client's events socket still closing.
  -- What else the script left open (a raw core.ws_connect connection, an
  -- ari.server listener, a core.timer) does not keep the process alive: the
  -- core's shutdown hooks close it.  In any case the loop is stopped when
  -- the grace period is over (apps hang up what remains at its end, ari.app:
  -- they get 2 s more).
  ari.on_shutdown(function()
    local client = require "ari.client"
    local deadline = core.timer((config.shutdown_grace or 10000) + 2000, function()
      log.warn("shutdown grace period over; stopping")
      core.stop()
    end)
    deadline:unref()
    local drained
    drained = core.timer(SHUTDOWN_CHECK_MS, function()
      if sched.live() > 0 or ari.timers_pending() or client.closing() then return end
      drained:stop()
      deadline:stop()
      core.stop()
    end, SHUTDOWN_CHECK_MS)
    drained:unref()
  end)
  local sigs = { core.signal("SIGINT", on_signal), core.signal("SIGTERM", on_signal) }
  -- [ari.reload / ari.metrics] SIGHUP reloads the script; --metrics serves /metrics, /healthz, /readyz
  local reload = require "ari.reload"
  if reload.script then sigs[#sigs + 1] = reload.watch() end
  if config.metrics then
    local metrics = require "ari.metrics"
    local srv, merr = metrics.start(config.metrics)
    if not srv then
      io.stderr:write("ari-lua: ", tostring(merr), "\n")
      for _, s in ipairs(sigs) do s:close() end
      return 1
    end
    ari.on_shutdown(function() metrics.stop() end)
  end
  -- [/ari.reload / ari.metrics]
  -- [one-shot] once the main chunk has returned: exit when idle()
  local function watch_idle()
    local t
    t = core.timer(IDLE_CHECK_MS, function()
      if stopping or ari.shutting_down() then t:stop(); return end
      if not idle() then return end
      t:stop()
      ari.shutdown("the script has finished; nothing waits for calls or events")
      local open = {}
      for c in require("ari.models").each_client() do open[#open + 1] = c end
      for _, c in ipairs(open) do pcall(c.close, c) end
    end, IDLE_CHECK_MS)
    t:unref()
  end
  -- [/one-shot]
  sched.spawn(fn, function(ok, err)
    if ok and exit_when_idle then watch_idle() end -- [one-shot]
    if not ok then
      rc = 1
      io.stderr:write("ari-lua: ", tostring(err), "\n")
      if type(err) == "table" and err.traceback then io.stderr:write(err.traceback, "\n") end
      ari.shutdown("script error")
    end
  end, ...)
  core.run()
  for _, s in ipairs(sigs) do s:close() end
  -- a library part that ended the process on an error (ari.app on
  -- ApplicationReplaced) sets config.exit_code
  if rc == 0 and config.exit_code then rc = config.exit_code end
  return rc
end

function M.main(argv)
  local opts, rest = M.parse(argv)
  if opts == nil then return usage_error(rest) end
  if opts.help then io.stdout:write(USAGE); return 0 end
  if opts.version then
    io.stdout:write("ari-lua ", core.version, " (", _VERSION, ")\n")
    return 0
  end
  local err = apply(opts)
  if err then return usage_error(err) end
  if rest[1] == "sim" then
    local ok, sim = pcall(require, "ari.sim.cli")
    if not ok then io.stderr:write("ari-lua: the simulator is not available: ", tostring(sim), "\n"); return 1 end
    return sim.main(opts, table.move(rest, 2, #rest, 1, {}))
  end
  local script = rest[1]
  if script == nil then return usage_error("no script given") end
  local chunk, lerr = require("ari.reload").load(script) -- [ari.reload] own _ENV, so SIGHUP can run it again
  if chunk == nil then
    io.stderr:write("ari-lua: ", lerr, "\n")
    return 1
  end
  local args = table.move(rest, 2, #rest, 1, {})
  local argt = table.move(rest, 1, #rest, 0, {})
  argt[-1] = argv[0]
  _G.arg = argt -- as the standalone lua interpreter does
  if opts.plain then
    local ok, perr = xpcall(chunk, debug.traceback, table.unpack(args))
    if not ok then io.stderr:write("ari-lua: ", tostring(perr), "\n"); return 1 end
    return 0
  end
  -- [versions] a script fails at start-up when it cannot reach Asterisk
  -- (ari.connect raises instead of retrying: see ari.client)
  config.strict = true
  if opts.sim then
    local ok, sim = pcall(require, "ari.sim.host")
    if not ok then io.stderr:write("ari-lua: the simulator is not available: ", tostring(sim), "\n"); return 1 end
    return sim.run(chunk, args, opts, run_main)
  end
  -- [versions] --transcript against a real Asterisk: what the client saw
  local client = require "ari.client"
  if config.transcript then
    local tok, terr = client.open_transcript(config.transcript)
    if not tok then io.stderr:write("ari-lua: cannot write transcript: ", tostring(terr), "\n"); return 1 end
  end
  exit_when_idle = true -- [one-shot]
  local rc = run_main(chunk, table.unpack(args))
  client.close_transcript()
  return rc
end

return M
