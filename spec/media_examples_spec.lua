-- The call-audio examples (examples/echo-bot.lua, silence-recorder.lua,
-- speech-bridge.lua) under `ari-lua --sim=<scenario>`, at speed 1 (media
-- runs in real time), over each media transport: they exit 0, and the
-- simulator's measure of what each app sent to the caller (the
-- transcript's "media" entry, ari.sim.extmedia) shows the example's work.
local json_decode = require("ari.core").json_decode
local bin = os.getenv("ARI_LUA_BIN") or "./ari-lua"

local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function run(name, env)
  local tr, err = os.tmpname(), os.tmpname()
  local cmd = string.format("%s timeout -k 5 60 %s --sim=examples/scenarios/%s.lua --transcript %s examples/%s.lua 2>%s; echo \"rc=$?\"",
    env or "", bin, name, tr, name, err)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  local f = assert(io.open(err))
  local log = f:read("a")
  f:close()
  local entries, media = {}, {}
  f = io.open(tr)
  if f then
    for line in f:lines() do
      local e = assert(json_decode(line))
      entries[#entries + 1] = e
      if e.kind == "media" then media[#media + 1] = e.media end
    end
    f:close()
  end
  os.remove(tr)
  os.remove(err)
  return { rc = tonumber(out:match("rc=(%d+)%s*$")), out = out, log = log, entries = entries, media = media }
end

local function check(r, ok, what)
  assert(ok, what .. "\n--- stdout\n" .. r.out .. "\n--- stderr\n" .. r.log)
end

local function clean(r)
  check(r, r.rc == 0, "exit code " .. tostring(r.rc))
  check(r, not r.log:find("script error", 1, true) and not r.log:find(" ERROR ", 1, true), "an error was logged")
  check(r, r.out:find("simulation over (all calls ended)", 1, true) ~= nil, "every call ended")
  check(r, #r.media == 1, "one media stream in the transcript")
  return r.media[1]
end

for _, transport in ipairs { "rtp", "audiosocket", "websocket" } do
  describe("examples/echo-bot.lua over " .. transport, function()
    -- slin16 by default, slin over RTP (Asterisk's RTP channel drops slin16 it receives)
    local format = transport == "rtp" and "slin" or "slin16"
    it("sends the caller's 2 s of talk back, 500 ms later", function()
      local r = run("echo-bot", "MEDIA_TRANSPORT=" .. transport .. " ECHO_DELAY_MS=500")
      local m = clean(r)
      check(r, m.transport == transport and m.format == format, "the stream's transport and format")
      -- the caller sent audio for the whole call and talked (a 440 Hz tone, peak 8000: RMS ~5657) for 2 s
      check(r, m.to_app.ms >= 3500, "audio went to the app")
      -- the talk came back (loud), at the tone's level (a loaded machine may
      -- lose some of it: at least half, never more than was sent)
      check(r, m.from_app.loud_ms >= 1000 and m.from_app.loud_ms <= 2200, "2 s of echo: " .. m.from_app.loud_ms)
      check(r, m.from_app.peak_rms >= 5400 and m.from_app.peak_rms <= 5900, "the caller's own level: " .. m.from_app.peak_rms)
      check(r, r.log:find("echoing over " .. transport .. " %(" .. format .. "%), 500 ms behind") ~= nil, "the log says how")
      check(r, m.from_app.dropped == 0, "nothing the app sent was dropped")
    end)
  end)
end

describe("examples/echo-bot.lua", function()
  it("echoes nothing loud to a caller who never talks", function()
    local scen = os.tmpname()
    local f = assert(io.open(scen, "w"))
    f:write([[return { app = "echo-bot", calls = { { from = "1009", script = { { "wait_answer" }, { "sleep", 1500 }, { "hangup" } } } } }]])
    f:close()
    local tr = os.tmpname()
    local p = io.popen(string.format("timeout -k 5 60 %s --sim=%s --transcript %s examples/echo-bot.lua 2>&1; echo \"rc=$?\"", bin, scen, tr))
    local out = p:read("a")
    p:close()
    local m
    for line in io.lines(tr) do
      local e = json_decode(line)
      if e.kind == "media" then m = e.media end
    end
    os.remove(scen)
    os.remove(tr)
    assert.equals("0", out:match("rc=(%d+)%s*$"), out)
    assert.is_not_nil(m, out)
    assert.is_true(m.from_app.frames > 0, out)     -- the silence came back
    assert.equals(0, m.from_app.loud_ms)
    assert.equals(0, m.from_app.peak_rms)
  end)
end)

describe("examples/silence-recorder.lua", function()
  it("beeps, records the caller's 2 s of talk, stops on 1.5 s of silence, writes a WAV, hangs up", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. sh(dir)))
    local r = run("silence-recorder", "RECORD_DIR=" .. sh(dir))
    local m = clean(r)
    -- the beep: 250 ms of a 1000 Hz tone, and nothing else loud
    check(r, m.from_app.loud_ms >= 200 and m.from_app.loud_ms <= 300, "one beep: " .. m.from_app.loud_ms)
    local total, speech, path = r.log:match("recorded ([%d.]+) s %(([%d.]+) s of speech%), ended by silence: (%S+%.wav)")
    check(r, total ~= nil, "the recording ended on silence")
    check(r, tonumber(speech) >= 1.8 and tonumber(speech) <= 2.2, "2 s of speech: " .. tostring(speech))
    -- the app hung up (the caller's script would have stayed 10 s more)
    local hung = false
    for _, e in ipairs(r.entries) do
      if e.kind == "rest" and e.method == "DELETE" and e.path:find("^/ari/channels/") and e.call == "call-1" then hung = true end
    end
    check(r, hung, "the app hung up")
    local f = assert(io.open(path, "rb"))
    local wav = f:read("a")
    f:close()
    os.remove(path)
    os.execute("rmdir " .. sh(dir))
    assert.equals("RIFF", wav:sub(1, 4))
    -- slin over RTP (the default transport): 8 kHz
    assert.equals(8000, (string.unpack("<I4", wav, 25)))
    local bytes = string.unpack("<I4", wav, 41)
    assert.equals(#wav - 44, bytes)
    -- as long as the log says (2 bytes a sample)
    assert.is_true(math.abs(bytes / 16000 - tonumber(total)) < 0.1, bytes .. " bytes for " .. total .. " s")
  end)
end)

describe("examples/speech-bridge.lua", function()
  it("streams the caller to the service and plays what it sends back, until the service hangs up", function()
    local pf = os.tmpname()
    local h = io.popen(string.format("timeout -k 5 60 %s spec/support/speech_standin.lua %s 3000 2>&1; echo \"standin rc=$?\"", bin, pf), "r")
    local url
    for _ = 1, 100 do
      local f = io.open(pf)
      url = f and f:read("l")
      if f then f:close() end
      if url and url ~= "" then break end
      os.execute("sleep 0.05")
    end
    assert.is_truthy(url, "the stand-in service did not start")
    local r = run("speech-bridge", "SPEECH_URL=" .. sh(url))
    local standin = h:read("a")
    h:close()
    os.remove(pf)
    local m = clean(r)
    check(r, standin:find("standin rc=0", 1, true) ~= nil, "the stand-in ended cleanly: " .. standin)
    check(r, r.log:find("service: hello from the stand-in (slin)", 1, true) ~= nil, "the service's text is logged")
    check(r, r.log:find("ended by the service", 1, true) ~= nil, "the service ended the call")
    -- the service answered the caller's 2 s of talk with its own tone (peak 3000: RMS ~2121)
    check(r, m.from_app.loud_ms >= 1000 and m.from_app.loud_ms <= 2200, "2 s of the service's audio: " .. m.from_app.loud_ms)
    check(r, m.from_app.peak_rms >= 1900 and m.from_app.peak_rms <= 2300, "the service's level: " .. m.from_app.peak_rms)
  end)
end)
