-- Real Asterisk: first contact, as a user meets it, by running the
-- `ari-lua` binary: a wrong password, nothing listening, a wrong path give
-- a clear message and a non-zero exit at start-up; a URL without scheme
-- works.  In-process: the REST-only path (events = false) gives the same
-- errors; a 401 after a restart with changed credentials (the client had
-- connected before) is logged and retried.
local ast = require "spec.support.asterisk"
local ari = require "ari"
local core = require "ari.core"
local log = require "ari.log"

local BIN = os.getenv("ARI_LUA_BIN") or "./ari-lua"
local q = ast.sh_quote

local function write(path, text)
  local f = assert(io.open(path, "w")); f:write(text); f:close()
end
local function read(path)
  local f = io.open(path); if not f then return nil end
  local s = f:read("a"); f:close(); return s
end

-- Run ari-lua (env: a string of VAR=value, args: options) on script text;
-- a 60 s timeout guards against a retry loop.  Returns exit code, output.
local function run(env, args, script)
  local path = os.tmpname()
  write(path, script)
  local out = os.tmpname()
  local ok, how, code = os.execute(string.format("%s timeout 60 %s %s %s > %s 2>&1", env or "", BIN, args, path, out))
  local text = read(out) or ""
  os.remove(out); os.remove(path)
  return (how == "exit" and code or -1), text
end

local function free_port()
  local s = assert(core.server_listen({ host = "127.0.0.1", port = 0 }, { on_request = function() end }))
  local p = s:port()
  s:close()
  return p
end

local SCRIPT = [[
local ari = require "ari"
local c = ari.connect { app = "firstcontact" }
print("SERVER " .. tostring(c.server and c.server.asterisk_version))
c:close()
]]

