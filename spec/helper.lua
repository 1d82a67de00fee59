-- Loaded by busted before every spec file (see .busted).
local extra = os.getenv("ARI_CPATH")
if extra then package.cpath = extra .. ";" .. package.cpath end
