-- bench/corpus.lua: the benchmark corpus of ARI event JSON.
-- Built from real Asterisk 22 traffic (/work/shared/ari-samples/all-events.jsonl
-- when present, else the shipped bench/events.jsonl), every event type kept,
-- then weighted towards Channel events as live traffic is: each message
-- whose type starts with "Channel" (or is StasisStart/StasisEnd/Dial)
-- appears CHANNEL_WEIGHT times.
local M = {}

M.SHARED = (os.getenv("ARI_SHARED") or "../shared") .. "/ari-samples/all-events.jsonl"
M.FALLBACK = "bench/events.jsonl"
local CHANNEL_WEIGHT = 3

local function channel_heavy(t)
  return t:sub(1, 7) == "Channel" or t == "StasisStart" or t == "StasisEnd" or t == "Dial"
end

-- JSON text with "type" first, as Asterisk writes it.
local function encode_event(encode, v)
  local t = v.type
  v.type = nil
  local rest = encode(v)
  v.type = t
  return '{"type":"' .. t .. '"' .. (rest == "{}" and "}" or ("," .. rest:sub(2)))
end

--- load([path]) -> { lines = {...}, bytes = n, path = p, types = {type = count}, ntypes = n }
function M.load(path)
  if path == nil then
    local f = io.open(M.SHARED)
    if f then f:close(); path = M.SHARED else path = M.FALLBACK end
  end
  local lines, bytes, types, ntypes = {}, 0, {}, 0
  for l in io.lines(path) do
    local t = l:match('"type"%s*:%s*"([%w_]+)"')
    if t then
      local reps = channel_heavy(t) and CHANNEL_WEIGHT or 1
      for _ = 1, reps do lines[#lines + 1] = l; bytes = bytes + #l end
      if not types[t] then ntypes = ntypes + 1 end
      types[t] = (types[t] or 0) + reps
    end
  end
  local synthesized = {}
  local ok, schema = pcall(require, "ari.schema")
  local okc, core = pcall(require, "ari.core")
  if ok and okc and schema.models.Event and schema.models.Event.subtypes then
    for _, t in ipairs(schema.models.Event.subtypes) do
      if not types[t] then
        local l = encode_event(core.json_encode, require("ari.models").example(t))
        lines[#lines + 1] = l; bytes = bytes + #l
        types[t] = 1; ntypes = ntypes + 1
        synthesized[#synthesized + 1] = t
      end
    end
  end
  table.sort(synthesized)
  return { lines = lines, bytes = bytes, path = path, types = types, ntypes = ntypes, synthesized = synthesized }
end

return M
