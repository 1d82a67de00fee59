-- A scenario for `ari-lua --sim=examples/scenarios/ivr.lua app.lua`:
-- two callers into the app, one presses 1 after the greeting, the other
-- hangs up early; outbound calls to PJSIP/busy-* are busy, PJSIP/slow
-- answers after 3 s.
return {
  app = "hello",
  calls = {
    { from = "1001", to = "100", at = 0, script = {
        { "wait_answer" },
        { "wait_playback" },
        { "dtmf", "1", gap = 200 },
        { "wait_hangup", timeout = 30000 },
    } },
    { from = "1002", to = "100", at = 500, script = {
        { "sleep", 800 },
        { "hangup" },
    } },
  },
  endpoints = {
    ["PJSIP/busy-*"] = { busy = true },
    ["PJSIP/slow"] = { answer_after = 3000 },
  },
}
