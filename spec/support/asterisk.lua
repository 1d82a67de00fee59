-- Real Asterisk for the real-server specs (spec/asterisk/*_spec.lua).
--
-- tools/run-tests.lua --asterisk V starts one Asterisk V (tools/asterisk.sh,
-- from ../shared/asterisk) and passes it in the environment: ARI_TEST_URL,
-- ARI_TEST_ASTERISK_VERSION, ARI_TEST_ASTERISK_DIR.  A spec file run alone
-- with busted starts its own (version $ARI_TEST_ASTERISK_VERSION or 22).
-- Where ../shared/asterisk is absent (a user's machine), every real-server
-- block reports itself skipped.
--
--   local ast = require "spec.support.asterisk"
--   ast.describe("answer and play #core", function() ... end)
--   ast.run(function() ... end)            -- ari.run with a failure guard
--   ast.app_name("ivr")                     -- a unique Stasis app name
--   ast.originate(client, "dtmf", app)      -- Local/dtmf@caller into app
--   ast.start{ version = 20, conf = dir }   -- a private instance (restart, config)
local M = {}

local ROOT = "." -- specs run from the repository root
M.user, M.password = "asterisk", "asterisk"
M.url = os.getenv("ARI_TEST_URL")
M.version = tonumber(os.getenv("ARI_TEST_ASTERISK_VERSION") or "22")
M.dir = os.getenv("ARI_TEST_ASTERISK_DIR")

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
M.sh_quote = sh_quote

local function script(args)
  local p = io.popen("bash " .. sh_quote(ROOT .. "/tools/asterisk.sh") .. " " .. args .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok, out, code
end

--- Is the bundle of prebuilt Asterisks there (development and CI only)?
function M.present()
  local ok = script("dir")
  return ok
end

--- The bundle directory (../shared/asterisk), or nil.
function M.bundle()
  local ok, out = script("dir")
  return ok and out:match("^%s*(.-)%s*$") or nil
end

local Instance = {}
Instance.__index = Instance

--- A private Asterisk: { url, dir, version, port }.  opts.version (default
-- this run's), opts.conf (a directory of NAME.conf files, see
-- ../shared/asterisk/README.md).  Raises when it cannot be started.
function M.start(opts)
  opts = opts or {}
  local v = opts.version or M.version
  local ok, out = script("start " .. v .. (opts.conf and (" " .. sh_quote(opts.conf)) or ""))
  if not ok then error("could not start Asterisk " .. v .. ": " .. out, 2) end
  local url, dir = out:match("(http://%S+)%s+(%S+)%s*$")
  assert(url, "unexpected tools/asterisk.sh output: " .. out)
  return setmetatable({ url = url, dir = dir, version = v, port = tonumber(url:match(":(%d+)$")),
    user = M.user, password = M.password }, Instance)
end

function Instance:stop()
  if self.dir then script("stop " .. sh_quote(self.dir)) end
  self.stopped = true
end

--- Stop and start again (same port, version and config; state is lost).
function Instance:restart()
  local ok, out = script("restart " .. sh_quote(self.dir))
  if not ok then error("could not restart Asterisk: " .. out, 2) end
end

--- Stop only (for restart tests that want a gap): the start half is :start_again().
function Instance:halt()
  os.execute("sh " .. sh_quote(M.bundle() .. "/stop.sh") .. " --dir " .. sh_quote(self.dir) .. " >/dev/null 2>&1")
end

--- Asterisk CLI command on this instance; returns its output.
function Instance:cli(cmd)
  local p = io.popen("sh " .. sh_quote(M.bundle() .. "/cli.sh") .. " --dir " .. sh_quote(self.dir) .. " "
    .. cmd .. " 2>&1")
  local out = p:read("a")
  p:close()
  return out
end

--- The shared instance of this run (the runner's, or one started for this
-- spec file), or nil where no Asterisk can be had.
local shared
function M.instance()
  if shared then return shared end
  if M.url then
    shared = setmetatable({ url = M.url, dir = M.dir, version = M.version,
      port = tonumber(M.url:match(":(%d+)$")), user = M.user, password = M.password }, Instance)
    return shared
  end
  if not M.present() then return nil end
  shared = M.start()
  shared.own = true
  M.url, M.dir = shared.url, shared.dir
  return shared
end

M.skip_reason = "skipped: no real Asterisk here (../shared/asterisk is absent; it exists in development and CI only)"

--- describe(name, fn) when a real Asterisk can be had, else one pending
-- test saying why.  fn gets the instance.  A spec started alone stops the
-- Asterisk it started when the block ends.
function M.describe(name, fn)
  local b = require "busted"
  local describe, pending, teardown = b.describe, b.pending, b.teardown
  if not M.url and not M.present() then
    describe(name, function() pending(M.skip_reason) end)
    return
  end
  describe(name, function()
    local inst = M.instance()
    if inst.own then
      teardown(function() if not inst.stopped then inst:stop() end end)
    end
    fn(inst)
  end)
end

--- Only when the server's ARI has this major version or later.
function M.at_least(v) return M.version >= v end

local seq = 0
--- A Stasis application name unique to this process and call.
function M.app_name(prefix)
  seq = seq + 1
  local ok, uuid = pcall(require, "ari.uuid")
  local tag = ok and uuid.new():sub(1, 8) or tostring(os.time())
  return (prefix or "t") .. "-" .. tag .. seq
end

--- Run fn on the loop (like ari.run), raising its error; fails with
-- "real-server spec timed out" when fn has not finished after limit_ms
-- (default 60000) of loop time.
function M.run(fn, limit_ms)
  local core = require "ari.core"
  local sched = require "ari.sched"
  local result
  sched.spawn(fn, function(...) result = table.pack(...) end)
  local deadline = core.now() + (limit_ms or 60000)
  local guard = core.timer(limit_ms or 60000, function() end)
  while result == nil and core.now() < deadline do
    if not core.run(true) and result == nil then
      error("the loop ran out of work before the spec finished (a wait nobody will wake)", 2)
    end
  end
  guard:close()
  if result == nil then error("real-server spec timed out after " .. (limit_ms or 60000) .. " ms", 2) end
  if not result[1] then error(result[2], 0) end
  return table.unpack(result, 2, result.n)
end

--- Originate Local/<exten>@caller into app: its ;1 half enters the app
-- (a caller dialling in), its ;2 half runs the far end of
-- ../shared/asterisk/etc/extensions.conf [caller].  Returns the Channel.
function M.originate(client, exten, app, params)
  local p = { endpoint = "Local/" .. exten .. "@caller", app = app, formats = "ulaw" }
  for k, v in pairs(params or {}) do p[k] = v end
  return client.channels.originate(p)
end

--- Wait (on the loop) until cond() holds; raises "timed out waiting for
-- <what>" after limit_ms (default 20000).  Waits for a state, never a time.
function M.poll(cond, what, limit_ms)
  local ari = require "ari"
  local deadline = ari.now() + (limit_ms or 20000)
  while not cond() do
    if ari.now() > deadline then error("timed out waiting for " .. what, 2) end
    ari.sleep(10)
  end
end

--- Environment for an ari-lua subprocess against instance inst.
function M.env(inst, app)
  inst = inst or M.instance()
  return ("ARI_URL=%s ARI_USER=%s ARI_PASSWORD=%s%s"):format(sh_quote(inst.url), M.user, M.password,
    app and (" ARI_APP=" .. sh_quote(app)) or "")
end

return M
