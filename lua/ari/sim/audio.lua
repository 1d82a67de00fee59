-- ari.sim.audio: the synthetic audio a simulated caller sends (silence, a
-- tone, a WAV file), rendered once per format as raw samples.
--
--   audio.render(spec, format) -> data|nil, loop
--     spec: "silence" | { tone = hz [, amplitude = 8000] } | { wav = path [, loop = true] }
--     format: "ulaw" | "alaw" | "slin" | "slin12" | "slin16" | ... (slin: 16-bit little-endian)
--   audio.rate(format) -> samples a second (nil for a format the simulator does not render)
--   audio.read_wav(path) -> samples (table of integers), rate | nil, err
local M = {}

local RATES = { ulaw = 8000, alaw = 8000, slin = 8000, slin12 = 12000, slin16 = 16000, slin24 = 24000,
  slin32 = 32000, slin44 = 44100, slin48 = 48000, slin96 = 96000, slin192 = 192000 }

function M.rate(format) return RATES[format] end

-- G.711 encoders (the simulator renders a source once per format)
local function ulaw(s)
  local sign = 0
  if s < 0 then s = -s; sign = 0x80 end
  if s > 32635 then s = 32635 end
  s = s + 0x84
  local exp = 7
  local mask = 0x4000
  while exp > 0 and (s & mask) == 0 do exp = exp - 1; mask = mask >> 1 end
  local mant = (s >> (exp + 3)) & 0x0f
  return (~(sign | (exp << 4) | mant)) & 0xff
end

local function alaw(s)
  local sign = 0x80
  if s < 0 then s = -s - 1; sign = 0 end
  if s > 32767 then s = 32767 end
  local v
  if s < 256 then
    v = s >> 4
  else
    local exp = 1
    local t = s >> 8
    while t > 1 do exp = exp + 1; t = t >> 1 end
    v = (exp << 4) | ((s >> (exp + 3)) & 0x0f)
  end
  return (v | sign) ~ 0x55
end

local function encode(samples, format)
  local parts, chunk = {}, {}
  local enc = format == "ulaw" and ulaw or (format == "alaw" and alaw or nil)
  for i = 1, #samples do
    local s = samples[i]
    if enc then chunk[#chunk + 1] = string.char(enc(s)) else chunk[#chunk + 1] = string.pack("<i2", s) end
    if #chunk == 4096 then parts[#parts + 1] = table.concat(chunk); chunk = {} end
  end
  parts[#parts + 1] = table.concat(chunk)
  return table.concat(parts)
end

--- Read a RIFF WAV file of 16-bit PCM (mono, or the first channel) or
-- G.711.  Returns the samples and the rate.
function M.read_wav(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local d = f:read("a")
  f:close()
  if #d < 12 or d:sub(1, 4) ~= "RIFF" or d:sub(9, 12) ~= "WAVE" then return nil, path .. ": not a WAV file" end
  local pos, fmt, data = 13, nil, nil
  while pos + 8 <= #d + 1 do
    local id, size = d:sub(pos, pos + 3), string.unpack("<I4", d, pos + 4)
    if id == "fmt " then
      local tag, ch, rate, _, _, bits = string.unpack("<I2I2I4I4I2I2", d, pos + 8)
      fmt = { tag = tag, channels = ch, rate = rate, bits = bits }
    elseif id == "data" then
      data = d:sub(pos + 8, pos + 7 + size)
    end
    pos = pos + 8 + size + (size % 2)
  end
  if not fmt or not data then return nil, path .. ": no fmt or data chunk" end
  local out = {}
  if fmt.tag == 1 and fmt.bits == 16 then
    local step = 2 * fmt.channels
    for i = 1, #data - 1, step do out[#out + 1] = string.unpack("<i2", data, i) end
  elseif fmt.tag == 7 or fmt.tag == 6 then
    -- G.711: decode with the inverse of the encoders (table built once)
    local tbl = {}
    for s = -32768, 32767, 8 do
      local b = fmt.tag == 7 and ulaw(s) or alaw(s)
      if tbl[b] == nil or math.abs(s) < math.abs(tbl[b]) then tbl[b] = s end
    end
    for i = 1, #data, fmt.channels do out[#out + 1] = tbl[data:byte(i)] or 0 end
  else
    return nil, path .. ": only 16-bit PCM or G.711 WAV files are supported"
  end
  return out, fmt.rate
end

-- Resample by linear interpolation (enough for test audio).
local function resample(samples, from, to)
  if from == to then return samples end
  local out, n = {}, #samples
  local count = math.floor(n * to / from)
  for i = 0, count - 1 do
    local x = i * from / to
    local a = math.floor(x)
    local fr = x - a
    local s1, s2 = samples[a + 1] or 0, samples[a + 2] or samples[a + 1] or 0
    out[i + 1] = math.floor(s1 + (s2 - s1) * fr + 0.5)
  end
  return out
end

local cache = setmetatable({}, { __mode = "k" })

--- Render a source for a format: the data and whether it loops.
function M.render(spec, format)
  local rate = RATES[format]
  if spec == nil or spec == "silence" or rate == nil then return nil, false end
  if type(spec) ~= "table" then error("sim audio: a source is \"silence\", { tone = hz } or { wav = path }", 2) end
  local per = cache[spec]
  if per == nil then per = {}; cache[spec] = per end
  local hit = per[format]
  if hit then return hit.data, hit.loop end
  local data, loop
  if spec.tone then
    local hz, amp = tonumber(spec.tone), tonumber(spec.amplitude) or 8000
    -- one second: a whole number of periods for an integer frequency, so it loops seamlessly
    local s = {}
    for i = 0, rate - 1 do s[i + 1] = math.floor(amp * math.sin(2 * math.pi * hz * i / rate) + 0.5) end
    data, loop = encode(s, format), true
  elseif spec.wav then
    local s, r = M.read_wav(spec.wav)
    if not s then error("sim audio: " .. tostring(r), 0) end
    data, loop = encode(resample(s, r, rate), format), spec.loop == true
  else
    error("sim audio: a source is \"silence\", { tone = hz } or { wav = path }", 2)
  end
  per[format] = { data = data, loop = loop }
  return data, loop
end

--- Check a source spec (scenario loading): nil or an error message.
function M.check(spec)
  if spec == nil or spec == "silence" then return nil end
  if type(spec) ~= "table" or not (tonumber(spec.tone) or type(spec.wav) == "string") then
    return "an audio source is \"silence\", { tone = hz } or { wav = \"file.wav\" }"
  end
  if spec.wav then
    local f = io.open(spec.wav, "rb")
    if not f then return "cannot open " .. spec.wav end
    f:close()
  end
  return nil
end

return M
