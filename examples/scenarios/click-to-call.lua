-- Scenario for examples/click-to-call.lua: no callers; alice answers after
-- 2 s, bob after 3 s and hangs up 5 s later; PJSIP/busy-* is busy.
return {
  app = "click-to-call",
  timeout = 120000,   -- a safety net: end the run after 2 simulated minutes
  calls = {},
  sounds = { ["pls-hold-while-try"] = 2000 },
  endpoints = {
    ["PJSIP/busy-*"] = { busy = true },
    ["PJSIP/alice"] = { answer_after = 2000 },
    ["PJSIP/bob"] = { answer_after = 3000, script = { { "sleep", 5000 }, { "hangup" } } },
  },
}
