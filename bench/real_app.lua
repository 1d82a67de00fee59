-- bench/real_app.lua: the app under test in the real-Asterisk benchmark
-- (bench/real_asterisk.lua), as a user writes it: no instrumentation of its
-- own in the call path.
--   ari-lua --url URL --user U --password P --app bench bench/real_app.lua FLOW CALLS
-- FLOW "play": answer -> play a 1 s sound -> hang up.
-- FLOW "ivr":  answer -> play the 1 s sound -> read digits (the far end,
--              [caller] dtmf, sends 123#) -> record 1 s -> hang up.
-- Prints "ready" once the app is registered with Asterisk, and one line of
-- counts when CALLS calls have ended (nothing per call).  The only addition
-- to the app is a client router counting the events that reach it (a Lua
-- call per event, well under 1 us).
local ari = require "ari"

local flow = arg[1] or "play"
local total = tonumber(arg[2]) or 100
if flow ~= "play" and flow ~= "ivr" then error("flow: play or ivr") end
local PROMPT = "sound:dir-multi3" -- 1.00 s (1650 bytes of GSM)

-- BENCH_REAL_TRANSPORT=http|websocket forces a REST transport (default: the client's choice)
local app = ari.app { app = "bench", transport = os.getenv("BENCH_REAL_TRANSPORT") }
local done, failed, bad_digits, seq, events = 0, 0, 0, 0, 0
app.client:add_router(function() events = events + 1 end)

app:on_call(function(call)
  call:answer()
  call:play(PROMPT)
  if flow == "ivr" then
    local d = call:get_digits { max = 4, timeout = 10000, terminators = "#" }
    if d ~= "123" then bad_digits = bad_digits + 1 end
    seq = seq + 1
    call:record { name = "bench-" .. seq, format = "wav", max_duration = 1, beep = false,
      terminate_on = "none", if_exists = "overwrite" }
  end
  call:hangup()
end)

app.on_end = function(_, outcome, err)
  if outcome == "error" then
    failed = failed + 1
    if failed <= 3 then io.stderr:write("call failed: ", tostring(err), "\n") end
  end
  done = done + 1
  if done == total then
    io.stdout:write(string.format("real_app calls=%d failed=%d bad_digits=%d events=%d\n", done, failed, bad_digits, events))
    io.stdout:flush()
  end
end

ari.spawn(function()
  app:wait_registered()
  io.stdout:write("ready\n")
  io.stdout:flush()
end)
