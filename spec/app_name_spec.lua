-- The application name rule (lua/ari/config.lua app_name): `--app NAME` or
-- ARI_APP wins over the name the script gives, so one script serves
-- several apps.  NAME replaces the first name the script uses wherever it
-- appears (ari.app, ari.connect{ app = }); a second, different name is
-- kept.  The simulator's scenario follows the renamed app.
local BIN = os.getenv("ARI_LUA_BIN") or "./ari-lua"

local function run(cmd)
  local out = os.tmpname()
  local ok, how, code = os.execute(string.format("timeout -k 5 60 %s >%s 2>&1", cmd, out))
  local f = assert(io.open(out))
  local text = f:read("a")
  f:close()
  os.remove(out)
  return (how == "exit" and code or -1), text, ok
end

describe("ari.config.app_name", function()
  local config = require "ari.config"
  local saved
  before_each(function() saved = config.app end)
  after_each(function() config.app = saved end)

  it("without --app / ARI_APP: the script's name as given", function()
    config.app = nil
    assert.equals("hello", config.app_name("hello"))
    assert.is_nil(config.app_name(nil))
  end)

  it("with --app: replaces the script's first name, wherever it appears again", function()
    config.app = "sales-1"
    assert.equals("sales-1", config.app_name("ivr"))
    assert.equals("sales-1", config.app_name("ivr"))        -- ari.connect{ app = "ivr" } later, a reload
    assert.equals("admin", config.app_name("admin"))        -- a second app keeps its name
    assert.equals("sales-1", config.app_name(nil))          -- ari.app() without a name
  end)

  it("a script that first uses the --app name itself keeps its other names", function()
    config.app = "sales-2"
    assert.equals("sales-2", config.app_name(nil))
    assert.equals("other", config.app_name("other"))
  end)

  it("looking (claim = false) does not fix the first name", function()
    config.app = "sales-3"
    assert.equals("sales-3", config.app_name("scenario-app", false))
    assert.equals("sales-3", config.app_name("ivr"))
    assert.equals("scenario-app", config.app_name("scenario-app", false))
  end)
end)

describe("ari-lua --app", function()
  it("--app renames the script's app; the default simulated call goes to it", function()
    local rc, out = run(BIN .. " --sim --app hello-two examples/hello.lua")
    assert.equals(0, rc, out)
    assert.matches("ws hello%-two connected", out)
    assert.is_nil(out:find("ws hello connected", 1, true), out)
    assert.matches("POST /ari/channels/[^/]+/play", out)
  end)

  it("ARI_APP does the same; the scenario's callers follow the renamed app", function()
    local rc, out = run("env ARI_APP=pin-two " .. BIN .. " --sim=examples/scenarios/pin.lua --sim-speed 20 examples/pin.lua")
    assert.equals(0, rc, out)
    assert.matches("ws pin%-two connected", out)
    assert.matches("PIN accepted", out)
    assert.matches("simulation over %(all calls ended%)", out)
  end)

  it("renames a client's app too (ari.connect{ app = 'dashboard' })", function()
    local rc, out = run(BIN .. " --sim=examples/scenarios/dashboard.lua --sim-speed 20 --app dash-two examples/dashboard.lua 100")
    assert.equals(0, rc, out)
    assert.matches("ws dash%-two connected", out)
    assert.matches("==== snapshot 1:", out)
  end)

  it("a script with two apps: --app renames the first, the second keeps its name", function()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
      local ari = require "ari"
      local a = ari.app "first"
      local b = ari.app "second"
      print("names: " .. a.name .. " " .. b.name)
    ]])
    f:close()
    local rc, out = run(BIN .. " --sim --app renamed " .. script)
    os.remove(script)
    assert.equals(0, rc, out)
    assert.matches("names: renamed second", out)
  end)

  it("is documented the same way in --help", function()
    local rc, out = run(BIN .. " --help")
    assert.equals(0, rc)
    assert.matches("%-%-app NAME[^\n]*\n[^\n]*script", out)
  end)
end)
