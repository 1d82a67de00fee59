-- ari.sim.util: what the simulator's resource modules share.
local json = require "ari.sim.json"

local M = {}

--- The JSON body of an error answer, as Asterisk writes it: {"message": msg}.
function M.err_body(msg) return json.obj { "message", msg } end

return M
