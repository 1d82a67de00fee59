-- ari.uuid: fixed-length random ids (UUID v4 shape) for the ids the client
-- assigns (channelId, playbackId, snoopId...).  Real Asterisk refuses an
-- assigned id that is a prefix of a live one, so ids are never sequential.
local random = math.random
local format = string.format

local M = {}

local function seed()
  local f = io.open("/dev/urandom", "rb")
  local a, b
  if f then
    local s = f:read(16)
    f:close()
    a, b = string.unpack("<i8i8", s)
  else
    a, b = os.time(), math.floor(os.clock() * 1e6)
  end
  math.randomseed(a, b)
end
seed()

function M.new()
  return format("%08x-%04x-4%03x-%04x-%012x",
    random(0, 0xffffffff), random(0, 0xffff), random(0, 0xfff),
    0x8000 | random(0, 0x3fff), random(0, 0xffffffffffff))
end

return M
