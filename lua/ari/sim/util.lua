-- ari.sim.util: what the simulator's resource modules share.
local json = require "ari.sim.json"

local M = {}

--- The JSON body of an error answer, as Asterisk writes it: {"message": msg}.
function M.err_body(msg) return json.obj { "message", msg } end

--- The keys of t, sorted.
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end
M.sorted_keys = sorted_keys

--- A resource module's table { methods = { name = fn }, routes = { resource
-- = { nickname = fn } }, init = fn, ... }, with each method and route
-- handler also a field of the table itself (`name`, `<resource>_<nickname>`):
-- a traceback then names them after the module ("ari.sim.channels.hangup",
-- "ari.sim.channels.channels_originate") wherever they are called from.
function M.module(t)
  local named = {}
  local function expose(key, fn)
    if t[key] == nil and not named[fn] then t[key] = fn; named[fn] = true end
  end
  local methods, routes = t.methods or {}, t.routes or {}
  for _, name in ipairs(sorted_keys(methods)) do expose(name, methods[name]) end
  for _, resource in ipairs(sorted_keys(routes)) do
    local ops = routes[resource]
    -- an alias (playWithId = play) keeps the first name in order
    for _, nickname in ipairs(sorted_keys(ops)) do expose(resource .. "_" .. nickname, ops[nickname]) end
  end
  return t
end

return M
