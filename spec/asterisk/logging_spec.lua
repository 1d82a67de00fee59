-- Real Asterisk: what `--log-level debug` and `--transcript FILE` show of a
-- real server (connection, server version, each REST request, each event,
-- disconnection and reconnection), with the credentials redacted.  A
-- private Asterisk with an extra ARI user whose password is distinctive.
local ast = require "spec.support.asterisk"
local ari = require "ari"
local log = require "ari.log"
local cjson = require "cjson"

local BIN = os.getenv("ARI_LUA_BIN") or "./ari-lua"
local q = ast.sh_quote
local USER, PW = "logger", "Log-Pw-31337"
local BASIC = require("ari.base64")(USER .. ":" .. PW)

local function write(path, text)
  local f = assert(io.open(path, "w")); f:write(text); f:close()
end
local function read(path)
  local f = io.open(path); if not f then return nil end
  local s = f:read("a"); f:close(); return s
end

local function esc(s) return (s:gsub("%p", "%%%0")) end

local SCRIPT = [[
local ari = require "ari"
local c = ari.connect { app = "logtest" }
local ch = c.channels.originate { endpoint = "Local/short@caller", app = "logtest", formats = "ulaw" }
print("CHANNEL " .. ch.id)
assert(c:wait("StasisEnd", nil, 20000), "no StasisEnd")
c:close()
]]

ast.describe("real Asterisk: debug log and transcript", function()
  local inst, conf

  setup(function()
    conf = os.tmpname()
    os.remove(conf)
    assert(os.execute("mkdir -p " .. q(conf)))
    write(conf .. "/ari.conf", table.concat({
      "[general]", "enabled = yes", "pretty = no", "allowed_origins = *", "",
      "[asterisk]", "type = user", "read_only = no", "password = asterisk", "password_format = plain", "",
      "[" .. USER .. "]", "type = user", "read_only = no", "password = " .. PW, "password_format = plain", "" }, "\n"))
    inst = ast.start { conf = conf }
  end)

  teardown(function()
    if inst then inst:stop() end
    if conf then os.execute("rm -rf " .. q(conf)) end
  end)

  local function run(args)
    local script, out, tr = os.tmpname(), os.tmpname(), os.tmpname()
    write(script, SCRIPT)
    local ok, how, code = os.execute(string.format("timeout 60 %s --url %s --user %s --password %s %s --transcript %s %s > %s 2>&1",
      BIN, q(inst.url), USER, PW, args, tr, script, out))
    local text, trans = read(out) or "", read(tr) or ""
    os.remove(script); os.remove(out); os.remove(tr)
    return (how == "exit" and code or -1), text, trans
  end

  it("--log-level debug: connecting, server version, each REST request, each event; no credentials", function()
    local rc, out = run("--log-level debug")
    assert.equals(0, rc, out)
    local base = esc(inst.url .. "/ari")
    local id = out:match("CHANNEL (%S+)")
    assert.is_truthy(id, out)
    assert.matches("DEBUG connecting to " .. base .. " as user '" .. USER .. "'", out)
    assert.matches("DEBUG REST GET /api%-docs/resources%.json %-> 200 %(%d+%.%d ms%)", out)
    assert.matches("INFO connected to Asterisk " .. inst.version .. "%.[%w.%-]+ %(ARI %d+%.%d+%.%d+%) at " .. base, out)
    assert.matches("DEBUG events socket connected to ws://", out)
    assert.matches("DEBUG REST POST /channels%?app=logtest&endpoint=Local%%2Fshort%%40caller&formats=ulaw %-> 200 %(%d+%.%d ms%)", out)
    assert.matches("DEBUG event StasisStart channel=" .. esc(id), out)
    assert.matches("DEBUG event StasisEnd channel=" .. esc(id), out)
    assert.is_nil(out:find(PW, 1, true))
    assert.is_nil(out:find(BASIC, 1, true))
  end)

  it("info (the default): the server version once, no REST or event lines", function()
    local rc, out = run("")
    assert.equals(0, rc, out)
    local n = 0
    for _ in out:gmatch("INFO connected to Asterisk") do n = n + 1 end
    assert.equals(1, n, out)
    assert.is_nil(out:find("REST %u+ /")) -- no request lines (the transport chosen is said once)
    n = 0
    for _ in out:gmatch("INFO REST over ") do n = n + 1 end
    assert.equals(1, n, out)
    assert.is_nil(out:find("event StasisStart", 1, true))
  end)

  it("--transcript FILE against a real Asterisk: JSON lines of REST requests and events, no credentials", function()
    local rc, out, trans = run("")
    assert.equals(0, rc, out)
    local id = out:match("CHANNEL (%S+)")
    assert.is_nil(trans:find(PW, 1, true))
    assert.is_nil(trans:find(BASIC, 1, true))
    local kinds, post, start, stop, note = {}, nil, nil, nil, nil
    local last_t = -1
    for line in trans:gmatch("[^\n]+") do
      local e = cjson.decode(line)
      kinds[e.kind] = (kinds[e.kind] or 0) + 1
      assert.is_true(e.t >= last_t, "t goes forward")
      last_t = e.t
      if e.kind == "rest" and e.method == "POST" and e.path:find("^/channels%?") then post = e end
      if e.kind == "event" and e.type == "StasisStart" and e.channel == id then start = e end
      if e.kind == "event" and e.type == "StasisEnd" and e.channel == id then stop = e end
      if e.kind == "note" and e.summary:find("^connected to Asterisk") then note = e end
    end
    assert.is_truthy(post, trans)
    assert.equals(200, post.status)
    assert.is_number(post.ms)
    assert.is_truthy(start, trans)
    assert.equals("logtest", start.app)
    assert.is_truthy(stop, trans)
    assert.is_truthy(note, trans)
    assert.is_true(kinds.rest >= 2 and kinds.event >= 2)
  end)

  it("disconnection and reconnection are logged, and the server is learned again", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    local ok, err = pcall(ast.run, function()
      local c = ari.connect { url = inst.url, user = USER, password = PW, app = ast.app_name("relog"), strict = true }
      log.set_output(f)
      local old = log.get_level()
      log.set_level("debug")
      inst:restart()
      ast.poll(function() return c.stats.connects >= 2 end, "the events socket to come back", 60000)
      ast.poll(function() f:flush(); return (read(path) or ""):find("INFO connected to Asterisk", 1, true) ~= nil end,
        "the server to be learned again", 20000)
      log.set_level(old)
      c:close()
    end, 120000)
    log.set_output(nil)
    f:close()
    local text = read(path) or ""
    os.remove(path)
    if not ok then error(err, 0) end
    assert.matches("WARN events socket to ws://%S+ lost %(.-%); reconnecting", text)
    assert.matches("INFO events socket reconnected to ws://", text)
    assert.matches("DEBUG REST GET /api%-docs/resources%.json %-> 200", text)
    assert.is_nil(text:find(PW, 1, true))
  end)
end)
