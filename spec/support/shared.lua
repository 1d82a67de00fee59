-- Where the project's shared reference material is (the ARI spec and real
-- Asterisk traffic): ../shared next to the repository, as on the developers'
-- machines and in CI, or $ARI_SHARED.  It is absent on users' machines: specs
-- that read it mark themselves pending then.
local dir = os.getenv("ARI_SHARED") or "../shared"
local M = { dir = dir }

--- Path of a file under the shared folder, or nil when it is not there.
function M.path(rel)
  local p = dir .. "/" .. rel
  local f = io.open(p, "rb")
  if f == nil then return nil end
  f:close()
  return p
end

return M
