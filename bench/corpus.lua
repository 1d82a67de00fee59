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

-- A JSON value of schema type t (for the event types the real run did not
-- produce): required fields, plus every field at the top level.
local function synth(schema, t, depth, hint)
  local inner = t:match("^List%[(.+)%]$")
  if inner then return { synth(schema, inner, depth + 1, hint) } end
  local m = schema.models[t]
  if m then
    local o = {}
    for f, p in pairs(m.properties or {}) do
      if p.required or depth < 1 then
        if p.allowed and p.allowed.values then o[f] = p.allowed.values[1]
        elseif f == "type" then o[f] = t
        else o[f] = synth(schema, p.type, depth + 1, f) end
      end
    end
    return o
  end
  if t == "int" or t == "long" then return 1 end
  if t == "double" then return 0.5 end
  if t == "boolean" then return false end
  if t == "Date" then return "2026-11-26T08:11:35.621+0000" end
  if t == "object" then return {} end
  return "id-" .. tostring(hint)
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
        local l = encode_event(core.json_encode, synth(schema, t, 0))
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
