-- ari.config: settings shared by the host and the library.  Defaults come
-- from the environment (ARI_URL, ARI_USER, ARI_PASSWORD, ARI_APP); the
-- ari-lua host overrides them with its command-line flags.
local M = {
  url = os.getenv("ARI_URL") or "http://127.0.0.1:8088",
  user = os.getenv("ARI_USER"),
  password = os.getenv("ARI_PASSWORD"),
  app = os.getenv("ARI_APP"),
  shutdown_grace = 10000, -- ms
}

-- The application name rule: `--app NAME` (or ARI_APP) wins over the name
-- the script gives, so one script can serve several apps.  NAME replaces
-- the first name the script uses (ari.app "hello", ari.connect{ app =
-- "hello" }) wherever that name appears; a second, different name (a
-- script with several apps) is kept as given.  Without --app / ARI_APP the
-- script's name is used as is.
local renamed -- { app = the --app value, from = the script's name it replaced (false: none) }

--- The Stasis application name to use for `given` (nil: the script gave
-- none).  claim = false only looks (does not fix the rule's first name).
function M.app_name(given, claim)
  local app = M.app
  if app == nil then return given end
  if renamed == nil or renamed.app ~= app then renamed = { app = app, from = nil } end
  if given == nil or given == app then
    if claim ~= false and renamed.from == nil then renamed.from = false end
    return app
  end
  if renamed.from == nil then
    if claim ~= false then renamed.from = given end
    return app
  end
  if renamed.from == given then return app end
  return given
end

return M
