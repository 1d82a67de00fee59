-- Real Asterisk: record (#core) and snoop.  Local/moh@caller sends music
-- on hold to the app: real audio to record (Asterisk trims trailing
-- silence, so a silent caller gives a 0 s recording).
local ast = require "spec.support.asterisk"
local cr = require "spec.support.callreal"
local ari = require "ari"

local function stored(app, name)
  local ok, r = pcall(app.client.recordings.getStored, { recordingName = name })
  return ok and r or nil, r
end

ast.describe("real Asterisk: record #core", function(inst)
  it("records real audio, stops on max_duration and on #, refuses an existing name; plays it back", function()
    local base = ast.app_name("rec")
    local res = cr.with_app(inst, "rec", function(app)
      local r = cr.calls(app, {
        moh = { exten = "moh", fn = function(call)
          call:answer()
          local rec = call:record { name = base .. "-moh", max_duration = 2, terminate_on = "none" }
          local st = stored(app, rec.name)
          -- the same name again: if_exists = "fail" (Asterisk refuses the request: 409)
          local ok, err = pcall(call.record, call, { name = rec.name, if_exists = "fail", max_duration = 1 })
          local played = call:play("recording:" .. rec.name)
          return rec.state, rec.duration, st and st.name, ok, err and err.status, played
        end },
        hash = { exten = "dtmf", fn = function(call)
          call:answer()
          local rec = call:record { name = base .. "-hash", max_duration = 15, terminate_on = "#" }
          return rec.state, rec.name
        end },
        snoop = { exten = "moh", fn = function(call)
          call:answer()
          local spy = call:snoop { spy = "in" }
          local rec = spy:record { name = base .. "-snoop", max_duration = 2, terminate_on = "none" }
          return rec.state, rec.duration, spy.id ~= call.id
        end },
      }, 30000)
      for _, suffix in ipairs { "-moh", "-hash", "-snoop" } do
        pcall(app.client.recordings.deleteStored, { recordingName = base .. suffix })
      end
      return r
    end, 40000)
    for key, r in pairs(res) do assert.is_true(r.ok, cr.describe(key, r)) end
    local m = res.moh.values
    assert.equals("done", m[1])
    assert.is_true(m[2] >= 1, "duration " .. tostring(m[2]))
    assert.equals(base .. "-moh", m[3])
    assert.is_false(m[4])
    assert.equals(409, m[5])
    assert.equals("done", m[6])
    assert.equals("done", res.hash.values[1])
    assert.equals("done", res.snoop.values[1])
    assert.is_true(res.snoop.values[2] >= 1, "snoop duration " .. tostring(res.snoop.values[2]))
    assert.is_true(res.snoop.values[3])
  end)
end)
