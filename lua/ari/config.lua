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
return M
