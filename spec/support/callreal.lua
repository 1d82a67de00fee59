-- The Call layer against a real Asterisk (spec/asterisk/call_*_spec.lua):
-- an ari.app on the run's Asterisk whose calls each run one case's script,
-- all at once.  Calls are Local/<exten>@caller channels: the ;1 half enters
-- the app (a caller dialling in), the ;2 half runs [caller] <exten> of
-- ../shared/asterisk/etc/extensions.conf.
local ast = require "spec.support.asterisk"
local ari = require "ari"

local M = {}

--- Run fn(app, name) on the loop with a fresh app on inst; whatever calls
-- remain are hung up and the app is closed afterwards.  Raises fn's error.
function M.with_app(inst, prefix, fn, limit_ms)
  return ast.run(function()
    local name = ast.app_name(prefix)
    local app = ari.app { app = name, url = inst.url, user = inst.user, password = inst.password }
    app.on_replaced = function() end -- never shut the test process down
    local out = table.pack(pcall(fn, app, name))
    for _, call in pairs(app.calls) do
      if not call.hungup then pcall(call.hangup, call) end
    end
    pcall(ast.poll, function() return app:active() == 0 end, "the app's calls to end", 5000)
    app.client:remove_router(app.router)
    app.client:close()
    if not out[1] then error(out[2], 0) end
    return table.unpack(out, 2, out.n)
  end, limit_ms)
end

--- Run cases at once: cases = { key = { exten = "s", fn = function(call, app) ... end } }.
-- For each, Local/<exten>@caller is originated into app (its StasisStart
-- args carry the key) and fn(call, app) runs as that call's script.
-- Returns, once every call has ended, res[key] = { call, ok, values (fn's
-- results), err, outcome (the runner's: "normal", "hangup", "error") }.
function M.calls(app, cases, limit_ms)
  local res, by_call = {}, {}
  app:on_call(function(call, args)
    local key = args[1]
    local r = res[key]
    r.call = call
    by_call[call] = r
    local out = table.pack(pcall(cases[key].fn, call, app))
    r.ok = out[1]
    if r.ok then r.values = { table.unpack(out, 2, out.n) } else r.err = out[2]; error(out[2], 0) end
  end)
  app.on_end = function(call, outcome, err)
    local r = by_call[call]
    if r then r.outcome = outcome; r.end_err = err end
  end
  app:wait_registered()
  for key, c in pairs(cases) do
    res[key] = {}
    ast.originate(app.client, c.exten or "s", app.name, { appArgs = key })
  end
  ast.poll(function()
    for _, r in pairs(res) do if r.outcome == nil then return false end end
    return true
  end, "every call to end", limit_ms or 30000)
  return res
end

--- A string describing r (for assertion messages).
function M.describe(key, r)
  return ("%s: ok=%s values=%s err=%s outcome=%s"):format(key, tostring(r.ok),
    r.values and table.concat((function() local t = {} for i, v in ipairs(r.values) do t[i] = tostring(v) end return t end)(), ",") or "-",
    tostring(r.err), tostring(r.outcome))
end

return M