ast.describe("real Asterisk: first contact with the ari-lua binary #core", function(inst)
  it("a wrong password: says authentication failed for that user at that URL, exits non-zero", function()
    local rc, out = run(nil, ("--url %s --user asterisk --password %s"):format(q(inst.url), "wrong-Pw-77"), SCRIPT)
    assert.is_true(rc ~= 0 and rc ~= 124, "exit code " .. rc .. ": " .. out)
    assert.matches("authentication failed for user 'asterisk' at " .. inst.url:gsub("%p", "%%%0") .. "/ari", out)
    assert.matches("ARI_USER/ARI_PASSWORD", out, 1, true)
    assert.is_nil(out:find("SERVER", 1, true))
    assert.is_nil(out:find("wrong-Pw-77", 1, true))
  end)

  it("nothing listening: says connection refused and what to check, exits non-zero", function()
    local url = "http://127.0.0.1:" .. free_port()
    local rc, out = run(nil, ("--url %s --user asterisk --password asterisk"):format(url), SCRIPT)
    assert.is_true(rc ~= 0 and rc ~= 124, "exit code " .. rc .. ": " .. out)
    assert.matches("cannot connect to " .. url:gsub("%p", "%%%0") .. "/ari: connection refused", out)
    assert.matches("http.conf", out, 1, true)
    assert.is_nil(out:find("SERVER", 1, true))
  end)

  it("a wrong path (not ARI): says so, exits non-zero", function()
    local rc, out = run(nil, ("--url %s/nothere --user asterisk --password asterisk"):format(q(inst.url)), SCRIPT)
    assert.is_true(rc ~= 0 and rc ~= 124, "exit code " .. rc .. ": " .. out)
    assert.matches("is not an Asterisk ARI server", out, 1, true)
    assert.matches("answered 404", out, 1, true)
  end)

  it("a URL without scheme, with a trailing /ari/, from --url or ARI_URL", function()
    local hostport = inst.url:gsub("^http://", "")
    local rc, out = run(nil, ("--url %s --user asterisk --password asterisk"):format(hostport), SCRIPT)
    assert.equals(0, rc, out)
    assert.matches("SERVER " .. inst.version .. "%.", out)
    rc, out = run(("ARI_URL=%s ARI_USER=asterisk ARI_PASSWORD=asterisk"):format(q(hostport .. "/ari/")), "", SCRIPT)
    assert.equals(0, rc, out)
    assert.matches("SERVER " .. inst.version .. "%.", out)
  end)

  it("the REST-only path (events = false) gives the same errors", function()
    local got = {}
    ast.run(function()
      local base = { user = "asterisk", events = false, strict = true }
      local function try(o)
        local opts = {}
        for k, v in pairs(base) do opts[k] = v end
        for k, v in pairs(o) do opts[k] = v end
        local ok, e = pcall(ari.connect, opts)
        assert.is_false(ok)
        return e
      end
      require("ari.client")._server_cache[require("ari.client").normalize_url(inst.url)] = nil
      got.auth = try { url = inst.url, password = "wrong-Pw-77" }
      got.refused = try { url = "http://127.0.0.1:" .. free_port(), password = "asterisk" }
      -- not strict (a library's default): connect logs why and carries on; the operation then fails
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      log.set_output(f)
      local ok, c = pcall(ari.connect, { url = inst.url, user = "asterisk", password = "wrong-Pw-77", events = false })
      log.set_output(nil)
      f:close()
      got.log = read(path); os.remove(path)
      assert.is_true(ok, tostring(c))
      got.op_ok, got.op_err = pcall(c.asterisk.getInfo)
      c:close()
    end)
    assert.equals("connect", got.auth.kind)
    assert.equals("auth", got.auth.reason)
    assert.equals(401, got.auth.status)
    assert.matches("authentication failed for user 'asterisk' at " .. inst.url:gsub("%p", "%%%0"), tostring(got.auth))
    assert.equals("refused", got.refused.reason)
    assert.matches("connection refused", tostring(got.refused), 1, true)
    assert.matches("WARN .*authentication failed for user", got.log)
    assert.is_false(got.op_ok)
    assert.equals(401, got.op_err.status)
  end)
end)

ast.describe("real Asterisk: a 401 after a restart with changed credentials", function()
  it("is logged and retried with backoff (the client had connected before)", function()
    local conf = os.tmpname()
    os.remove(conf)
    assert(os.execute("mkdir -p " .. q(conf)))
    local function ari_conf(pw)
      write(conf .. "/ari.conf", table.concat({
        "[general]", "enabled = yes", "pretty = no", "allowed_origins = *", "",
        "[asterisk]", "type = user", "read_only = no", "password = asterisk", "password_format = plain", "",
        "[later]", "type = user", "read_only = no", "password = " .. pw, "password_format = plain", "" }, "\n"))
    end
    ari_conf("first-Pw-1")
    local inst = ast.start { conf = conf }
    local logpath = os.tmpname()
    local logf = assert(io.open(logpath, "w"))
    local ok, err = pcall(ast.run, function()
      local c = ari.connect { url = inst.url, user = "later", password = "first-Pw-1", app = ast.app_name("later"),
        strict = true }
      assert.equals(1, c.stats.connects)
      log.set_output(logf)
      ari_conf("second-Pw-2")
      inst:restart()
      ast.poll(function()
        logf:flush()
        local t = read(logpath) or ""
        return t:find("authentication failed for user 'later'", 1, true) ~= nil
      end, "the 401 to be logged", 60000)
      -- still trying, not given up
      local conn = c._sockets[1]
      assert.is_true(conn:state() ~= "closed")
      c:close()
    end, 120000)
    log.set_output(nil)
    logf:close()
    local text = read(logpath) or ""
    os.remove(logpath)
    inst:stop()
    os.execute("rm -rf " .. q(conf))
    if not ok then error(err, 0) end
    assert.matches("WARN .*authentication failed for user 'later' at .*credentials changed.*retrying with backoff", text)
    assert.is_nil(text:find("second-Pw-2", 1, true))
    assert.is_nil(text:find("first-Pw-1", 1, true))
  end)
end)

ast.describe("real Asterisk: REST answers but the events WebSocket is refused", function()
  it("says so at connect (strict), or logs it once and retries (library default)", function()
    local conf = os.tmpname()
    os.remove(conf)
    assert(os.execute("mkdir -p " .. q(conf)))
    -- the instance's modules.conf, without res_ari_events (GET /ari/events answers 404)
    local b = ast.bundle()
    local modules = read(b .. "/etc/modules.conf") .. (read(b .. "/etc/modules-" .. ast.version .. ".conf.add") or "")
      .. "\nnoload => res_ari_events.so\n"
    write(conf .. "/modules.conf", modules)
    local inst = ast.start { conf = conf }
    local logpath = os.tmpname()
    local logf = assert(io.open(logpath, "w"))
    local got = {}
    local ok, err = pcall(ast.run, function()
      local app = ast.app_name("nows")
      local okc, e = pcall(ari.connect, { url = inst.url, user = "asterisk", password = "asterisk", app = app,
        strict = true })
      got.ok, got.err = okc, e
      -- not strict: connect returns; the failure is logged once, then retried quietly
      log.set_output(logf)
      local c = ari.connect { url = inst.url, user = "asterisk", password = "asterisk", app = app }
      ast.poll(function()
        logf:flush()
        local _, n = (read(logpath) or ""):gsub("did not accept the events WebSocket", "")
        return n >= 1 and c._sockets[1]:stats().reconnects >= 2
      end, "the failure to be logged and retried", 30000)
      got.info = c.asterisk.getInfo { only = "system" } -- REST works
      c:close()
    end, 60000)
    log.set_output(nil)
    logf:close()
    local text = read(logpath) or ""
    os.remove(logpath)
    inst:stop()
    os.execute("rm -rf " .. q(conf))
    if not ok then error(err, 0) end
    assert.is_false(got.ok)
    assert.equals("connect", got.err.kind)
    assert.equals("not_ari", got.err.reason)
    assert.matches("did not accept the events WebSocket", tostring(got.err), 1, true)
    assert.is_table(got.info.system)
    local _, warns = text:gsub("WARN [^\n]*did not accept the events WebSocket", "")
    assert.equals(1, warns, text)
  end)
end)
